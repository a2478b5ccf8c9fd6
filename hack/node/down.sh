#!/usr/bin/env bash
# hack/node/down.sh — stop the real node started by up.sh and undo what it changed on
# the host (hack/cluster/down.sh calls it first; safe to run with nothing running).
#
#  1. kube-proxy, then the kubelet: by the PID files (each checked to still be that
#     component; SIGTERM, SIGKILL after 10 s), never by name;
#  2. every container containerd runs for it: `ctr -n NS tasks kill -s SIGKILL`, then
#     tasks and containers deleted, in every containerd namespace; then containerd;
#     then any runc shim still serving our containerd socket (found by its command line,
#     which names that socket) is killed by PID;
#  3. unmounts everything under .cluster/node/ (deepest first; the kubelet's bind
#     mount of its root dir, pod volumes, container root filesystems, shm, netns);
#  4. removes the CNI bridge (simjob0), the /kubepods cgroups in every hierarchy, the
#     iptables/ip6tables chains of the kubelet and kube-proxy (KUBE-*), our CNI cache
#     entries (/var/lib/cni/results/simjob-*), the shim socket folder /run/containerd
#     when empty, /var/log/containers links into our pod logs, and those of
#     /var/lib/kubelet, /var/lib/cni, /var/log/containers, /run/containerd that up.sh
#     found absent (.cluster/node/host-paths.created);
#  5. restores the sysctls recorded by up.sh (.cluster/node/sysctl.saved);
#  6. removes .cluster/node/.
# hack/node/check-clean.sh checks that nothing is left.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${SIMJOB_CLUSTER_DIR:-$repo/.cluster}"
run="$state/run" bin="$state/bin" node="$state/node"
sock="$node/containerd.sock"
BRIDGE="simjob0"
log() { printf '[node] %s\n' "$*" >&2; }

stop() {  # stop NAME: SIGTERM the PID of NAME's PID file if it is still NAME, SIGKILL after 10 s
  local c="$1" f="$run/$1.pid" pid
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$c"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -e "/proc/$pid" ] || break; sleep 0.2; done
    if [ -e "/proc/$pid" ]; then
      log "$c (pid $pid) did not stop after 10 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 25); do [ -e "/proc/$pid" ] || break; sleep 0.2; done
    fi
    log "stopped $c (pid $pid)"
  else
    log "stale PID file for $c (pid $pid is not $c); removing it"
  fi
  rm -f "$f"
}

# A cluster that never had a real node (SIMJOB_REAL_NODE=0, or another cluster's node ran)
# has nothing here, and must not touch the machine-wide state of another cluster's node.
if [ ! -d "$node" ]; then
  rm -f "$run/containerd.pid" "$run/kubelet.pid" "$run/kube-proxy.pid"
  exit 0
fi

stop kube-proxy
stop kubelet

# --- containers ------------------------------------------------------------------------------
if [ -S "$sock" ] && [ -x "$bin/ctr" ] && "$bin/ctr" --address "$sock" version >/dev/null 2>&1; then
  ctr() { timeout 30 "$bin/ctr" --address "$sock" "$@"; }
  for ns in $(ctr namespaces list -q 2>/dev/null); do
    tasks="$(ctr -n "$ns" tasks list -q 2>/dev/null || true)"
    for t in $tasks; do ctr -n "$ns" tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1 || true; done
    # Wait (up to 10 s) until none is RUNNING any more, then delete them.
    for _ in $(seq 1 40); do
      ctr -n "$ns" tasks list 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING" {f=1} END {exit !f}' || break
      sleep 0.25
    done
    for t in $tasks; do
      ctr -n "$ns" tasks delete "$t" >/dev/null 2>&1 || ctr -n "$ns" tasks delete -f "$t" >/dev/null 2>&1 || true
    done
    containers="$(ctr -n "$ns" containers list -q 2>/dev/null || true)"
    for c in $containers; do ctr -n "$ns" containers delete "$c" >/dev/null 2>&1 || true; done
    [ -z "$tasks$containers" ] \
      || log "containerd namespace $ns: killed and deleted $(echo "$tasks" | grep -c . || true) tasks, $(echo "$containers" | grep -c . || true) containers"
  done
fi
stop containerd

# Shims that outlived containerd (they serve the socket named on their command line).
for p in /proc/[0-9]*; do
  pid="${p#/proc/}"
  cmd="$(tr '\0' ' ' 2>/dev/null <"$p/cmdline" || true)"
  case "$cmd" in
    *containerd-shim-runc-v2*"$sock"*)
      log "killing leftover runc shim (pid $pid) and its containers"
      # Its children are the container processes; kill them with it.
      for child in $(cat "$p"/task/*/children 2>/dev/null); do kill -KILL "$child" 2>/dev/null || true; done
      kill -KILL "$pid" 2>/dev/null || true ;;
  esac
done

# --- mounts -----------------------------------------------------------------------------------
if [ -d "$node" ]; then
  real_node="$(realpath "$node")"
  for _ in 1 2 3; do
    mounts="$(awk -v p="$real_node" '{gsub(/\\040/, " ", $2)} index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r)"
    [ -n "$mounts" ] || break
    while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done <<<"$mounts"
  done
  left="$(awk -v p="$real_node" 'index($2, p) == 1 {print $2}' /proc/self/mounts)"
  if [ -n "$left" ]; then
    # Never rm -rf through a mount (a hostPath volume would take host files with it).
    printf '[node] ERROR: still mounted, so %s is kept: %s\n' "$node" "$left" >&2
    exit 1
  fi
fi

# Machine-wide state (bridge, iptables chains, /kubepods cgroups, fixed host paths,
# sysctls) is shared with any other cluster's real node still running: then leave it.
other="$(for p in /proc/[0-9]*; do
  c="$(tr '\0' ' ' 2>/dev/null <"$p/cmdline" || true)"
  case "$c" in *"/bin/kubelet --config="*"/node/kubelet.yaml"*) echo "${p#/proc/} $c";; esac
done | head -n1)"
if [ -n "$other" ]; then
  log "another real node's kubelet runs (pid ${other%% *}); leaving the machine-wide state (bridge, iptables, cgroups, sysctls) to it"
  rm -rf "$node"
  exit 0
fi

# --- network ------------------------------------------------------------------------------------
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link delete "$BRIDGE" && log "removed interface $BRIDGE"
fi
rm -f /var/lib/cni/results/simjob-* 2>/dev/null || true
rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
  command -v "$ipt" >/dev/null || continue
  for table in filter nat mangle; do
    rules="$("$ipt" -t "$table" -S 2>/dev/null || true)"
    chains="$(grep -oE '^-N KUBE-[A-Za-z0-9_-]+' <<<"$rules" | cut -d' ' -f2 || true)"
    [ -n "$chains" ] || continue
    # Rules in other chains that jump to ours, then our chains themselves.
    jumps="$(grep -E '^-A ' <<<"$rules" | grep -E -- '-j KUBE-' | grep -vE '^-A KUBE-' || true)"
    while IFS= read -r r; do
      [ -n "$r" ] && eval "$ipt -t $table ${r/-A /-D }" 2>/dev/null || true
    done <<<"$jumps"
    for ch in $chains; do "$ipt" -t "$table" -F "$ch" 2>/dev/null || true; done
    for ch in $chains; do "$ipt" -t "$table" -X "$ch" 2>/dev/null || true; done
    log "removed $ipt $table chains: $(echo $chains)"
  done
done

# --- cgroups ------------------------------------------------------------------------------------
awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts | while read -r mnt; do
  [ -d "$mnt/kubepods" ] || continue
  for _ in $(seq 1 20); do
    find "$mnt/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ -d "$mnt/kubepods" ] || break
    sleep 0.25
  done
  if [ -d "$mnt/kubepods" ]; then log "WARNING: could not remove $mnt/kubepods"; else log "removed $mnt/kubepods"; fi
done

# --- host files -----------------------------------------------------------------------------------
if [ -d /var/log/containers ] && [ -d "$node" ]; then
  find /var/log/containers -maxdepth 1 -type l -lname "$(realpath "$node")/*" -delete 2>/dev/null || true
  rmdir /var/log/containers 2>/dev/null || true
fi
# Shim sockets (/run/containerd/s), runc state (/run/containerd/runc/NS), ctr fifos: empty
# once every container is gone.
[ -d /run/containerd ] && find /run/containerd -depth -type d -empty -delete 2>/dev/null || true

# The kubelet's device-plugin socket and checkpoint (a fixed path, whatever --root-dir says).
rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint
rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet 2>/dev/null || true
# Fixed host paths that did not exist before up.sh (the kubelet's device-plugins socket
# under /var/lib/kubelet, libcni's cache, ...): removed whole, never through a mount.
if [ -s "$node/host-paths.created" ]; then
  while IFS= read -r p; do
    [ -e "$p" ] || continue
    if awk -v p="$p/" 'index($2 "/", p) == 1 {f=1} END {exit !f}' /proc/self/mounts; then
      log "WARNING: $p has mounts under it; kept"
    else
      rm -rf "$p" && log "removed $p"
    fi
  done <"$node/host-paths.created"
fi

# --- sysctls --------------------------------------------------------------------------------------
if [ -s "$node/sysctl.saved" ]; then
  while IFS='=' read -r k v; do
    cur="$(sysctl -n "$k" 2>/dev/null || true)"
    if [ -n "$cur" ] && [ "$cur" != "$v" ]; then
      sysctl -q -w "$k=$v" && log "restored sysctl $k=$v (was $cur)"
    fi
  done <"$node/sysctl.saved"
fi

rm -rf "$node"
