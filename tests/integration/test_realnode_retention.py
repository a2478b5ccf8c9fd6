"""Retention of outputs on the real node (issue 12 item 6): the operator removes exactly
one run's directory from a claim once its outputs expired, and refuses a path that
escapes.

Two SimJobs write into the same claim (a ``local`` PersistentVolume on the real node,
fixture ``workspace`` of test_realnode_simjobs.py, read here from the host): one on a
tier whose outputs expire 5 s after the end, the neighbour on a tier that keeps them.
The first one's directory goes from the host (through the operator's removal Job, a
busybox pod mounting the same claim), its SimJob gets the condition OutputsRemoved
True, and the neighbour's files, the namespace directory and the SimJob objects stay
(ttlSecondsAfterFinished is longer). Then a SimJob whose sub-path's parent the test
replaces by a symlink to a directory outside the claim, after it finished: the removal
is refused (OutputsRemoved False, reason OutputsRemovalRefused, a Warning Event) and
the directory outside keeps its file. Reuse (issue 13): a SimJob of the same runKey
and inputHash is Reused while the source's outputs are kept, and runs anew once they
expired. An operator killed (SIGKILL) while its removal Job runs adopts that Job after
the restart and records the removal once. The removal image is the node's busybox
(hack/images/build.sh), tagged as the operator's default image
(``core.settings.Retention.removal_image``).

Neighbours: test_realnode_simjobs.py (fixtures, the workspace test), tests/unit/
test_retention.py (the rules and the removal program on the host's sh).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simjob_operator.core.retention import COND_OUTPUTS_REMOVED, REASON_EXPIRED, REASON_REFUSED
from simjob_operator.core.settings import DEFAULT
from tests.integration.conftest import REPO, Kube, OperatorProcess, wait_for
from tests.integration.test_realnode_simjobs import (  # fixtures, used by name
    CLAIM,
    PLACEMENT,
    Workspace,
    ctr,
    real_node,  # noqa: F401
    workspace,  # noqa: F401
)

pytestmark = [pytest.mark.integration, pytest.mark.realnode]

BUSYBOX = "docker.io/simjob/busybox:local"
WRITE = 'mkdir -p "$SIMJOB_OUTPUT_DIR/deep" && echo "$0" > "$SIMJOB_OUTPUT_DIR/deep/result.txt"'


@pytest.fixture(scope="module")
def removal_image(real_node: str) -> str:  # noqa: F811 - the imported fixture
    """The node's busybox under the operator's default removal image name."""
    subprocess.run(
        [str(REPO / "hack" / "images" / "build.sh"), "--import", "busybox"],
        check=True,
        timeout=1800,
        stdout=subprocess.DEVNULL,
    )
    image = DEFAULT.retention.removal_image
    if image not in ctr("images", "ls", "-q").split():
        ctr("images", "tag", BUSYBOX, image)
    return image


@pytest.fixture(scope="module")
def retention_tiers(kube: Kube, operator: OperatorProcess, removal_image: str) -> Iterator[str]:
    """(prefix): ``<prefix>-expire5`` (outputs 5 s), ``-expire20`` (20 s), ``-keep``."""
    prefix = f"rt-{uuid.uuid4().hex[:6]}"
    base: dict[str, Any] = {
        "cpu": "100m",
        "memory": "64Mi",
        "maxRuntimeSeconds": 120,
        "maxConcurrentPerOwner": 10,
        "ttlSecondsAfterFinished": 600,
        "workspace": {"claimName": CLAIM},
        **PLACEMENT,
    }
    specs = {
        f"{prefix}-expire5": {**base, "outputRetentionSeconds": 5},
        f"{prefix}-expire20": {**base, "outputRetentionSeconds": 20},
        f"{prefix}-keep": base,
    }
    kube.apply(
        *(
            {
                "apiVersion": "simjob.io/v1alpha1",
                "kind": "SimTier",
                "metadata": {"name": n},
                "spec": s,
            }
            for n, s in specs.items()
        )
    )
    try:
        yield prefix
    finally:
        kube.run("delete", "simtiers.simjob.io", *specs, "--ignore-not-found", check=False)


def writer(name: str, tier: str, text: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "simjob.io/v1alpha1",
        "kind": "SimJob",
        "metadata": {"name": name},
        "spec": {"tier": tier, "image": BUSYBOX, "command": ["sh", "-c", WRITE, text], **spec},
    }


def condition(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    for cond in kube.status(namespace, name).get("conditions") or []:
        if cond["type"] == COND_OUTPUTS_REMOVED:
            return dict(cond)
    return None


def wait_removal(kube: Kube, namespace: str, name: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(
        lambda: condition(kube, namespace, name),
        timeout=timeout,
        what=f"{namespace}/{name} to record the removal of its outputs",
    )


def test_expired_outputs_go_and_the_neighbours_stay(
    kube: Kube,
    namespace: str,
    retention_tiers: str,
    workspace: Workspace,  # noqa: F811 - the imported fixture
) -> None:
    kube.apply(
        writer("short", f"{retention_tiers}-expire5", "mine"),
        writer("neighbour", f"{retention_tiers}-keep", "theirs"),
        namespace=namespace,
    )
    for name in ("short", "neighbour"):
        assert kube.wait_phase(namespace, name, "Succeeded", timeout=120)["phase"] == "Succeeded"
    paths = {
        name: kube.status(namespace, name)["workspace"]["path"] for name in ("short", "neighbour")
    }
    mine = workspace.host_dir / paths["short"]
    theirs = workspace.host_dir / paths["neighbour"]
    assert (theirs / "deep" / "result.txt").read_text() == "theirs\n"
    cond = wait_removal(kube, namespace, "short")
    assert cond["status"] == "True", cond
    assert cond["reason"] == REASON_EXPIRED
    assert "removed" in cond["message"], cond
    assert not mine.exists(), sorted(str(p) for p in workspace.host_dir.rglob("*"))
    assert (theirs / "deep" / "result.txt").read_text() == "theirs\n"
    assert (workspace.host_dir / namespace).is_dir()
    assert condition(kube, namespace, "neighbour") is None  # kept: no retention
    # The objects stay (ttlSecondsAfterFinished 600), the removal was done once.
    assert kube.simjob(namespace, "short")["status"]["phase"] == "Succeeded"
    jobs = kube.items("jobs", namespace=namespace, selector="simjob.io/outputs-of")
    assert len(jobs) == 1, [job["metadata"]["name"] for job in jobs]
    events = kube.items("events", namespace=namespace)
    expired = [e for e in events if e.get("reason") == REASON_EXPIRED]
    assert len(expired) == 1, expired


def test_a_path_escaping_the_workspace_is_refused(
    kube: Kube,
    namespace: str,
    retention_tiers: str,
    workspace: Workspace,  # noqa: F811 - the imported fixture
) -> None:
    kube.apply(
        writer(
            "escape",
            f"{retention_tiers}-expire20",
            "planted",
            workspace={"claimName": CLAIM, "subPath": "esc/run"},
        ),
        namespace=namespace,
    )
    kube.wait_phase(namespace, "escape", "Succeeded", timeout=120)
    assert kube.status(namespace, "escape")["workspace"]["path"] == "esc/run"
    outside = Path(tempfile.mkdtemp(prefix="rt-outside-"))
    try:
        (outside / "run").mkdir()
        (outside / "run" / "keep.txt").write_text("keep")
        # After the run, its sub-path's parent becomes a symlink out of the claim.
        esc = workspace.host_dir / "esc"
        assert (esc / "run" / "deep" / "result.txt").read_text() == "planted\n"
        esc.rename(workspace.host_dir / "esc.moved")
        esc.symlink_to(outside)
        cond = wait_removal(kube, namespace, "escape")
        assert cond["status"] == "False", cond
        assert cond["reason"] == REASON_REFUSED
        assert "symlink" in cond["message"], cond
        assert (outside / "run" / "keep.txt").read_text() == "keep"
        assert (workspace.host_dir / "esc.moved" / "run" / "deep" / "result.txt").is_file()
        warnings = [
            e
            for e in kube.items("events", namespace=namespace)
            if e.get("reason") == REASON_REFUSED and e.get("type") == "Warning"
        ]
        assert len(warnings) == 1, warnings
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_reuse_hits_while_outputs_are_kept_and_misses_once_they_expired(
    kube: Kube,
    namespace: str,
    retention_tiers: str,
    workspace: Workspace,  # noqa: F811 - the imported fixture
) -> None:
    """Issue 13: ``reuse: IfSucceeded`` takes a Succeeded run of the same runKey and
    inputHash only while its outputs are retained."""
    tier = f"{retention_tiers}-expire20"
    same = {"runKey": "plate-1", "inputHash": "sha256:1", "reuse": "IfSucceeded"}
    kube.apply(writer("source", tier, "v1", **same), namespace=namespace)
    kube.wait_phase(namespace, "source", "Succeeded", timeout=120)
    source_path = kube.status(namespace, "source")["workspace"]["path"]
    kube.apply(writer("hit", tier, "v2", **same), namespace=namespace)
    hit = kube.wait_phase(namespace, "hit", "Succeeded", timeout=60)
    assert hit["reason"] == "Reused", hit
    assert hit["reusedFrom"]["name"] == "source"
    assert hit["workspace"]["path"] == source_path
    assert (workspace.host_dir / source_path / "deep" / "result.txt").read_text() == "v1\n"
    cond = wait_removal(kube, namespace, "source")
    assert cond["status"] == "True", cond
    assert condition(kube, namespace, "hit") is None  # it has no outputs of its own
    kube.apply(writer("miss", tier, "v3", **same), namespace=namespace)
    miss = kube.wait_phase(namespace, "miss", "Succeeded", timeout=120)
    assert miss["reason"] != "Reused", miss
    assert miss.get("reusedFrom") is None
    own = workspace.host_dir / miss["workspace"]["path"]
    assert own != workspace.host_dir / source_path
    assert (own / "deep" / "result.txt").read_text() == "v3\n"


def test_a_removal_cut_short_by_kill_9_is_adopted_after_the_restart(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    retention_tiers: str,
    workspace: Workspace,  # noqa: F811 - the imported fixture
) -> None:
    """The operator dies (SIGKILL) right after it created the removal Job; the Job
    finishes meanwhile; the restarted operator adopts it (the same Job, by its uid),
    records the removal once and creates nothing twice."""
    kube.apply(writer("killed", f"{retention_tiers}-expire5", "x"), namespace=namespace)
    kube.wait_phase(namespace, "killed", "Succeeded", timeout=120)
    status = kube.status(namespace, "killed")
    uid = kube.simjob(namespace, "killed")["metadata"]["uid"]
    job_name = f"sjrm-{uid}"
    job = wait_for(
        lambda: kube.get("jobs", job_name, namespace=namespace),
        timeout=60,
        interval=0.1,
        what=f"the removal Job {job_name}",
    )
    operator.kill9()
    try:
        assert condition(kube, namespace, "killed") is None
        wait_for(
            lambda: any(
                c.get("type") == "Complete" and c.get("status") == "True"
                for c in (
                    (kube.get("jobs", job_name, namespace=namespace) or {}).get("status") or {}
                ).get("conditions")
                or []
            ),
            timeout=90,
            what=f"the removal Job {job_name} to complete without the operator",
        )
        assert not (workspace.host_dir / status["workspace"]["path"]).exists()
    finally:
        operator.start()
    cond = wait_removal(kube, namespace, "killed")
    assert cond["status"] == "True", cond
    jobs = kube.items("jobs", namespace=namespace, selector=f"simjob.io/outputs-of={uid}")
    assert [j["metadata"]["uid"] for j in jobs] == [job["metadata"]["uid"]]
    expired = [
        e
        for e in kube.items("events", namespace=namespace)
        if e.get("reason") == REASON_EXPIRED and e.get("involvedObject", {}).get("name") == "killed"
    ]
    assert len(expired) == 1, expired
