#!/usr/bin/env bash
# hack/node/deps.sh — the Debian packages the real node and `make images` call:
#   runc            the OCI runtime containerd's runc shim starts (Debian's build)
#   iptables        kube-proxy (iptables mode) and the kubelet's own chains
#   conntrack       kube-proxy clears stale UDP conntrack entries with it
#   umoci           packs a root filesystem as an OCI image layout (hack/images/)
#   mmdebstrap      builds the Debian root filesystems of the images
#   busybox-static  the tiny images (pause, busybox)
# Quiet when everything is there; installs the missing ones with apt-get.
set -euo pipefail
need=()
command -v runc >/dev/null || need+=(runc)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v umoci >/dev/null || need+=(umoci)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" || need+=(busybox-static)
if [ "${#need[@]}" -gt 0 ]; then
  echo "[node-deps] installing ${need[*]} with apt-get…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
