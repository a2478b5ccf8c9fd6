#!/usr/bin/env bash
# hack/slurm/down.sh — stop SimJob's private single-node Slurm (started by hack/slurm/up.sh)
# and delete all of its state in $REPO/.slurm/.
#
# Role: stops exactly the processes up.sh started, never by name: slurmctld, slurmd and
# munged from their PID files in .slurm/run/ (each checked to still be that program, started
# for this .slurm/), then any leftover of this Slurm found by the marker variable up.sh puts
# in its daemons' environment (slurmstepd of running jobs, a daemon that lost its PID file)
# together with its descendants (the jobs' processes). SIGTERM first, SIGKILL after 10 s
# (slurmstepd, which ignores SIGTERM, gets SIGKILL at once).
# Safe to run when nothing runs, when PID files are stale, or twice.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
STATE="$REPO/.slurm"
RUN="$STATE/run"
MARKER="SIMJOB_SLURM_DAEMON=$STATE"
GRACE_TENTHS=100 # 10 s between SIGTERM and SIGKILL

say() { printf 'slurm/down: %s\n' "$*"; }

# Same lock as up.sh: never stop while an up.sh is starting things.
exec 9<"$(dirname "${BASH_SOURCE[0]}")"
if ! flock -w 300 9; then
    say "ERROR: another hack/slurm/up.sh or down.sh has held the lock for 300 s"
    exit 1
fi

if [[ ! -e "$STATE" ]]; then
    say "nothing to do: $STATE does not exist"
    exit 0
fi

# alive PID: the process exists and is not a zombie.
alive() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}
comm_of() {
    local comm=""
    read -r comm 2>/dev/null <"/proc/$1/comm" || true
    printf '%s' "$comm"
}
# ours PID PROG: PID is alive, runs PROG, and was started for this state directory.
ours() {
    local pid="$1" prog="$2" cmdline
    alive "$pid" || return 1
    [[ "$(comm_of "$pid")" == "$prog" ]] || return 1
    cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
    [[ "$cmdline" == *"$STATE/"* ]]
}
# terminate SIGNAL PID...: send SIGNAL (TERM or KILL), wait up to 10 s, SIGKILL what is left.
# Returns 1 if something survived.
terminate() {
    local sig="$1" pid i left
    shift
    (($#)) || return 0
    kill "-$sig" "$@" 2>/dev/null || true
    for ((i = 0; i < GRACE_TENTHS; i++)); do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        ((${#left[@]})) || return 0
        sleep 0.1
    done
    say "still alive 10 s after SIG$sig: ${left[*]}; sending SIGKILL"
    kill -KILL "${left[@]}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        ((${#left[@]})) || return 0
        sleep 0.1
    done
    say "ERROR: survived SIGKILL: ${left[*]}"
    return 1
}

failed=0
# 1. The daemons, from their PID files (slurmctld first so nothing new gets scheduled).
stop_daemon() {
    local prog="$1" pidfile="$RUN/$1.pid" pid
    [[ -f "$pidfile" ]] || return 0
    pid="$(tr -dc '0-9' 2>/dev/null <"$pidfile")" || pid=""
    if [[ -n "$pid" ]] && ours "$pid" "$prog"; then
        say "stopping $prog (pid $pid)"
        terminate TERM "$pid" || failed=1
    else
        say "stale PID file $pidfile (pid ${pid:-?} is not our $prog); ignoring it"
    fi
    rm -f "$pidfile"
}
stop_daemon slurmctld
stop_daemon slurmd

# 2. Leftovers carrying our marker (slurmstepd of running jobs, daemons without a PID file)
#    and all their descendants (the jobs' processes).
declare -A parent_of=()
marked=()
for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    read -r stat 2>/dev/null <"$dir/stat" || continue
    rest="${stat##*) }"
    read -r _state ppid _ <<<"$rest"
    parent_of[$pid]="$ppid"
    if grep -qzxF -- "$MARKER" "$dir/environ" 2>/dev/null; then
        # munged last (step 3), in case the others still need it while they stop.
        [[ "$(comm_of "$pid")" == munged ]] || marked+=("$pid")
    fi
done
if ((${#marked[@]})); then
    declare -A in_tree=()
    for pid in "${marked[@]}"; do in_tree[$pid]=1; done
    grew=1
    while ((grew)); do
        grew=0
        for pid in "${!parent_of[@]}"; do
            [[ -z "${in_tree[$pid]:-}" && -n "${in_tree[${parent_of[$pid]}]:-}" ]] || continue
            in_tree[$pid]=1
            grew=1
        done
    done
    # slurmstepd ignores SIGTERM and has nothing to save once slurmd is gone: SIGKILL it.
    # The jobs' processes get SIGTERM first, as scancel would do.
    stepds=() others=() desc=()
    for pid in "${!in_tree[@]}"; do
        [[ "$pid" != "$$" ]] || continue # down.sh itself run from a job of this Slurm
        alive "$pid" || continue
        if [[ "$(comm_of "$pid")" == slurmstepd ]]; then stepds+=("$pid"); else others+=("$pid"); fi
        desc+=("$pid($(comm_of "$pid"))")
    done
    if ((${#desc[@]})); then
        say "stopping leftovers of this Slurm and their children: ${desc[*]}"
        kill -TERM "${others[@]}" 2>/dev/null || true
        terminate KILL "${stepds[@]}" || failed=1
        terminate TERM "${others[@]}" || failed=1
    fi
fi

# 3. munged, from its PID file, then any munged of ours without one.
stop_daemon munged
for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    [[ "$(comm_of "$pid")" == munged ]] || continue
    grep -qzxF -- "$MARKER" "$dir/environ" 2>/dev/null || continue
    say "stopping munged without PID file (pid $pid)"
    terminate TERM "$pid" || failed=1
done

if ((failed)); then
    say "ERROR: some processes could not be stopped; keeping $STATE for inspection"
    exit 1
fi
rm -rf -- "$STATE"
say "stopped; removed $STATE"
