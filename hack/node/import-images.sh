#!/usr/bin/env bash
# hack/node/import-images.sh [NAME...] — import images built by hack/images/build.sh
# (${SIMJOB_CACHE:-~/.cache/simjob}/images/latest/NAME.tar; default: all of them) into
# the running real node's containerd, namespace k8s.io, where the kubelet finds them
# (pods use imagePullPolicy: Never or IfNotPresent). Without a running node it says so
# and does nothing: hack/node/up.sh imports the latest images when the node starts.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${SIMJOB_CLUSTER_DIR:-$repo/.cluster}"
cache_root="${SIMJOB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simjob}"
sock="$state/node/containerd.sock"
log() { printf '[images] %s\n' "$*" >&2; }

if ! [ -S "$sock" ] || ! "$state/bin/ctr" --address "$sock" version >/dev/null 2>&1; then
  log "the real node's containerd is not running: nothing imported now (hack/node/up.sh imports at start)"
  exit 0
fi
tars=()
if [ "$#" -gt 0 ]; then
  for n in "$@"; do tars+=("$cache_root/images/latest/$n.tar"); done
else
  shopt -s nullglob; tars=("$cache_root"/images/latest/*.tar); shopt -u nullglob
fi
for t in "${tars[@]}"; do
  [ -s "$t" ] || { log "ERROR: $t not built (hack/images/build.sh $(basename "$t" .tar))"; exit 1; }
  out="$("$state/bin/ctr" --address "$sock" -n k8s.io images import --snapshotter overlayfs "$t" 2>&1)" \
    || { printf '%s\n' "$out" >&2; log "ERROR: ctr -n k8s.io images import $t failed"; exit 1; }
  log "imported $(basename "$t" .tar) into the node's containerd"
done
