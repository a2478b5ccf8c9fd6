#!/usr/bin/env bash
# hack/node/build.sh — build the real node's container runtime from Go modules.
#
# Builds, from the versions pinned in hack/node/go.mod + go.sum (a module of its
# own: containerd's dependency versions differ from the control plane's):
#   containerd, ctr, containerd-shim-runc-v2   github.com/containerd/containerd/v2
#                                              (tags no_btrfs no_devmapper no_zfs)
#   cni/bridge, cni/host-local, cni/loopback, cni/portmap
#                                              github.com/containernetworking/plugins
# into ${SIMJOB_CACHE:-~/.cache/simjob}/node/<key>/, where the key names the
# containerd, CNI plugins and Go versions and a hash of the build sources, so a
# second build is a cache hit. runc comes from Debian (hack/node/deps.sh); the
# kubelet and kube-proxy are in the control plane's `simkube` binary
# (hack/cluster/build.sh). Prints the cache folder on stdout (last line).
# Used by up.sh; `make node-build` calls it directly.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${SIMJOB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simjob}"

log() { printf '[node-build] %s\n' "$*" >&2; }
die() { printf '[node-build] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go toolchain not found on PATH (need go >= $(awk '/^go /{print $2}' "$here/go.mod"))"
[ -s "$here/go.sum" ] || die "$here/go.sum is missing: run (cd $here && go mod tidy) and commit it"

mod_version() {  # the version of module $1 in go.mod (block or one-line `require`)
  awk -v m="$1" '$1=="require" {$1=""; $0=$0} $1==m && $2 ~ /^v/ {print $2; exit}' "$here/go.mod"
}
containerd_version="$(mod_version github.com/containerd/containerd/v2)"
cni_version="$(mod_version github.com/containernetworking/plugins)"
[ -n "$containerd_version" ] && [ -n "$cni_version" ] || die "cannot read pinned versions from $here/go.mod"

src_hash="$(cat "$here/go.mod" "$here/go.sum" "$here/tools.go" "$0" | sha256sum | cut -c1-12)"
key="containerd-${containerd_version}_cni-${cni_version}_go-$(go env GOVERSION)_${src_hash}"
out="$cache_root/node/$key"
BINS=(containerd ctr containerd-shim-runc-v2)
CNIS=(bridge host-local loopback portmap)

complete() {
  local b
  for b in "${BINS[@]}"; do [ -x "$out/bin/$b" ] || return 1; done
  for b in "${CNIS[@]}"; do [ -x "$out/cni/$b" ] || return 1; done
}
if complete; then
  log "cached build found: $out"
  echo "$out"
  exit 0
fi

mkdir -p "$out/bin" "$out/cni"
cd "$here"
export GOFLAGS="-mod=readonly"
export CGO_ENABLED=0

run_step() {  # run_step <what> <cmd...>: stop with the exact command when it fails
  local what="$1"; shift
  local start=$SECONDS
  if ! "$@" >"$out/build-$what.log" 2>&1; then
    tail -n 40 "$out/build-$what.log" >&2
    die "building $what failed. Command: (cd $here && $*). Full log: $out/build-$what.log"
  fi
  log "$what done in $((SECONDS - start)) s"
}

log "downloading Go modules (containerd $containerd_version, CNI plugins $cni_version)…"
if ! go mod download -x >"$out/build-download.log" 2>&1; then
  grep -E "go: |reading|404|410|not found" "$out/build-download.log" | tail -n 20 >&2
  die "go mod download failed (a module/version the proxy does not serve, or a toolchain mismatch). Command: (cd $here && go mod download). Log: $out/build-download.log"
fi

log "building containerd, ctr and containerd-shim-runc-v2 $containerd_version (first time ~3 min on 2 cores; ~1 min with a warm Go cache)…"
cpkg=github.com/containerd/containerd/v2
ldflags="-s -w -X $cpkg/version.Version=$containerd_version -X $cpkg/version.Revision=gomod"
ldflags+=" -X $cpkg/version.Package=$cpkg"
run_step containerd go build -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags="$ldflags" \
  -o "$out/bin.tmp/" "$cpkg/cmd/containerd" "$cpkg/cmd/ctr" "$cpkg/cmd/containerd-shim-runc-v2"

log "building CNI plugins ${CNIS[*]} $cni_version…"
ppkg=github.com/containernetworking/plugins
ldflags="-s -w -X $ppkg/pkg/utils/buildversion.BuildVersion=$cni_version"
run_step cni go build -trimpath -ldflags="$ldflags" -o "$out/cni.tmp/" \
  "$ppkg/plugins/main/bridge" "$ppkg/plugins/ipam/host-local" \
  "$ppkg/plugins/main/loopback" "$ppkg/plugins/meta/portmap"

for b in "${BINS[@]}"; do mv "$out/bin.tmp/$b" "$out/bin/$b"; done
for b in "${CNIS[@]}"; do mv "$out/cni.tmp/$b" "$out/cni/$b"; done
rmdir "$out/bin.tmp" "$out/cni.tmp"
log "built into $out ($(du -sh "$out" | cut -f1))"
echo "$out"
