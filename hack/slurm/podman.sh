#!/usr/bin/env bash
# hack/slurm/podman.sh — podman for the local Slurm's container jobs (docs/slurm.md, "Containers").
#
# Role: installs podman and runc from Debian when missing, loads an OCI archive (default: the
# simulation image of hack/images/build.sh, docker.io/simjob/simulation:local) into a podman
# store of its own under ${SIMJOB_CACHE:-~/.cache/simjob}/podman/ — never the machine's
# /var/lib/containers — once per archive content, and prints, as one JSON object, the
# containerOptions a SlurmCluster needs to run that image with podman on THIS machine:
#
#   {"globalArgs": [...], "runArgs": [...]}
#
#   globalArgs  --root/--runroot of that store, --storage-driver=overlay, --cgroup-manager=cgroupfs
#               (no systemd here), and --runtime=runc where crun cannot run: on a host with
#               cgroup v1 hierarchies plus a cgroup2 mount that has controllers ("hybrid"),
#               crun 1.8 refuses every container ("cgroups in hybrid mode not supported").
#   runArgs     --pull=never (no registry); for root: --userns=host and --user=0:0 (keep-id is
#               for rootless podman; the run directory belongs to the job's user, mode 0700);
#               with runc: --cgroups=enabled (runc cannot run without cgroups; the container
#               then lives in podman's own cgroup, not the Slurm job's); and for a root without
#               CAP_SYS_RESOURCE (a container or VM sandbox): --ulimit=nofile/nproc at values it
#               may set, since rootful podman otherwise raises both limits and fails (EPERM).
#
# Usage: hack/slurm/podman.sh [ARCHIVE REFERENCE]   (both or neither)
# Idempotent and fast when done: a stamp per archive digest; `podman image exists` checked.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache_root="${SIMJOB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simjob}"
store="$cache_root/podman"

log() { printf '[podman] %s\n' "$*" >&2; }
die() { printf '[podman] ERROR: %s\n' "$*" >&2; exit 1; }

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
if [ "${#need[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "podman is not installed and we are not root: apt-get install ${need[*]}"
  log "installing ${need[*]} with apt-get (one-time, about a minute)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

if [ "$#" -eq 2 ]; then
  archive="$1"; ref="$2"
elif [ "$#" -eq 0 ]; then
  ref="docker.io/simjob/simulation:local"
  archive="$("$repo/hack/images/build.sh" simulation | awk '$1 == "simulation" {print $3}')"
else
  die "usage: hack/slurm/podman.sh [ARCHIVE REFERENCE]"
fi
[ -s "$archive" ] || die "no OCI archive at '$archive'"

mkdir -p "$store"
exec 9>"$store/.lock"
flock 9

runtime=crun
controllers=""
[ -r /sys/fs/cgroup/unified/cgroup.controllers ] && controllers="$(cat /sys/fs/cgroup/unified/cgroup.controllers)"
if [ -d /sys/fs/cgroup/cpu ] && [ -n "$controllers" ]; then
  runtime=runc
fi
global=(--root="$store/root" --runroot="$store/run" --storage-driver=overlay
        --cgroup-manager=cgroupfs --events-backend=file)
[ "$runtime" = runc ] && global+=(--runtime=runc)

digest="$(sha256sum "$archive" | cut -c1-32)"
stamp="$store/loaded-$digest"
if [ -f "$stamp" ] && podman "${global[@]}" image exists "$ref"; then
  log "$ref: loaded already ($archive)"
else
  start=$SECONDS
  log "loading $archive into $store as $ref…"
  id="$(podman "${global[@]}" load --quiet --input "$archive" | sed -n 's/^Loaded image[^:]*: *//p' | tail -n1)"
  [ -n "$id" ] || die "podman load printed no image"
  [ "$id" = "$ref" ] || podman "${global[@]}" tag "$id" "$ref"
  podman "${global[@]}" image exists "$ref" || die "$ref is not in the store after loading"
  rm -f "$store"/loaded-*
  touch "$stamp"
  log "$ref loaded in $((SECONDS - start)) s"
fi

run=(--pull=never)
if [ "$(id -u)" = 0 ]; then
  run+=(--userns=host "--user=0:0")
fi
[ "$runtime" = runc ] && run+=(--cgroups=enabled)
# CAP_SYS_RESOURCE is bit 24 of the effective capabilities.
caps="$(awk '/^CapEff:/ {print $2}' /proc/self/status)"
if [ "$(id -u)" = 0 ] && (( (16#$caps >> 24 & 1) == 0 )); then
  run+=(--ulimit=nofile=4096:4096 --ulimit=nproc=4096:4096)
fi

python3 - "${#global[@]}" "${global[@]}" "${run[@]}" <<'PY'
import json, sys
count = int(sys.argv[1])
words = sys.argv[2:]
print(json.dumps({"globalArgs": words[:count], "runArgs": words[count:]}))
PY
