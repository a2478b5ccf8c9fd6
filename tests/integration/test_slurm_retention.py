"""Retention of outputs on real Slurm (issue 12 item 6): the operator removes exactly one
run directory once its outputs expired, and refuses a path that escapes.

The session operator drives the real local Slurm (hack/slurm/up.sh) through a
SlurmCluster in local mode whose workDir is a fresh directory; every SimJob runs in its
run directory ``<workDir>/<namespace>/<name>-<uid>`` (status.workspace.directory) and
writes ``$SIMJOB_OUTPUT_DIR/result.txt``. One SimJob is on a tier whose outputs expire
5 s after the end, its neighbour on a tier that keeps them: the first run directory goes
(``slurm_bridge.rundirs.remove_run_dir`` through ``backends.slurm.retention``), the
neighbour's and the namespace directory stay, and the SimJob gets OutputsRemoved True.
Then a run directory replaced by the test, after its run, with a symlink to a directory
outside the workDir: the removal is refused (OutputsRemoved False, reason
OutputsRemovalRefused) and what the symlink points at survives.
Neighbours: test_slurm_operator.py (the fixtures' pattern), test_realnode_retention.py
(the same on Kubernetes), tests/unit/test_retention.py.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simjob_operator.core.retention import COND_OUTPUTS_REMOVED, REASON_EXPIRED, REASON_REFUSED
from tests.integration.conftest import Kube, OperatorProcess, wait_for
from tests.integration.slurm_operator_helpers import slurm_cluster, slurm_simjob, wait_reachable

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

WRITE = 'echo "$0" > "$SIMJOB_OUTPUT_DIR/result.txt"'


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slurm-retention-work")


@pytest.fixture(scope="module")
def site(
    kube: Kube, operator: OperatorProcess, slurm_env: dict[str, str], work_dir: Path
) -> Iterator[tuple[str, str]]:
    """(SlurmCluster name, tier prefix) with tiers ``-expire5``, ``-expire20``, ``-keep``."""
    suffix = uuid.uuid4().hex[:6]
    cluster, prefix = f"rt-slurm-{suffix}", f"rts-{suffix}"
    base: dict[str, Any] = {
        "cpu": "1",
        "memory": "100Mi",
        "maxRuntimeSeconds": 600,
        "maxConcurrentPerOwner": 10,
        "ttlSecondsAfterFinished": 600,
    }
    tiers = {
        f"{prefix}-expire5": {**base, "outputRetentionSeconds": 5},
        f"{prefix}-expire20": {**base, "outputRetentionSeconds": 20},
        f"{prefix}-keep": base,
    }
    kube.apply(
        *(
            {"apiVersion": "simjob.io/v1alpha1", "kind": "SimTier", "metadata": {"name": n}}
            | {"spec": spec}
            for n, spec in tiers.items()
        ),
        slurm_cluster(cluster, mode="local", workDir=str(work_dir)),
    )
    wait_reachable(kube, cluster, "True", timeout=60)
    try:
        yield cluster, prefix
    finally:
        kube.run("delete", "slurmclusters.simjob.io", cluster, "--ignore-not-found", check=False)
        kube.run("delete", "simtiers.simjob.io", *tiers, "--ignore-not-found", check=False)


def condition(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    for cond in kube.status(namespace, name).get("conditions") or []:
        if cond["type"] == COND_OUTPUTS_REMOVED:
            return dict(cond)
    return None


def wait_removal(kube: Kube, namespace: str, name: str, timeout: float = 90) -> dict[str, Any]:
    return wait_for(
        lambda: condition(kube, namespace, name),
        timeout=timeout,
        what=f"{namespace}/{name} to record the removal of its outputs",
        detail=lambda: kube.status(namespace, name),
    )


def run_dir(kube: Kube, namespace: str, name: str, cluster: str) -> Path:
    workspace = kube.status(namespace, name).get("workspace") or {}
    assert workspace.get("cluster") == cluster, kube.status(namespace, name)
    return Path(workspace["directory"])


def test_expired_run_directory_goes_and_the_neighbour_stays(
    kube: Kube, namespace: str, site: tuple[str, str], work_dir: Path
) -> None:
    cluster, prefix = site
    kube.apply(
        slurm_simjob("short", cluster, "sh", "-c", WRITE, "mine", tier=f"{prefix}-expire5"),
        slurm_simjob("neighbour", cluster, "sh", "-c", WRITE, "theirs", tier=f"{prefix}-keep"),
        namespace=namespace,
    )
    for name in ("short", "neighbour"):
        kube.wait_phase(namespace, name, "Succeeded", timeout=120)
    mine = run_dir(kube, namespace, "short", cluster)
    theirs = run_dir(kube, namespace, "neighbour", cluster)
    assert mine.parent == theirs.parent == work_dir / namespace
    assert (theirs / "outputs" / "result.txt").read_text() == "theirs\n"
    cond = wait_removal(kube, namespace, "short")
    assert cond["status"] == "True", cond
    assert cond["reason"] == REASON_EXPIRED
    assert "removed" in cond["message"], cond
    assert not mine.exists()
    assert (theirs / "outputs" / "result.txt").read_text() == "theirs\n"
    assert (work_dir / namespace).is_dir()
    assert condition(kube, namespace, "neighbour") is None
    assert kube.simjob(namespace, "short")["status"]["phase"] == "Succeeded"  # TTL 600 s


def test_a_run_directory_escaping_the_work_dir_is_refused(
    kube: Kube, namespace: str, site: tuple[str, str]
) -> None:
    cluster, prefix = site
    kube.apply(
        slurm_simjob("escape", cluster, "sh", "-c", WRITE, "x", tier=f"{prefix}-expire20"),
        namespace=namespace,
    )
    kube.wait_phase(namespace, "escape", "Succeeded", timeout=120)
    directory = run_dir(kube, namespace, "escape", cluster)
    outside = Path(tempfile.mkdtemp(prefix="rts-outside-"))
    try:
        (outside / "keep.txt").write_text("keep")
        directory.rename(directory.with_name(directory.name + ".moved"))
        directory.symlink_to(outside)  # after the run: the run directory leaves the workDir
        cond = wait_removal(kube, namespace, "escape")
        assert cond["status"] == "False", cond
        assert cond["reason"] == REASON_REFUSED
        assert "symlink" in cond["message"], cond
        assert (outside / "keep.txt").read_text() == "keep"
        assert directory.is_symlink()
    finally:
        shutil.rmtree(outside, ignore_errors=True)
