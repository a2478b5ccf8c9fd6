#!/usr/bin/env bash
# hack/cluster/restart-component.sh — stop, start or restart ONE component of the local
# control plane started by up.sh, by its PID file, with the command line it was started with.
#
# Usage: hack/cluster/restart-component.sh NAME [restart|stop|start]
#   NAME     etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kwok
#   stop     records the running process's argv, working directory and environment (an
#            allow-list: PATH, HOME, locale, Go runtime and SIMKUBE_*/SIMJOB_* variables)
#            under .cluster/run/NAME.{argv,env,cwd} (0600), then SIGTERM by PID, SIGKILL
#            after 10 s. Nothing running: nothing to do.
#   start    runs the recorded command again in its own session, as up.sh does (log appended
#            to .cluster/logs/NAME.log, new PID in .cluster/run/NAME.pid), and waits until it
#            answers (etcd /health, the API server /readyz, the others /healthz). Already
#            running: nothing to do.
#   restart  stop, then start (the default).
#
# Idempotent, and it never touches another component: each step acts on the process the
# PID file names, after checking that /proc/PID/cmdline is that component (a reused PID is
# never signalled); nothing is ever killed by name. It takes the same lock as up.sh and
# down.sh, so it never races them. Used by the fault suite (tests/chaos/); neighbours:
# up.sh (starts everything), down.sh (stops everything and removes the state).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${SIMJOB_CLUSTER_DIR:-$repo/.cluster}"
run="$state/run" logs="$state/logs"
NAMES=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
TIMEOUT="${SIMJOB_RESTART_TIMEOUT:-120}"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

name="${1:-}" action="${2:-restart}"
[[ " ${NAMES[*]} " == *" $name "* ]] || die "usage: $0 {etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok} [restart|stop|start]"
[[ "$action" =~ ^(restart|stop|start)$ ]] || die "unknown action '$action' (restart, stop or start)"
[ -d "$run" ] || die "no cluster state in $state (start it with: make cluster)"

lock_dir="${SIMJOB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simjob}/locks"
mkdir -p "$lock_dir"
exec 9>"$lock_dir/cluster-$(printf '%s' "$state" | sha256sum | cut -c1-12).lock"
flock -w 900 9 || die "the cluster lock is still held after 15 min (up.sh or down.sh running?)"

pid_of() { [ -f "$run/$name.pid" ] && tr -dc '0-9' <"$run/$name.pid" || true; }
is_ours() {  # the PID file names a live process running this component
  local pid; pid="$(pid_of)"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] \
    && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name"
}
arg_value() {  # arg_value FLAG: the value of --FLAG=V or --FLAG V in the recorded argv
  local flag="$1" i
  for ((i = 0; i < ${#argv[@]}; i++)); do
    case "${argv[i]}" in
      "$flag="*) printf '%s' "${argv[i]#"$flag="}"; return 0 ;;
      "$flag") printf '%s' "${argv[i + 1]:-}"; return 0 ;;
    esac
  done
  return 1
}
answers() {  # the component's own health endpoint says it is up
  local url
  case "$name" in
    etcd) url="$(arg_value --listen-client-url)" && curl -fsS --max-time 2 "$url/health" ;;
    kube-apiserver)
      "$state/bin/kubectl" --kubeconfig "$state/kubeconfig" --request-timeout=2s get --raw /readyz ;;
    kwok) url="$(arg_value --server-address)" && curl -fsS --max-time 2 "http://$url/healthz" ;;
    *) url="$(arg_value --secure-port)" && curl -kfsS --max-time 2 "https://127.0.0.1:$url/healthz" ;;
  esac
}

record() {  # record PID: argv, cwd and the allow-listed environment of the running process
  local pid="$1"
  ( umask 077
    cp "/proc/$pid/cmdline" "$run/$name.argv.new"
    readlink "/proc/$pid/cwd" >"$run/$name.cwd.new"
    { grep -zE '^(PATH|HOME|USER|LOGNAME|LANG|LC_[A-Z]+|TZ|TMPDIR|GO[A-Z]+|SIMKUBE_[A-Z0-9_]+|SIMJOB_[A-Z0-9_]+)=' \
        "/proc/$pid/environ" || true; } >"$run/$name.env.new" )
  for f in argv cwd env; do mv -f "$run/$name.$f.new" "$run/$name.$f"; done
}

stop() {
  if ! is_ours; then
    log "$name is not running; nothing to stop"
    return 0
  fi
  local pid; pid="$(pid_of)"
  record "$pid"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do [ -e "/proc/$pid" ] || break; sleep 0.2; done
  if [ -e "/proc/$pid" ]; then
    log "$name (pid $pid) did not stop after 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -e "/proc/$pid" ] || break; sleep 0.2; done
  fi
  [ ! -e "/proc/$pid" ] || die "$name (pid $pid) survived SIGKILL"
  log "stopped $name (pid $pid)"
}

start() {
  if is_ours; then
    log "$name already runs (pid $(pid_of)); nothing to start"
    return 0
  fi
  [ -s "$run/$name.argv" ] || die "no recorded command line for $name (it was not stopped by this script); recover with: make cluster-down && make cluster"
  mapfile -d '' argv <"$run/$name.argv"
  local envs=() cwd
  mapfile -d '' envs <"$run/$name.env"
  cwd="$(cat "$run/$name.cwd")"
  ( cd "$cwd" && exec env -i "${envs[@]}" setsid "${argv[@]}" >>"$logs/$name.log" 2>&1 </dev/null 9>&- ) &
  echo $! >"$run/$name.pid"
  local deadline=$((SECONDS + TIMEOUT))
  until answers >/dev/null 2>&1; do
    if ! is_ours; then
      tail -n 30 "$logs/$name.log" >&2 || true
      die "$name exited right after its restart; log: $logs/$name.log"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "$name does not answer ${TIMEOUT}s after its restart; log: $logs/$name.log"
    sleep 0.2
  done
  log "started $name (pid $(pid_of))"
}

case "$action" in
  stop) stop ;;
  start) start ;;
  restart) stop; start ;;
esac
