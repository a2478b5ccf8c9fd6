#!/usr/bin/env bash
# hack/helm/build.sh — build `helm` from Go modules, at the version pinned in
# hack/helm/go.mod + go.sum (a module of its own: Helm's k8s.io/* versions differ
# from the control plane's in hack/cluster/go.mod).
#
# Output: ${SIMJOB_CACHE:-~/.cache/simjob}/helm/<key>/bin/helm, where the key names
# the Helm and Go versions and a hash of the build sources, so a second build is a
# cache hit. Links it as .cluster/bin/helm (next to kubectl) and prints the binary's
# path on stdout (last line). The version flags are set like Helm's own Makefile
# does (`helm version` says v3.x.y, and `helm template`/`lint` assume the
# Kubernetes minor of the client-go Helm was built with, not v1.20).
# Used by `make helm-build` (a prerequisite of `make test`) and tests/integration/test_chart.py.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache_root="${SIMJOB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simjob}"

log() { printf '[helm-build] %s\n' "$*" >&2; }
die() { printf '[helm-build] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go toolchain not found on PATH (need go >= $(awk '/^go /{print $2}' "$here/go.mod"))"
[ -s "$here/go.sum" ] || die "$here/go.sum is missing: run (cd $here && go mod tidy) and commit it"

mod_version() {  # the version of module $1 in go.mod (block or one-line `require`)
  awk -v m="$1" '$1=="require" {$1=""; $0=$0} $1==m && $2 ~ /^v/ {print $2; exit}' "$here/go.mod"
}
helm_version="$(mod_version helm.sh/helm/v3)"
client_go="$(mod_version k8s.io/client-go)"
[ -n "$helm_version" ] || die "cannot read the pinned helm.sh/helm/v3 version from $here/go.mod"
[ -n "$client_go" ] || die "cannot read the k8s.io/client-go version from $here/go.mod (run go mod tidy)"

src_hash="$(cat "$here/go.mod" "$here/go.sum" "$here/tools.go" "$0" | sha256sum | cut -c1-12)"
key="helm-${helm_version}_go-$(go env GOVERSION)_${src_hash}"
out="$cache_root/helm/$key"

link() {
  mkdir -p "$repo/.cluster/bin"
  ln -sfn "$out/bin/helm" "$repo/.cluster/bin/helm"
  echo "$out/bin/helm"
}

if [ -x "$out/bin/helm" ]; then
  log "cached build found: $out"
  link
  exit 0
fi

mkdir -p "$out/bin"
cd "$here"
export GOFLAGS="-mod=readonly"
export CGO_ENABLED=0

log "downloading Go modules (helm.sh/helm/v3 $helm_version)…"
if ! go mod download -x >"$out/build-download.log" 2>&1; then
  grep -E "go: |reading|404|410|not found" "$out/build-download.log" | tail -n 20 >&2
  die "go mod download failed (a module/version the proxy does not serve, or a toolchain mismatch). Command: (cd $here && go mod download). Log: $out/build-download.log"
fi

# client-go v0.X.Y belongs to Kubernetes v1.X (Helm's Makefile computes it the same way).
k8s_minor="$(cut -d. -f2 <<<"$client_go")"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done

log "building helm $helm_version (first time ~1.5 min on 2 cores, module download excluded)…"
start=$SECONDS
if ! go build -trimpath -ldflags="$ldflags" -o "$out/bin/helm.tmp" helm.sh/helm/v3/cmd/helm \
    >"$out/build-helm.log" 2>&1; then
  tail -n 40 "$out/build-helm.log" >&2
  die "building helm failed. Command: (cd $here && CGO_ENABLED=0 go build -trimpath -ldflags='$ldflags' helm.sh/helm/v3/cmd/helm). Full log: $out/build-helm.log"
fi
got="$("$out/bin/helm.tmp" version --template '{{.Version}}')" \
  || die "the built binary does not run: $out/bin/helm.tmp version"
[ "$got" = "$helm_version" ] || die "the built helm says '$got', expected $helm_version (ldflags not applied?)"
mv "$out/bin/helm.tmp" "$out/bin/helm"
log "helm $helm_version built in $((SECONDS - start)) s into $out ($(du -sh "$out" | cut -f1))"
link
