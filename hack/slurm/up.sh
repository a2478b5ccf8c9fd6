#!/usr/bin/env bash
# hack/slurm/up.sh — start SimJob's private single-node Slurm for development and tests.
#
# Role: installs slurm-wlm + munge with apt-get when they are missing, generates a
# slurm.conf, and starts munged, slurmctld and slurmd as root with every file (config,
# munge key and socket, spool, state, logs, PID files) under $REPO/.slurm/ (git-ignored),
# on private ports of 127.0.0.1, so it never touches a system Slurm or munge.
# Stop it and wipe .slurm/ with hack/slurm/down.sh.
#
# Idempotent: when everything already runs it checks the daemons and returns in well under
# a second; a stale PID file is reported and removed; a half-started set (say munged alive,
# slurmctld dead) is reported and repaired; a changed configuration restarts the Slurm
# daemons (Slurm keeps its jobs across that restart).
#
# Usage:  hack/slurm/up.sh && . .slurm/env && sinfo
#
# Environment (all optional):
#   SIMJOB_SLURMCTLD_PORT     slurmctld port (default 16817)
#   SIMJOB_SLURMD_PORT        slurmd port (default 16818)
#   SIMJOB_SLURM_CPUS         CPUs of the node (default: nproc)
#   SIMJOB_SLURM_MEMORY_MB    RealMemory of the node in MB (default: `free -m` total less 10 %,
#                             at least 512 MB less); jobs get 512 MB per CPU unless they ask
#   SIMJOB_SLURM_MIN_JOB_AGE  seconds a finished job stays known to squeue/scontrol
#                             (default 60; slurmctld purges once a minute, so a finished job
#                             disappears between MinJobAge and MinJobAge+60 s after it ends)
#   SIMJOB_SLURM_TIMEOUT      seconds to wait for each daemon and for the node (default 60)
#   SIMJOB_SLURM_GPUS         GRES gpu count of the node (default 2): counted, not real — gres.conf
#                             names placeholder devices under .slurm/dev/ (AutoDetect=off), so jobs
#                             asking --gres=gpu:N / --gpus=N are scheduled, get CUDA_VISIBLE_DEVICES,
#                             and a job asking more than the node has is refused by sbatch
# .slurm/env exports SIMJOB_SLURMCTLD_PORT/SIMJOB_SLURMD_PORT too, so a shell that sourced it
# keeps the same ports on its next up.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
STATE="$REPO/.slurm"
ETC="$STATE/etc"
RUN="$STATE/run"
LOG="$STATE/log"
SPOOL="$STATE/spool"
MUNGE_DIR="$STATE/munge"
CONF="$ETC/slurm.conf"
GRES_CONF="$ETC/gres.conf"
DEV="$STATE/dev"
MUNGE_KEY="$MUNGE_DIR/munge.key"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket"
ENV_FILE="$STATE/env"
# Set in the environment of the daemons we start (and so inherited by slurmstepd), never in
# .slurm/env: down.sh uses it to find leftovers of exactly this Slurm.
MARKER="SIMJOB_SLURM_DAEMON=$STATE"

CTLD_PORT="${SIMJOB_SLURMCTLD_PORT:-16817}"
SLURMD_PORT="${SIMJOB_SLURMD_PORT:-16818}"
MIN_JOB_AGE="${SIMJOB_SLURM_MIN_JOB_AGE:-60}"
TIMEOUT="${SIMJOB_SLURM_TIMEOUT:-60}"
GPUS="${SIMJOB_SLURM_GPUS:-2}"
CLUSTER=simjob
DEFAULT_PARTITION=debug
SHORT_PARTITION=short
SHORT_MAX_TIME=00:05:00

export PATH="$PATH:/usr/sbin:/sbin"
# Clients started by this script must only ever see our configuration.
export SLURM_CONF="$CONF"

say() { printf 'slurm/up: %s\n' "$*"; }
die() {
    printf 'slurm/up: ERROR: %s\n' "$*" >&2
    exit 1
}

for v in CTLD_PORT SLURMD_PORT MIN_JOB_AGE TIMEOUT GPUS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
done
[[ "$CTLD_PORT" != "$SLURMD_PORT" ]] || die "SIMJOB_SLURMCTLD_PORT and SIMJOB_SLURMD_PORT are both $CTLD_PORT"
# A unix socket path must fit in sockaddr_un (108 bytes).
((${#MUNGE_SOCKET} < 100)) || die "repository path too long for a unix socket: $MUNGE_SOCKET"

# One up.sh/down.sh at a time (e.g. parallel test sessions). The lock is on this script's
# directory, which always exists, so down.sh can delete all of .slurm/. The daemons are
# started with fd 9 closed so they do not keep holding it.
exec 9<"$(dirname "${BASH_SOURCE[0]}")"
flock -w 300 9 || die "another hack/slurm/up.sh or down.sh has held the lock for 300 s"

# ---------------------------------------------------------------------------------------
# Install (only when missing)
# ---------------------------------------------------------------------------------------
install_packages() {
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "Slurm is not installed and we are not root (no sudo either)"
        sudo=(sudo -n)
    fi
    mkdir -p "$LOG"
    local apt_log="$LOG/apt-install.log"
    say "installing slurm-wlm, slurm-client and munge with apt-get (one-time, about a minute); log: $apt_log"
    # Keep the packages' postinst scripts from starting the system munge/slurm services:
    # a policy-rc.d that answers 101 ("action forbidden"), removed again right after.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
        "${sudo[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 0755 $policy"
        own_policy=1
    fi
    local rc=0
    {
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                --no-install-recommends -o Dpkg::Options::=--force-confdef \
                -o Dpkg::Options::=--force-confold slurm-wlm slurm-client munge
    } >"$apt_log" 2>&1 || rc=$?
    if ((own_policy)); then "${sudo[@]}" rm -f "$policy"; fi
    if ((rc != 0)); then
        tail -n 30 "$apt_log" >&2 || true
        die "apt-get failed (exit $rc), see $apt_log"
    fi
    say "installed: $(slurmctld -V 2>/dev/null || echo '?'), $(munged --version 2>&1 | head -n1)"
}

missing=()
for prog in munged munge unmunge slurmctld slurmd sbatch squeue scontrol sinfo scancel; do
    command -v "$prog" >/dev/null || missing+=("$prog")
done
if ((${#missing[@]})); then
    say "missing: ${missing[*]}"
    install_packages
fi

mkdir -p "$ETC" "$RUN" "$LOG" "$SPOOL/slurmctld" "$SPOOL/slurmd" "$MUNGE_DIR" "$DEV"
# Traversable but not listable: other local users (the SSH-mode tests' login users, like
# the users of a real site) must read slurm.conf and reach the munge socket. Secrets stay
# private: the munge key is 0400 root, the Slurm logs 0600.
chmod 0711 "$STATE" "$MUNGE_DIR"

# ---------------------------------------------------------------------------------------
# Processes: PID files, liveness, ownership
# ---------------------------------------------------------------------------------------
# alive PID: the process exists and is not a zombie.
alive() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}
# ours PID PROG: PID is alive, runs PROG, and was started for this state directory.
ours() {
    local pid="$1" prog="$2" comm cmdline
    alive "$pid" || return 1
    read -r comm 2>/dev/null <"/proc/$pid/comm" || return 1
    [[ "$comm" == "$prog" ]] || return 1
    cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
    [[ "$cmdline" == *"$STATE/"* ]]
}
# marked PROG: PIDs of processes named PROG carrying our marker (found without a PID file).
marked() {
    local prog="$1" dir pid comm
    for dir in /proc/[0-9]*; do
        pid="${dir#/proc/}"
        read -r comm 2>/dev/null <"$dir/comm" || continue
        [[ "$comm" == "$prog" ]] || continue
        grep -qzxF -- "$MARKER" "$dir/environ" 2>/dev/null || continue
        echo "$pid"
    done
}
# stop_pid PID PROG: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
    local pid="$1" prog="$2" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    say "$prog (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    die "$prog (pid $pid) survived SIGKILL"
}
# running PROG: prints the PID and succeeds when our PROG runs per its PID file. Reports and
# removes a stale PID file; stops a marked PROG that has no valid PID file.
running() {
    local prog="$1" pidfile="$RUN/$1.pid" pid=""
    if [[ -f "$pidfile" ]]; then
        pid="$(tr -dc '0-9' 2>/dev/null <"$pidfile")" || pid=""
        if [[ -n "$pid" ]] && ours "$pid" "$prog"; then
            echo "$pid"
            return 0
        fi
        say "stale PID file $pidfile (pid ${pid:-?} is not our $prog); removing it" >&2
        rm -f "$pidfile"
    fi
    for pid in $(marked "$prog"); do
        say "our $prog runs as pid $pid without a PID file; stopping it" >&2
        stop_pid "$pid" "$prog" >&2
    done
    return 1
}
# wait_pidfile PROG LOG: wait for the freshly started daemon to write its PID file.
wait_pidfile() {
    local prog="$1" logfile="$2" i pid
    for ((i = 0; i < TIMEOUT * 10; i++)); do
        pid="$(tr -dc '0-9' 2>/dev/null <"$RUN/$prog.pid")" || pid=""
        if [[ -n "$pid" ]] && ours "$pid" "$prog"; then
            echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    fail_with_log "$prog did not start within ${TIMEOUT}s" "$logfile"
}
fail_with_log() {
    local msg="$1" f
    shift
    for f in "$@"; do
        [[ -s "$f" ]] || continue
        printf -- '--- last lines of %s ---\n' "$f" >&2
        tail -n 20 "$f" >&2
        if grep -q 'Address already in use' "$f"; then
            msg="$msg (a port is already in use: set SIMJOB_SLURMCTLD_PORT / SIMJOB_SLURMD_PORT)"
        fi
    done
    die "$msg; logs: $*"
}
port_in_use() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}
check_port() {
    local port="$1" what="$2" var="$3"
    if port_in_use "$port"; then
        die "port $port for $what is already in use on 127.0.0.1 by another program; pick another with $var=PORT"
    fi
}

# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------
NODE="$(hostname -s)"
CPUS="${SIMJOB_SLURM_CPUS:-$(nproc)}"
if [[ -n "${SIMJOB_SLURM_MEMORY_MB:-}" ]]; then
    MEMORY="$SIMJOB_SLURM_MEMORY_MB"
else
    # The total of `free -m`, read where free reads it (procps may be missing).
    total="$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
    headroom=$((total / 10 > 512 ? total / 10 : 512))
    MEMORY=$((total - headroom > 256 ? total - headroom : 256))
fi
[[ "$CPUS" =~ ^[1-9][0-9]*$ && "$MEMORY" =~ ^[1-9][0-9]*$ ]] || die "bad CPUs ($CPUS) or memory ($MEMORY)"
SLURM_USER="$(id -un)"
NODE_GRES=""
if ((GPUS > 0)); then NODE_GRES=" Gres=gpu:$GPUS"; fi

write_conf() {
    cat <<EOF
# Generated by hack/slurm/up.sh — do not edit (regenerated on every call).
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$SLURM_USER
SlurmdUser=$SLURM_USER

# Authentication through our own munged.
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET

StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups in a container.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
MpiDefault=none
MailProg=/bin/true

SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job would be given the whole node's memory and run alone.
DefMemPerCPU=512
EnforcePartLimits=ALL

# Finished jobs stay visible to squeue/scontrol for MinJobAge seconds (+ up to 60 s until
# the next purge); no accounting database, so sacct has nothing after that.
MinJobAge=$MIN_JOB_AGE
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log

ReturnToService=2
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
# Trust the node definition below even if the hardware seen by slurmd differs.
SlurmdParameters=config_overrides

# GPUs Slurm counts without hardware: see gres.conf (AutoDetect=off, placeholder devices).
# (Tracking gres/gpu as an accounting TRES needs slurmdbd; jobs show TresPerNode=gres:gpu:N.)
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$MEMORY${NODE_GRES} State=UNKNOWN
PartitionName=$DEFAULT_PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=$SHORT_PARTITION Nodes=$NODE MaxTime=$SHORT_MAX_TIME DefaultTime=00:01:00 State=UP
EOF
}

# GRES gpu without hardware: placeholder character devices (major 195 like NVIDIA's, no
# driver behind them) that slurmd only stat()s, so Slurm numbers them and sets
# CUDA_VISIBLE_DEVICES=0,1...; no autodetection (no NVML in this build). Where mknod is not
# allowed (not root), the GPUs are a bare count: scheduled and accounted, no device numbers.
gpu_files=1
for ((g = 0; g < GPUS; g++)); do
    if [[ ! -c "$DEV/nvidia$g" ]]; then
        rm -f "$DEV/nvidia$g"
        mknod "$DEV/nvidia$g" c 195 "$g" 2>/dev/null || gpu_files=0
    fi
done
write_gres_conf() {
    echo "# Generated by hack/slurm/up.sh — do not edit (regenerated on every call)."
    echo "AutoDetect=off"
    if ((GPUS > 0 && gpu_files)); then
        echo "NodeName=$NODE Name=gpu File=$DEV/nvidia[0-$((GPUS - 1))]"
    elif ((GPUS > 0)); then
        echo "NodeName=$NODE Name=gpu Count=$GPUS"
    fi
}

write_conf >"$CONF.new"
write_gres_conf >"$GRES_CONF.new"
conf_changed=0
if [[ -f "$CONF" ]] && ! cmp -s "$CONF" "$CONF.new"; then conf_changed=1; fi
if [[ -f "$GRES_CONF" ]] && ! cmp -s "$GRES_CONF" "$GRES_CONF.new"; then conf_changed=1; fi

# ---------------------------------------------------------------------------------------
# Current state
# ---------------------------------------------------------------------------------------
munged_pid="$(running munged)" || munged_pid=""
ctld_pid="$(running slurmctld)" || ctld_pid=""
slurmd_pid="$(running slurmd)" || slurmd_pid=""

if [[ -n "$munged_pid$ctld_pid$slurmd_pid" ]]; then
    if [[ -n "$munged_pid" && -n "$ctld_pid" && -n "$slurmd_pid" ]]; then
        say "already running: munged $munged_pid, slurmctld $ctld_pid, slurmd $slurmd_pid"
    else
        say "half-started: munged ${munged_pid:-DOWN}, slurmctld ${ctld_pid:-DOWN}, slurmd ${slurmd_pid:-DOWN}; repairing"
    fi
fi
if ((conf_changed)) && [[ -n "$ctld_pid$slurmd_pid" ]]; then
    say "configuration changed ($(diff "$CONF" "$CONF.new" | grep -c '^[<>]') lines); restarting slurmctld and slurmd"
    [[ -z "$slurmd_pid" ]] || stop_pid "$slurmd_pid" slurmd
    [[ -z "$ctld_pid" ]] || stop_pid "$ctld_pid" slurmctld
    ctld_pid="" slurmd_pid=""
    rm -f "$RUN/slurmd.pid" "$RUN/slurmctld.pid"
fi
mv -f "$CONF.new" "$CONF"
mv -f "$GRES_CONF.new" "$GRES_CONF"

# ---------------------------------------------------------------------------------------
# Start what is missing: munged, slurmctld, slurmd
# ---------------------------------------------------------------------------------------
if [[ -z "$munged_pid" ]]; then
    if [[ ! -s "$MUNGE_KEY" ]]; then
        (umask 077 && dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none)
    fi
    chmod 0400 "$MUNGE_KEY"
    say "starting munged (socket $MUNGE_SOCKET)"
    # --force: run despite a leftover socket or group-writable parent directories.
    env "$MARKER" munged --force --socket="$MUNGE_SOCKET" --key-file="$MUNGE_KEY" \
        --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" >"$LOG/munged.stderr" 2>&1 9<&- ||
        fail_with_log "munged failed to start" "$LOG/munged.stderr" "$LOG/munged.log"
    munged_pid="$(wait_pidfile munged "$LOG/munged.log")"
fi
munge -n --socket="$MUNGE_SOCKET" | unmunge --socket="$MUNGE_SOCKET" >/dev/null 2>&1 ||
    fail_with_log "munge credentials do not round-trip through $MUNGE_SOCKET" "$LOG/munged.log"

if [[ -z "$ctld_pid" ]]; then
    check_port "$CTLD_PORT" slurmctld SIMJOB_SLURMCTLD_PORT
    say "starting slurmctld on 127.0.0.1:$CTLD_PORT"
    env "$MARKER" slurmctld -f "$CONF" >"$LOG/slurmctld.stderr" 2>&1 9<&- ||
        fail_with_log "slurmctld failed to start" "$LOG/slurmctld.stderr" "$LOG/slurmctld.log"
    ctld_pid="$(wait_pidfile slurmctld "$LOG/slurmctld.log")"
fi
for ((i = 0; ; i++)); do
    if scontrol ping 2>/dev/null | grep -q 'is UP'; then break; fi
    ours "$ctld_pid" slurmctld || fail_with_log "slurmctld (pid $ctld_pid) died" "$LOG/slurmctld.stderr" "$LOG/slurmctld.log"
    ((i < TIMEOUT * 5)) || fail_with_log "slurmctld does not answer 'scontrol ping' after ${TIMEOUT}s" "$LOG/slurmctld.log"
    sleep 0.2
done

if [[ -z "$slurmd_pid" ]]; then
    check_port "$SLURMD_PORT" slurmd SIMJOB_SLURMD_PORT
    say "starting slurmd (node $NODE, port $SLURMD_PORT, $CPUS CPUs, $MEMORY MB)"
    env "$MARKER" slurmd -f "$CONF" -N "$NODE" >"$LOG/slurmd.stderr" 2>&1 9<&- ||
        fail_with_log "slurmd failed to start" "$LOG/slurmd.stderr" "$LOG/slurmd.log"
    slurmd_pid="$(wait_pidfile slurmd "$LOG/slurmd.log")"
fi

# ---------------------------------------------------------------------------------------
# Wait until the node takes jobs (resume it when it comes back down/drained)
# ---------------------------------------------------------------------------------------
last_resume=0
for ((i = 0; ; i++)); do
    node_state="$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -n1)"
    case "$node_state" in
    idle | mix | alloc | comp) break ;;
    down | drain | drng | fail | failg | inval)
        # slurmd answers (no '*'), but the node kept a bad state: put it back to service.
        if ((SECONDS - last_resume >= 3)); then
            reason="$(sinfo -h -N -n "$NODE" -o %E 2>/dev/null | head -n1)"
            say "node $NODE is $node_state (${reason:-no reason}); resuming it"
            scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
            last_resume=$SECONDS
        fi
        ;;
    esac
    ours "$slurmd_pid" slurmd || fail_with_log "slurmd (pid $slurmd_pid) died" "$LOG/slurmd.stderr" "$LOG/slurmd.log"
    ours "$ctld_pid" slurmctld || fail_with_log "slurmctld (pid $ctld_pid) died" "$LOG/slurmctld.log"
    ((i < TIMEOUT * 5)) || fail_with_log "node $NODE is '${node_state:-unknown}', not idle, after ${TIMEOUT}s" \
        "$LOG/slurmd.log" "$LOG/slurmctld.log"
    sleep 0.2
done

# ---------------------------------------------------------------------------------------
# .slurm/env for clients
# ---------------------------------------------------------------------------------------
# Values are single-quoted literals (no expansion), so tests/slurm_env.py can parse them.
quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
{
    echo "# Generated by hack/slurm/up.sh: '. .slurm/env' points Slurm clients at the local Slurm."
    for kv in "SLURM_CONF=$CONF" \
        "SIMJOB_SLURM_STATE_DIR=$STATE" \
        "SIMJOB_SLURM_CLUSTER=$CLUSTER" \
        "SIMJOB_SLURM_NODE=$NODE" \
        "SIMJOB_SLURM_DEFAULT_PARTITION=$DEFAULT_PARTITION" \
        "SIMJOB_SLURM_SHORT_PARTITION=$SHORT_PARTITION" \
        "SIMJOB_SLURM_GPUS=$GPUS" \
        "SIMJOB_SLURMCTLD_PORT=$CTLD_PORT" \
        "SIMJOB_SLURMD_PORT=$SLURMD_PORT" \
        "SIMJOB_MUNGE_SOCKET=$MUNGE_SOCKET"; do
        echo "export ${kv%%=*}=$(quote "${kv#*=}")"
    done
} >"$ENV_FILE.new"
mv -f "$ENV_FILE.new" "$ENV_FILE"

say "ready: node $NODE ($node_state, $CPUS CPUs, $MEMORY MB, $GPUS GRES gpus), partitions $DEFAULT_PARTITION (default), $SHORT_PARTITION (MaxTime $SHORT_MAX_TIME), slurmctld 127.0.0.1:$CTLD_PORT"
say "use it:  . ${ENV_FILE#"$PWD"/} && sinfo      (logs: $LOG/, stop: hack/slurm/down.sh)"
