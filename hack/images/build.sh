#!/usr/bin/env bash
# hack/images/build.sh — build SimJob's container images here, without a registry
# or a Docker engine (make images; make image builds only the operator's).
#
# Usage: hack/images/build.sh [--import] [NAME...]   (NAMEs: pause busybox simulation
#        operator; default all)
#
#   docker.io/simjob/pause:local       busybox-static `sleep infinity`: the node's sandbox
#                                      ("pause") image (containerd's sandbox setting)
#   docker.io/simjob/busybox:local     Debian's busybox-static with its applet links
#   docker.io/simjob/simulation:local  a Debian rootfs (mmdebstrap) with python3 and
#                                      python3-numpy, and examples/simulation/ in /opt/simulation;
#                                      runs as uid/gid 65532, entrypoint python3 /opt/simulation/heat.py
#   docker.io/library/simjob-operator:$VERSION  (the chart's default image.repository
#                                      simjob-operator, tag = appVersion) a Debian rootfs with
#                                      python3 and our wheel + dependencies (pip --target);
#                                      entrypoint simjob-operator, uid/gid 65532, like ./Dockerfile
#
# Each image is an OCI layout packed with umoci, tarred as an OCI archive with the
# reference in index.json (io.containerd.image.name), cached by content under
# ${SIMJOB_CACHE:-~/.cache/simjob}/images/<name>-<key>/image.tar, where the key hashes
# this script, the package lists and the sources copied in. A second build is a cache
# hit. The Debian root filesystems (mmdebstrap, from the machine's apt sources) are
# cached under images/rootfs-<name>-<key>/ (key: suite, packages, the mmdebstrap step). images/latest/<name>.tar links to the
# newest build of each; hack/node/up.sh imports those when the node starts, and
# --import imports the built ones now into the running node's containerd
# (ctr -n k8s.io images import). Prints one line per image: NAME REFERENCE TARBALL.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache_root="${SIMJOB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simjob}"
images="$cache_root/images"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml")"
SUITE="${SIMJOB_DEBIAN_SUITE:-bookworm}"

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }

do_import=0
names=()
for a in "$@"; do
  case "$a" in
    --import) do_import=1 ;;
    pause|busybox|simulation|operator) names+=("$a") ;;
    *) die "unknown argument $a (usage: build.sh [--import] [pause|busybox|simulation|operator]...)" ;;
  esac
done
[ "${#names[@]}" -gt 0 ] || names=(pause busybox simulation operator)

"$repo/hack/node/deps.sh"
mkdir -p "$images/latest"

ref_of() {
  case "$1" in
    operator) echo "docker.io/library/simjob-operator:$version" ;;
    *) echo "docker.io/simjob/$1:local" ;;
  esac
}

hash_of() { sha256sum | cut -c1-16; }

prune() {  # prune PREFIX KEEP_DIR: of the cache folders PREFIX-*, keep KEEP_DIR and the newest other one
  local d n=0
  for d in $(ls -dt "$1"-* 2>/dev/null); do
    [ "$d" = "$2" ] && continue
    n=$((n + 1))
    [ "$n" -le 1 ] || rm -rf "$d"
  done
}

run_step() {  # run_step LOG <cmd...>: stop with the exact command when it fails
  local logf="$1"; shift
  if ! "$@" >>"$logf" 2>&1; then
    tail -n 30 "$logf" >&2
    die "command failed: $* (log: $logf)"
  fi
}

# rootfs_debian KEYNAME PACKAGES: a Debian root filesystem from mmdebstrap, cached;
# prints its folder. Docs, man pages and locales are not unpacked.
rootfs_debian() {
  local name="$1" pkgs="$2" key dir start
  # Keyed by this function's own text, the suite and the packages (not the whole script).
  key="$( { printf '%s\n' "$SUITE" "$pkgs"; declare -f rootfs_debian; } | hash_of)"
  dir="$images/rootfs-$name-$key"
  if [ -f "$dir/.complete" ]; then echo "$dir/rootfs"; return; fi
  rm -rf "$dir"; mkdir -p "$dir"
  start=$SECONDS
  log "mmdebstrap $SUITE ($name: $pkgs) — first time ~1–2 min…"
  run_step "$dir/mmdebstrap.log" mmdebstrap --variant=essential --include="$pkgs" \
    --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Check-Date "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/log/* "$1"/tmp/* "$1"/var/lib/apt/lists/*' \
    "$SUITE" "$dir/rootfs"
  touch "$dir/.complete"
  prune "$images/rootfs-$name" "$dir"
  log "rootfs $name built in $((SECONDS - start)) s ($(du -sh "$dir/rootfs" | cut -f1))"
  echo "$dir/rootfs"
}

# rootfs_busybox DIR: busybox-static with its applet links, /tmp, and a passwd file.
rootfs_busybox() {
  local dir="$1" a
  mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc"
  chmod 1777 "$dir/tmp"
  cp /bin/busybox "$dir/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$dir/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}

# add_user BASE_ROOTFS LAYER_DIR: /etc/passwd and /etc/group with user simjob 65532:65532
# (the kubelet passes only the image's uid; containerd takes the gid from /etc/passwd).
add_user() {
  mkdir -p "$2/etc"
  { cat "$1/etc/passwd"; echo 'simjob:x:65532:65532::/nonexistent:/usr/sbin/nologin'; } >"$2/etc/passwd"
  { cat "$1/etc/group"; echo 'simjob:x:65532:'; } >"$2/etc/group"
}

# pack NAME REF OUT_TAR LAYER_DIR... -- UMOCI_CONFIG_ARGS...: an OCI archive from layers.
pack() {
  local name="$1" ref="$2" tar="$3"; shift 3
  local layers=() work tag=local
  while [ "$1" != "--" ]; do layers+=("$1"); shift; done; shift
  work="$(dirname "$tar")/work"
  rm -rf "$work"; mkdir -p "$work"
  local logf; logf="$(dirname "$tar")/umoci.log"
  # Leading layers that are cached folders (Debian root filesystems, Python dependencies)
  # are packed once into a cached layout (umoci compresses each layer: minutes for
  # 200 MB); each build copies it and adds only its own layers.
  local prefix=() rest=() l
  for l in "${layers[@]}"; do
    case "$l" in
      "$images"/rootfs-*|"$images"/pydeps-*) [ "${#rest[@]}" -eq 0 ] && prefix+=("$l") || rest+=("$l") ;;
      *) rest+=("$l") ;;
    esac
  done
  if [ "${#prefix[@]}" -gt 0 ]; then
    local pl; pl="$images/layout-$name-$(printf '%s\n' "${prefix[@]}" | hash_of)"
    if [ ! -f "$pl/.complete" ]; then
      rm -rf "$pl"; mkdir -p "$pl"
      run_step "$logf" umoci init --layout "$pl/oci"
      run_step "$logf" umoci new --image "$pl/oci:$tag"
      for l in "${prefix[@]}"; do
        run_step "$logf" umoci insert --no-history --image "$pl/oci:$tag" "$l" /
      done
      touch "$pl/.complete"
      prune "$images/layout-$name" "$pl"
    fi
    cp -a "$pl/oci" "$work/oci"
  else
    run_step "$logf" umoci init --layout "$work/oci"
    run_step "$logf" umoci new --image "$work/oci:$tag"
  fi
  for l in "${rest[@]}"; do
    run_step "$logf" umoci insert --no-history --image "$work/oci:$tag" "$l" /
  done
  run_step "$logf" umoci config --no-history --image "$work/oci:$tag" \
    --created 1970-01-01T00:00:00Z --author simjob "$@"
  run_step "$logf" umoci gc --layout "$work/oci"
  python3 - "$work/oci/index.json" "$ref" <<'PY'
import json, sys
path, ref = sys.argv[1], sys.argv[2]
index = json.load(open(path))
for m in index["manifests"]:
    ann = m.setdefault("annotations", {})
    ann["io.containerd.image.name"] = ref
    ann["org.opencontainers.image.ref.name"] = ref.rsplit(":", 1)[1]
json.dump(index, open(path, "w"))
PY
  tar -C "$work/oci" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  rm -rf "$work"
}

# The files the wheel is built from: tracked and untracked (not ignored) files, without the
# folders that are not packaged (operator/, slurm_bridge/, simjob_sdk/, pyproject.toml, ...).
operator_sources() {
  (cd "$repo" && git ls-files -co --exclude-standard) \
    | grep -vE '^(tests|docs|bench|examples|charts|hack|crds|\.ci|\.github)/|/__pycache__/' \
    | while IFS= read -r f; do [ -f "$repo/$f" ] && echo "$f"; done
}

build_one() {  # build_one NAME: prints NAME REF TAR
  local name="$1" ref key dir tar start
  ref="$(ref_of "$name")"
  start=$SECONDS
  case "$name" in
    pause|busybox)
      key="$( { cat "$0"; sha256sum /bin/busybox; echo "$ref"; } | hash_of)" ;;
    simulation)
      key="$( { cat "$0"; echo "$ref"; find "$repo/examples/simulation" -type f -name '*.py' -o -type f -name '*.json' | sort | xargs cat; } | hash_of)" ;;
    operator)
      key="$( { cat "$0"; echo "$ref"; operator_sources | sort | (cd "$repo" && xargs cat); } | hash_of)" ;;
  esac
  dir="$images/$name-$key"; tar="$dir/image.tar"
  if [ -s "$tar" ]; then
    log "$name: cached $tar"
  else
    rm -rf "$dir"; mkdir -p "$dir"
    case "$name" in
      pause)
        rootfs_busybox "$dir/rootfs"
        pack "$name" "$ref" "$tar" "$dir/rootfs" -- --config.entrypoint /bin/sleep \
          --config.cmd infinity --config.user 65535:65535 ;;
      busybox)
        rootfs_busybox "$dir/rootfs"
        pack "$name" "$ref" "$tar" "$dir/rootfs" -- --config.cmd /bin/sh \
          --config.env PATH=/bin ;;
      simulation)
        local base; base="$(rootfs_debian simulation "python3-minimal,python3-numpy")"
        mkdir -p "$dir/app/opt/simulation" "$dir/app/work"
        cp "$repo"/examples/simulation/*.py "$dir/app/opt/simulation/"
        chmod 0755 "$dir/app/opt/simulation/heat.py"
        chown 65532:65532 "$dir/app/work"
        add_user "$base" "$dir/app"
        pack "$name" "$ref" "$tar" "$base" "$dir/app" -- \
          --config.entrypoint python3 --config.entrypoint /opt/simulation/heat.py \
          --config.user 65532:65532 --config.workingdir /work \
          --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.env PYTHONUNBUFFERED=1 \
          --config.env SIMJOB_OUTPUT_DIR=/work/output ;;
      operator)
        local base py; base="$(rootfs_debian operator "python3-minimal,python3,ca-certificates")"
        py="$repo/.venv/bin/python"
        [ -x "$py" ] || die "no $py: run make venv first (the wheel is built with it)"
        # Built from a copy of the tracked + untracked (not ignored) sources, so nothing
        # stale (a build/ folder, deleted modules) gets into the wheel.
        mkdir -p "$dir/src"
        operator_sources | tr '\n' '\0' | (cd "$repo" && xargs -0 cp --parents -t "$dir/src")
        run_step "$dir/wheel.log" "$py" -m build --wheel --outdir "$dir/dist" "$dir/src"
        local pyver; pyver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        [ -x "$base/usr/bin/python$pyver" ] \
          || die "the image's Debian python is not $pyver (the venv's, which pip installs for)"
        local wheel; wheel="$(ls "$dir"/dist/simjob-*.whl)"
        local rel="usr/local/lib/python$pyver/dist-packages"
        # The dependencies (kopf, kubernetes, pydantic, PyYAML, asyncssh, ...) are a layer of
        # their own, cached by pyproject.toml: a change of our sources only re-installs the wheel.
        local dkey deps
        dkey="$( { cat "$repo/pyproject.toml"; echo "$pyver"; declare -f build_one; } | hash_of)"
        deps="$images/pydeps-operator-$dkey"
        if [ ! -f "$deps/.complete" ]; then
          rm -rf "$deps"; mkdir -p "$deps/root/$rel"
          log "operator: pip install --target (from PyPI) the dependencies…"
          run_step "$deps/pip.log" "$py" -m pip install --quiet --target "$deps/root/$rel" "$wheel[operator,ssh]"
          rm -rf "$deps/root/$rel/bin" "$deps/root/$rel"/simjob_operator "$deps/root/$rel"/slurm_bridge "$deps/root/$rel"/simjob_sdk \
            "$deps/root/$rel"/simjob-*.dist-info
          touch "$deps/.complete"
          prune "$images/pydeps-operator" "$deps"
        fi
        mkdir -p "$dir/app/$rel" "$dir/app/usr/local/bin"
        run_step "$dir/pip.log" "$py" -m pip install --quiet --no-deps --target "$dir/app/$rel" "$wheel"
        rm -rf "$dir/app/$rel/bin"
        cat >"$dir/app/usr/local/bin/simjob-operator" <<'SH'
#!/usr/bin/python3
import sys

from simjob_operator.main import cli

sys.exit(cli())
SH
        chmod 0755 "$dir/app/usr/local/bin/simjob-operator"
        add_user "$base" "$dir/app"
        pack "$name" "$ref" "$tar" "$base" "$deps/root" "$dir/app" -- \
          --config.entrypoint simjob-operator --config.cmd --liveness=http://0.0.0.0:8080/healthz \
          --config.user 65532:65532 --config.exposedports 8080/tcp \
          --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.env PYTHONUNBUFFERED=1 \
          --config.env PYTHONDONTWRITEBYTECODE=1 ;;
    esac
    rm -rf "$dir/rootfs" "$dir/app" "$dir/src"
    log "$name: built $ref in $((SECONDS - start)) s ($(du -h "$tar" | cut -f1))"
  fi
  ln -sfn "$tar" "$images/latest/$name.tar"
  prune "$images/$name" "$dir"
  echo "$name $ref $tar"
}

for n in "${names[@]}"; do build_one "$n"; done

if [ "$do_import" = 1 ]; then
  "$repo/hack/node/import-images.sh" "${names[@]}"
fi
