"""Retention of outputs (issue 12 item 6) and the reuse rule that depends on it (issue 13).

The pure rules (simjob_operator.core.retention): when outputs expire, when the object
may go, that a removal is recorded once; the runKey reuse misses outputs that are gone
or expired; the removal Job (backends.kubernetes.retention) and its shell program, run
here with the host's busybox sh on real directories (a neighbour survives, a planted
symlink is refused and what it points at survives); the ClaimCleaner and the Expiry step
(controller.retention) against the fake API server (tests/support/fake_kube.py). The
real node and real Slurm: tests/integration/test_realnode_retention.py and
test_slurm_retention.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from simjob_operator.api import names as c
from simjob_operator.api.data import WorkspaceStatus
from simjob_operator.api.simtier import SimTierSpec
from simjob_operator.backends.kubernetes.retention import (
    LABEL_OUTPUTS_OF,
    REMOVE_PROGRAM,
    ClaimCleaner,
    removal_job,
    removal_job_name,
)
from simjob_operator.backends.slurm.retention import RunDirCleaner
from simjob_operator.backends.slurm.sites import Sites
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.retention import CLAIM, Expiry
from simjob_operator.controller.tiers import TierCache
from simjob_operator.core import retention as r
from simjob_operator.core.logs import simjob_logger
from simjob_operator.core.runkeys import Reuse, decide_run_key
from simjob_operator.core.settings import (
    ENV_REMOVAL_IMAGE,
    ENV_REMOVAL_PULL_POLICY,
    Retention,
    retention_from_env,
)
from simjob_operator.core.view import SimJobRecord
from tests.support.bodies import simjob_body
from tests.support.fake_kube import FakeKube

END = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
GRANT: dict[str, Any] = {
    "cpu": "1",
    "memory": "1Gi",
    "maxRuntimeSeconds": 60,
    "outputRetentionSeconds": 30,
    "ttlSecondsAfterFinished": 60,
    "nodeSelector": {"simjob.io/pool": "real"},
    "tolerations": [{"key": "simjob.io/pool", "operator": "Equal", "value": "real"}],
}


def finished(name: str = "sim", *, phase: str = "Succeeded", **status: Any) -> dict[str, Any]:
    uid = f"uid-{name}"
    base: dict[str, Any] = {
        "phase": phase,
        "completionTime": "2025-01-01T12:00:00Z",
        "grant": dict(GRANT),
        "workspace": {"claimName": "outputs", "path": f"lab/{name}-{uid}"},
    }
    base.update(status)
    return simjob_body(name, uid=uid, status=base)


def rec(body: dict[str, Any]) -> SimJobRecord:
    return SimJobRecord.from_plain(body)


# ---------------------------------------------------------------- pure rules


def test_sub_paths_that_could_leave_the_workspace_are_refused() -> None:
    assert r.check_sub_path("lab/sim-uid-1") == ["lab", "sim-uid-1"]
    assert r.check_sub_path("runs/2026-12-02/a_b.c") == ["runs", "2026-12-02", "a_b.c"]
    for bad in ("", "/etc", "../x", "lab/../..", "lab//x", "lab/", "./lab", "-rf", ".ssh", "a/.."):
        with pytest.raises(r.UnsafeOutputPath):
            r.check_sub_path(bad)


def test_outputs_expire_retention_seconds_after_the_end() -> None:
    record = rec(finished())
    assert r.expires_at(record) == END + timedelta(seconds=30)
    assert r.step(record, END + timedelta(seconds=10)) == r.Wait(20.0)
    assert r.step(record, END + timedelta(seconds=30)) == r.RemoveNow(
        WorkspaceStatus(claim_name="outputs", path="lab/sim-uid-sim")
    )
    assert r.outputs_retained(record, END + timedelta(seconds=29))
    assert not r.outputs_retained(record, END + timedelta(seconds=30))
    # unset retention: kept, whatever the time
    kept = finished()
    del kept["status"]["grant"]["outputRetentionSeconds"]
    assert r.expires_at(rec(kept)) is None
    assert r.step(rec(kept), END + timedelta(days=999)) is None
    assert r.outputs_retained(rec(kept), END + timedelta(days=999))


def test_nothing_to_remove_without_own_outputs_or_before_the_end() -> None:
    running = finished(phase="Running")
    assert r.expires_at(rec(running)) is None
    no_workspace = finished(workspace=None)
    assert r.expires_at(rec(no_workspace)) is None
    reused = finished(reusedFrom={"name": "src", "uid": "u", "workspace": {"path": "lab/x"}})
    assert r.expires_at(rec(reused)) is None  # it stands for another SimJob's outputs


def test_a_removal_is_recorded_once_and_then_nothing_is_due() -> None:
    record = rec(finished())
    later = END + timedelta(seconds=31)
    removed = r.with_removal(record.status, r.Removed("gone"), now=later, generation=1)
    cond = r.removal_of(record.with_status(removed))
    assert cond is not None
    assert (cond.status, cond.reason) == ("True", r.REASON_EXPIRED)
    assert cond.last_transition_time == "2025-01-01T12:00:31Z"
    assert r.step(record.with_status(removed), later) is None
    assert not r.outputs_retained(record.with_status(removed), None)
    refused = r.with_removal(record.status, r.Refused("symlink"), now=later, generation=1)
    cond = r.removal_of(record.with_status(refused))
    assert cond is not None
    assert (cond.status, cond.reason) == ("False", r.REASON_REFUSED)
    assert r.step(record.with_status(refused), later) is None  # never retried


def test_ttl_left_counts_from_the_end() -> None:
    record = rec(finished())
    assert r.ttl_left(record, 60, END + timedelta(seconds=15)) == 45.0
    assert r.ttl_left(record, None, END) is None


def test_a_tier_cannot_keep_outputs_longer_than_its_simjobs() -> None:
    rules = SimTierSpec.model_json_schema()["x-kubernetes-validations"]
    assert any("outputRetentionSeconds <= self.ttlSecondsAfterFinished" in x["rule"] for x in rules)


# ---------------------------------------------------------------- reuse (issue 13)


def _run(name: str, created: str, **status: Any) -> SimJobRecord:
    body = finished(name, **status) if status else simjob_body(name, uid=f"uid-{name}")
    body["metadata"]["creationTimestamp"] = created
    body["spec"].update(runKey="sim-1", inputHash="h1", reuse="IfSucceeded")
    return rec(body)


def test_reuse_misses_outputs_that_expired_or_were_removed() -> None:
    source = _run("done", "2025-01-01T11:00:00Z", phase="Succeeded")
    again = _run("again", "2025-01-01T12:00:09Z")
    assert decide_run_key(again, [source, again], now=END) == Reuse(source)
    assert decide_run_key(again, [source, again], now=END + timedelta(seconds=30)) is None
    removed = source.with_status(
        r.with_removal(source.status, r.Removed("gone"), now=END, generation=1)
    )
    assert decide_run_key(again, [removed, again], now=END) is None
    # a Reused SimJob is never a source: its outputs are its source's
    reused = _run(
        "reused",
        "2025-01-01T11:30:00Z",
        phase="Succeeded",
        reusedFrom={"name": "gone", "uid": "u-gone"},
    )
    assert decide_run_key(again, [reused, again], now=END) is None
    assert decide_run_key(again, [source, reused, again], now=END) == Reuse(source)


# ---------------------------------------------------------------- the removal Job


def test_the_removal_job_is_deterministic_restricted_and_placed_like_the_run() -> None:
    record = rec(finished())
    job = removal_job(
        namespace="lab",
        name="sim",
        uid="uid-sim",
        claim="outputs",
        path="lab/sim-uid-sim",
        grant=record.status.grant,
        image="busybox:test",
    )
    assert job["metadata"]["name"] == removal_job_name("uid-sim") == "sjrm-uid-sim"
    image_policy = job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"]
    assert image_policy == "IfNotPresent"  # the default (the chart's outputsRemoval.pullPolicy)
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-sim"
    assert c.LABEL_UID not in job["metadata"]["labels"]  # not mistaken for the run's Job
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] > 0
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"][LABEL_OUTPUTS_OF] == "uid-sim"
    assert pod["nodeSelector"] == {"simjob.io/pool": "real"}
    assert pod["tolerations"][0]["key"] == "simjob.io/pool"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["fsGroup"] == c.POD_RUN_AS_USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # the path is an argument of a fixed program, never part of it
    assert container["command"][:2] == ["sh", "-c"]
    assert container["command"][2] == REMOVE_PROGRAM
    assert container["command"][-1] == "lab/sim-uid-sim"
    assert pod["volumes"] == [{"name": "claim", "persistentVolumeClaim": {"claimName": "outputs"}}]
    with pytest.raises(r.UnsafeOutputPath):
        removal_job(
            namespace="lab", name="s", uid="u", claim="c", path="../x", grant=None, image="b"
        )


def test_the_removal_image_and_pull_policy_come_from_the_environment() -> None:
    """The chart's outputsRemoval.image/pullPolicy reach the operator as two variables;
    unset or empty keeps the defaults; a pull policy Kubernetes would refuse stops the
    operator at start with the variable's name."""
    default = Retention()
    assert retention_from_env(default, {}) == default
    assert retention_from_env(default, {ENV_REMOVAL_IMAGE: "", ENV_REMOVAL_PULL_POLICY: " "}) == (
        default
    )
    chosen = retention_from_env(
        default,
        {ENV_REMOVAL_IMAGE: "registry.local/busybox:1.37", ENV_REMOVAL_PULL_POLICY: "Always"},
    )
    assert (chosen.removal_image, chosen.removal_pull_policy) == (
        "registry.local/busybox:1.37",
        "Always",
    )
    assert chosen.removal_poll == default.removal_poll
    with pytest.raises(ValueError, match=ENV_REMOVAL_PULL_POLICY):
        retention_from_env(default, {ENV_REMOVAL_PULL_POLICY: "sometimes"})


def _shell() -> list[str]:
    busybox = shutil.which("busybox")
    if busybox is not None:
        return [busybox, "sh"]  # the removal image's shell
    sh = shutil.which("sh")
    assert sh is not None
    return [sh]


def _remove(claim: Path, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_shell(), "-c", REMOVE_PROGRAM, "sh", str(claim), path],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_the_removal_program_removes_exactly_one_directory(tmp_path: Path) -> None:
    claim = tmp_path / "claim"
    mine = claim / "lab" / "a-uid1"
    neighbour = claim / "lab" / "b-uid2"
    for directory in (mine / "deep", neighbour):
        directory.mkdir(parents=True)
    (mine / "deep" / "field.npy").write_bytes(b"x")
    (mine / "-rf").write_text("odd name")
    (neighbour / "summary.json").write_text("{}")
    done = _remove(claim, "lab/a-uid1")
    assert done.returncode == 0, done.stderr
    assert "removed 'lab/a-uid1'" in done.stdout
    assert not mine.exists()
    assert (neighbour / "summary.json").read_text() == "{}"
    assert (claim / "lab").is_dir()
    again = _remove(claim, "lab/a-uid1")  # a second run (after a restart) is harmless
    assert again.returncode == 0
    assert "did not exist" in again.stdout


def test_the_removal_program_refuses_paths_that_escape(tmp_path: Path) -> None:
    claim = tmp_path / "claim"
    outside = tmp_path / "outside"
    (outside / "run").mkdir(parents=True)
    (outside / "run" / "keep.txt").write_text("keep")
    (claim / "lab").mkdir(parents=True)
    (claim / "lab" / "link").symlink_to(outside)  # a planted symlink in the claim
    (claim / "lab" / "inside").symlink_to(claim / "lab")  # even one pointing inside
    (claim / "lab" / "last").symlink_to(outside / "run")
    for path in ("lab/link/run", "lab/inside/x", "lab/last", "../outside/run", "/etc", "lab/../.."):
        result = _remove(claim, path)
        assert result.returncode == 3, (path, result.stdout, result.stderr)
        assert "refused" in result.stderr
    assert (outside / "run" / "keep.txt").read_text() == "keep"
    assert (claim / "lab" / "link").is_symlink()
    assert (claim / "lab" / "last").is_symlink()


# ---------------------------------------------------------------- against the fake API


def _job_ended(kube: FakeKube, uid: str, kind: str, message: str) -> None:
    job = kube.jobs[("lab", removal_job_name(uid))]
    job["status"] = {"conditions": [{"type": kind, "status": "True"}]}
    if not message:
        job["status"]["conditions"][0].update(reason="DeadlineExceeded", message="too long")
        return
    kube.add_pod(
        "lab",
        {
            "metadata": {"name": "rm-pod", "labels": {LABEL_OUTPUTS_OF: uid}},
            "status": {
                "containerStatuses": [
                    {"name": "remove-outputs", "state": {"terminated": {"message": message}}}
                ]
            },
        },
    )


def test_claim_cleaner_creates_one_job_and_reports_its_end() -> None:
    kube = FakeKube()
    settings = Retention(removal_image="mirror.example/busybox:test", removal_poll=0.5)
    cleaner = ClaimCleaner(kube, dataclasses.replace(settings, removal_pull_policy="Never"))
    record = rec(finished())
    workspace = record.status.workspace
    assert workspace is not None
    first = asyncio.run(cleaner.remove(record, workspace))
    assert isinstance(first, r.Removing)
    assert first.delay == 0.5
    (created,) = kube.jobs.values()
    (container,) = created["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "mirror.example/busybox:test"
    assert container["imagePullPolicy"] == "Never"
    second = asyncio.run(cleaner.remove(record, workspace))  # adopted, not created twice
    assert isinstance(second, r.Removing)
    assert kube.calls["create_job"] == 1
    assert len(kube.jobs) == 1
    _job_ended(kube, "uid-sim", "Complete", "removed 'lab/sim-uid-sim'")
    done = asyncio.run(cleaner.remove(record, workspace))
    assert isinstance(done, r.Removed)
    assert "removed 'lab/sim-uid-sim'" in done.message


def test_claim_cleaner_reports_a_refusal_with_the_pods_words() -> None:
    kube = FakeKube()
    cleaner = ClaimCleaner(kube)
    record = rec(finished())
    assert record.status.workspace is not None
    asyncio.run(cleaner.remove(record, record.status.workspace))
    _job_ended(kube, "uid-sim", "Failed", "simjob-outputs: refused: 'lab/x': 'lab' is a symlink")
    refused = asyncio.run(cleaner.remove(record, record.status.workspace))
    assert isinstance(refused, r.Refused)
    assert "is a symlink" in refused.message
    other = rec(finished("other"))
    assert other.status.workspace is not None
    asyncio.run(cleaner.remove(other, other.status.workspace))
    _job_ended(kube, "uid-other", "Failed", "")  # no pod ever ran (e.g. its deadline)
    late = asyncio.run(cleaner.remove(other, other.status.workspace))
    assert isinstance(late, r.Refused)
    assert "DeadlineExceeded: too long" in late.message
    unsafe = WorkspaceStatus(claim_name="outputs", path="../etc")
    assert isinstance(asyncio.run(cleaner.remove(record, unsafe)), r.Refused)


class Harness:
    def __init__(self, body: dict[str, Any], now: datetime) -> None:
        self.kube = FakeKube()
        self.kube.add_simjob(body)
        self.now = now
        self.expiry = Expiry(
            kube=self.kube,
            tiers=TierCache(self.kube),
            recorder=Recorder(self.kube),
            removers={CLAIM: ClaimCleaner(self.kube, Retention(removal_poll=1.5))},
            now=lambda: self.now,
        )

    def tend(self) -> float | None:
        body = self.kube.simjobs.get(("lab", "sim"))
        assert body is not None
        record = rec(body)
        return asyncio.run(self.expiry.tend(record, simjob_logger(record)))


def test_expiry_removes_outputs_then_deletes_the_simjob_after_its_ttl() -> None:
    h = Harness(finished(), END + timedelta(seconds=10))
    assert h.tend() == 20.0  # outputs first (30 s), the object at 60 s
    assert not h.kube.jobs
    h.now = END + timedelta(seconds=30)
    assert h.tend() == 1.5  # the removal Job runs
    assert ("lab", "sjrm-uid-sim") in h.kube.jobs
    _job_ended(h.kube, "uid-sim", "Complete", "removed 'lab/sim-uid-sim'")
    assert h.tend() == 30.0  # recorded; the TTL is next
    status = h.kube.status_of("lab", "sim")
    cond = next(x for x in status["conditions"] if x["type"] == r.COND_OUTPUTS_REMOVED)
    assert cond["status"] == "True"
    assert cond["reason"] == r.REASON_EXPIRED
    assert [e["reason"] for e in h.kube.events] == [r.REASON_EXPIRED]
    h.tend()  # once: no second removal, no second Event
    assert h.kube.calls["create_job"] == 1
    assert len(h.kube.events) == 1
    h.now = END + timedelta(seconds=60)
    assert h.tend() is None
    assert ("lab", "sim") not in h.kube.simjobs


def test_the_ttl_waits_for_a_removal_that_is_due() -> None:
    body = finished()
    body["status"]["grant"]["ttlSecondsAfterFinished"] = 30  # same moment as the outputs
    h = Harness(body, END + timedelta(seconds=40))
    assert h.tend() == 1.5  # removing: not deleted yet
    assert ("lab", "sim") in h.kube.simjobs
    _job_ended(h.kube, "uid-sim", "Failed", "simjob-outputs: refused: 'lab/x' is a symlink")
    h.tend()  # refused: recorded, then the SimJob goes
    assert ("lab", "sim") not in h.kube.simjobs
    assert [e["type"] for e in h.kube.events] == ["Warning"]


def test_run_dir_cleaner_removes_exactly_one_run_directory_locally(tmp_path: Path) -> None:
    """The Slurm remover on a local-mode SlurmCluster (its commands run on this host):
    one run directory goes, its neighbour stays; a symlinked run directory and one
    outside the workDir are refused; an unknown SlurmCluster is refused."""
    work = tmp_path / "work"
    mine = work / "lab" / "sim-uid-sim"
    neighbour = work / "lab" / "other-uid-2"
    for directory in (mine / "outputs", neighbour / "outputs"):
        directory.mkdir(parents=True)
    (neighbour / "outputs" / "result.txt").write_text("theirs")
    kube = FakeKube()
    kube.add_cluster("local", mode="local", workDir=str(work))
    cleaner = RunDirCleaner(Sites(kube))
    record = rec(finished())

    def remove(cluster: str, directory: str) -> r.Removal:
        workspace = WorkspaceStatus(cluster=cluster, directory=directory)
        return asyncio.run(cleaner.remove(record, workspace))

    done = remove("local", str(mine))
    assert isinstance(done, r.Removed), done
    assert not mine.exists()
    assert (neighbour / "outputs" / "result.txt").read_text() == "theirs"
    again = remove("local", str(mine))
    assert isinstance(again, r.Removed)
    assert "did not exist" in again.message
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (work / "lab" / "planted").symlink_to(outside)
    planted = remove("local", str(work / "lab" / "planted"))
    assert isinstance(planted, r.Refused)
    assert "symlink" in planted.message
    assert isinstance(remove("local", str(outside)), r.Refused)  # not inside the workDir
    assert isinstance(remove("local", str(work)), r.Refused)  # the workDir itself
    assert (outside / "keep.txt").read_text() == "keep"
    assert isinstance(remove("nowhere", str(mine)), r.Refused)
