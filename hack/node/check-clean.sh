#!/usr/bin/env bash
# hack/node/check-clean.sh — after `make cluster-down`, check that the real node left
# nothing behind on this machine; prints each leftover and exits 1 if any.
#
# Checks: no process runs our containerd/kubelet/kube-proxy/runc shim (by command line
# naming .cluster/ or our containerd socket); no mount under .cluster/; no simjob0
# interface; no /kubepods cgroup in any hierarchy; no KUBE-* iptables/ip6tables chain;
# no /run/containerd, no /var/lib/cni/results/simjob-*, no /var/log/containers; the
# sysctls equal the values hack/node/up.sh recorded before its last start
# (${SIMJOB_CACHE:-~/.cache/simjob}/node/sysctl-baseline.txt).
# Not part of the test suite (the tests keep the cluster up); run it by hand:
#   make cluster-down && hack/node/check-clean.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${SIMJOB_CLUSTER_DIR:-$repo/.cluster}"
cache_root="${SIMJOB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simjob}"
bad=0
leftover() { printf '[check-clean] LEFT: %s\n' "$*" >&2; bad=1; }

for p in /proc/[0-9]*; do
  cmd="$(tr '\0' ' ' 2>/dev/null <"$p/cmdline" || true)"
  case "$cmd" in
    *"$state/node/containerd.sock"*|*"$state/bin/containerd "*|*"$state/bin/kubelet "*|*"$state/bin/kube-proxy "*)
      leftover "process ${p#/proc/}: $cmd" ;;
  esac
done
real_state="$(realpath -m "$state")"
while read -r _ mnt _; do
  case "$mnt" in "$real_state"*) leftover "mount $mnt" ;; esac
done </proc/self/mounts
ip link show simjob0 >/dev/null 2>&1 && leftover "network interface simjob0"
while read -r mnt; do
  [ -d "$mnt/kubepods" ] && leftover "cgroup $mnt/kubepods"
done < <(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts)
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
  command -v "$ipt" >/dev/null || continue
  for table in filter nat mangle; do
    chains="$("$ipt" -t "$table" -S 2>/dev/null | grep -oE '^-N KUBE-[A-Za-z0-9_-]+' | cut -d' ' -f2 || true)"
    [ -z "$chains" ] || leftover "$ipt -t $table chains: $(echo $chains)"
  done
done
[ -e /run/containerd ] && leftover "/run/containerd ($(ls -A /run/containerd | head -5 | tr '\n' ' '))"
compgen -G '/var/lib/cni/results/simjob-*' >/dev/null && leftover "/var/lib/cni/results/simjob-*"
[ -e /var/log/containers ] && leftover "/var/log/containers"
[ -e /var/lib/kubelet ] && leftover "/var/lib/kubelet ($(ls -A /var/lib/kubelet | tr '\n' ' '))"
if [ -s "$cache_root/node/sysctl-baseline.txt" ]; then
  while IFS='=' read -r k v; do
    cur="$(sysctl -n "$k" 2>/dev/null || true)"
    [ -z "$cur" ] || [ "$cur" = "$v" ] || leftover "sysctl $k=$cur (was $v before the node started)"
  done <"$cache_root/node/sysctl-baseline.txt"
fi
[ -d "$state/node" ] && leftover "$state/node"
if [ "$bad" = 0 ]; then echo "[check-clean] nothing left behind by the real node"; fi
exit "$bad"
