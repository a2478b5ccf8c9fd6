#!/usr/bin/env bash
# hack/deps.sh — make sure the machine has what the build and tests call
# (Debian packages; Go comes with the machine). Slurm and munge are installed by
# hack/slurm/up.sh. Quiet when everything is there.
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl ca-certificates)
command -v ss >/dev/null || need+=(iproute2)
command -v setsid >/dev/null || need+=(util-linux)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)   # the Slurm bridge's SSH tests (a loopback sshd)
command -v podman >/dev/null || need+=(podman)     # container jobs on the local Slurm (hack/slurm/podman.sh)
command -v runc >/dev/null || need+=(runc)         # podman's runtime on cgroup-hybrid hosts, the real node's
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# The example simulation (examples/simulation/heat.py) runs as a Slurm job of any site
# user, with the system python3: the Slurm data-path tests need numpy there.
/usr/bin/python3 -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
if [ "${#need[@]}" -gt 0 ]; then
  echo "[deps] installing ${need[*]} with apt-get…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v go >/dev/null; then
  echo "[deps] ERROR: no Go toolchain on PATH; the local control plane is built from Go modules (go >= $(awk '/^go /{print $2}' hack/cluster/go.mod))." >&2
  exit 1
fi
