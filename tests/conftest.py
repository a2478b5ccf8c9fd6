"""Session fixtures that hand tests the real local control plane and Slurm.

``kubeconfig`` runs hack/cluster/up.sh (idempotent: a running cluster is reused)
and returns the admin kubeconfig; if this session started the cluster, it stops
it at the end (hack/cluster/down.sh, by PID files). ``slurm_env`` does the same
for hack/slurm/up.sh via tests/support/slurm_env.py. Set SIMJOB_KEEP_CLUSTER=1 to leave
what a session started running for the next one.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# hack/cluster/up.sh keeps its state here (SIMJOB_CLUSTER_DIR chooses another, isolated one).
CLUSTER_DIR = Path(os.environ.get("SIMJOB_CLUSTER_DIR") or REPO / ".cluster")
KUBECONFIG = CLUSTER_DIR / "kubeconfig"


def _cluster_running() -> bool:
    result = (
        subprocess.run(
            [
                str(CLUSTER_DIR / "bin" / "kubectl"),
                "--kubeconfig",
                str(KUBECONFIG),
                "get",
                "--raw",
                "/readyz",
            ],
            capture_output=True,
            check=False,
            timeout=30,
        )
        if (CLUSTER_DIR / "bin" / "kubectl").exists()
        else None
    )
    return result is not None and result.returncode == 0


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[Path]:
    """The admin kubeconfig of the real local control plane (started if needed)."""
    started_here = not _cluster_running()
    subprocess.run([str(REPO / "hack" / "cluster" / "up.sh")], check=True, timeout=3600)
    try:
        yield KUBECONFIG
    finally:
        if started_here and os.environ.get("SIMJOB_KEEP_CLUSTER") != "1":
            subprocess.run([str(REPO / "hack" / "cluster" / "down.sh")], check=False, timeout=120)


@pytest.fixture(scope="session")
def slurm_env() -> Iterator[dict[str, str]]:
    """Environment for Slurm clients of the real local Slurm (started if needed)."""
    from tests.support.slurm_env import slurm_environment

    started_here = not _slurm_running()
    env = slurm_environment(REPO)
    try:
        yield env
    finally:
        if started_here and os.environ.get("SIMJOB_KEEP_CLUSTER") != "1":
            subprocess.run([str(REPO / "hack" / "slurm" / "down.sh")], check=False, timeout=120)


def _slurm_running() -> bool:
    """True when hack/slurm/up.sh finds everything running already (it is idempotent)."""
    pid_dir = REPO / ".slurm" / "run"
    pids = [p.read_text().strip() for p in pid_dir.glob("*.pid")] if pid_dir.is_dir() else []
    return bool(pids) and all(Path(f"/proc/{pid}").exists() for pid in pids if pid)


@pytest.fixture(scope="session")
def kubectl_path() -> Path:
    """kubectl built from the same Kubernetes release as the API server."""
    return CLUSTER_DIR / "bin" / "kubectl"


def _stray_outputs() -> set[Path]:
    return set(REPO.glob("slurm-*.out"))


@pytest.fixture(scope="session", autouse=True)
def nothing_written_into_the_repository() -> Iterator[None]:
    """No test may leave files in the work tree (e.g. a Slurm job whose output went to
    the current directory): the session fails at its end if one appeared."""
    before = _stray_outputs()
    yield
    new = sorted(str(path.relative_to(REPO)) for path in _stray_outputs() - before)
    assert not new, f"tests wrote into the repository: {new}"
