#!/usr/bin/env bash
# hack/cluster/down.sh — stop the local control plane started by up.sh (make cluster-down).
#
# Stops exactly the processes named by the PID files under .cluster/run/ (each
# checked to still be that component, so a reused PID is never signalled):
# SIGTERM, then SIGKILL after a grace period; never kills by name. Then removes
# the cluster state (etcd data, certificates, logs); hack/node/down.sh stops the real
# node and undoes its changes to the host first. Safe with nothing running,
# stale PID files or a half-started cluster. The build cache is kept.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${SIMJOB_CLUSTER_DIR:-$repo/.cluster}"
run="$state/run"
log() { printf '[cluster] %s\n' "$*" >&2; }
# One up.sh or down.sh at a time per state folder (a down racing an up removes the state
# from under the new processes). The lock lives outside the state folder, which down removes.
lock_dir="${SIMJOB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simjob}/locks"
mkdir -p "$lock_dir"
exec 9>"$lock_dir/cluster-$(printf '%s' "$state" | sha256sum | cut -c1-12).lock"
if ! flock -n 9; then
  log "another hack/cluster/up.sh or down.sh runs on $state; waiting for it (up to 15 min)…"
  flock -w 900 9 || { log "ERROR: still locked after 15 min"; exit 1; }
fi

# The real node first (its containers, mounts, interface, cgroups, iptables chains, sysctls).
"$repo/hack/node/down.sh" || log "hack/node/down.sh failed: see above (run it again, then check with hack/node/check-clean.sh)"

# Reverse start order: KWOK and controllers before the API server, etcd last.
for c in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  f="$run/$c.pid"
  [ -f "$f" ] || continue
  pid="$(cat "$f")"
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$c"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -e "/proc/$pid" ] || break; sleep 0.2; done
    if [ -e "/proc/$pid" ]; then
      log "$c (pid $pid) did not stop after 10 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $c (pid $pid)"
  else
    log "stale PID file for $c (pid $pid is not $c); removing it"
  fi
  rm -f "$f"
done
if [ -d "$state" ] && awk -v p="$(realpath "$state")" 'index($2, p) == 1 {f=1} END {exit !f}' /proc/self/mounts; then
  log "ERROR: something is still mounted under $state, so it is kept (never rm -rf through a mount); run hack/node/down.sh again"
  exit 1
fi
if [ -d "$state" ]; then
  rm -rf "$state"
  log "removed $state"
fi
