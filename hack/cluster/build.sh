#!/usr/bin/env bash
# hack/cluster/build.sh — build the local control plane's binaries from Go modules.
#
# Builds, from the versions pinned in hack/cluster/go.mod + go.sum:
#   simkube  multi-call: etcd (embedded), kube-apiserver, kube-controller-manager,
#            kube-scheduler, kubectl, and the real node's kubelet and kube-proxy
#            (hack/node/up.sh) — all from one k8s.io/kubernetes release
#   kwok     sigs.k8s.io/kwok/cmd/kwok, the node/pod simulator
#   stages.yaml  KWOK Stages read from the pinned kwok module (see kwok-stages.sh)
# into a cache folder keyed by those versions and a hash of the sources, so a
# second build is a copy. Prints the cache folder on stdout (last line).
# Used by up.sh; `make cluster-build` calls it directly.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${SIMJOB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simjob}"

log() { printf '[cluster-build] %s\n' "$*" >&2; }
die() { printf '[cluster-build] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go toolchain not found on PATH (need go >= $(awk '/^go /{print $2}' "$here/go.mod"))"

mod_version() { awk -v m="$1" '$1==m && $2 ~ /^v/ {print $2; exit}' "$here/go.mod"; }
k8s_version="$(mod_version k8s.io/kubernetes)"
kwok_version="$(mod_version sigs.k8s.io/kwok)"
[ -n "$k8s_version" ] && [ -n "$kwok_version" ] || die "cannot read pinned versions from $here/go.mod"
grep -q "\"$k8s_version\"" "$here/simkube/version.go" \
  || die "simkube/version.go does not name $k8s_version (go.mod's k8s.io/kubernetes); update it"

src_hash="$(cat "$here/go.mod" "$here/go.sum" "$here"/simkube/*.go "$here/kwok-stages.sh" "$0" \
  | sha256sum | cut -c1-12)"
key="k8s-${k8s_version}_kwok-${kwok_version}_go-$(go env GOVERSION)_${src_hash}"
out="$cache_root/cluster/$key"

if [ -x "$out/bin/simkube" ] && [ -x "$out/bin/kwok" ] && [ -s "$out/stages.yaml" ]; then
  log "cached build found: $out"
  echo "$out"
  exit 0
fi

mkdir -p "$out/bin"
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

log "downloading Go modules (k8s.io/kubernetes $k8s_version, sigs.k8s.io/kwok $kwok_version)…"
if ! go mod download -x >"$out/build-download.log" 2>&1; then
  grep -E "go: |reading|404|410|not found" "$out/build-download.log" | tail -n 20 >&2
  die "go mod download failed (a module/version the proxy does not serve, or a toolchain mismatch). Command: (cd $here && go mod download). Log: $out/build-download.log"
fi
log "building kube-apiserver, controller-manager, scheduler, kubectl, kubelet, kube-proxy and etcd into one binary (first time ~7 min on 2 cores; ~1 min with a warm Go cache)…"
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
run_step simkube go build -trimpath -ldflags="$ldflags" -o "$out/bin/simkube.tmp" ./simkube
log "building kwok $kwok_version…"
run_step kwok go build -trimpath -ldflags="$ldflags" -o "$out/bin/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok
kwok_dir="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
"$here/kwok-stages.sh" "$kwok_dir" >"$out/stages.yaml.tmp" || die "generating KWOK stages from $kwok_dir failed"
mv "$out/bin/simkube.tmp" "$out/bin/simkube"
mv "$out/bin/kwok.tmp" "$out/bin/kwok"
mv "$out/stages.yaml.tmp" "$out/stages.yaml"
log "built into $out ($(du -sh "$out" | cut -f1))"
echo "$out"
