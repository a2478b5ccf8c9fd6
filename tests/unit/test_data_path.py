"""The simulation's data on Kubernetes (issue 12), without a cluster: inputs become a
read-only projected volume, the workspace a claim mounted at a sub-path unique to the
run (status.workspace says where), and progress lines of a running pod's log reach
status.progress through the reconciler, at most once per interval and only on change.
"""

from __future__ import annotations

import asyncio
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.data import INPUT_DIR, WORKSPACE_DIR
from simjob_operator.api.simjob import Grant
from simjob_operator.backends.kubernetes.manifests import build_job_manifest
from simjob_operator.backends.kubernetes.progress import ProgressReader
from simjob_operator.controller.runtime import Runtime
from simjob_operator.core.progress import ProgressReport
from simjob_operator.core.settings import Settings, Timings
from simjob_operator.core.sightings import Seen, Sighting
from simjob_operator.core.view import SimJobRecord
from tests.support.bodies import simjob_body, tier_spec
from tests.support.fake_kube import FakeKube

GRANT = Grant(cpu="1", memory="1Gi", max_runtime_seconds=600, workspace_claim="outputs")
INPUTS = [
    {"configMap": {"name": "params"}},
    {"secret": {"name": "token", "items": [{"key": "api-token", "path": "token.txt"}]}},
]


def manifest(**spec: Any) -> dict[str, Any]:
    record = SimJobRecord.from_body(simjob_body("run", **spec))
    assert record.spec is not None
    return build_job_manifest(
        namespace="lab", name="run", uid="u1", spec=record.spec, owner="lab", grant=GRANT
    )


def test_inputs_and_workspace_are_volumes_of_the_pod() -> None:
    pod = manifest(inputs=INPUTS)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    sources = volumes["simjob-inputs"]["projected"]["sources"]
    assert sources == [
        {"configMap": {"name": "params"}},
        {"secret": {"name": "token", "items": [{"key": "api-token", "path": "token.txt"}]}},
    ]
    assert volumes["simjob-workspace"]["persistentVolumeClaim"] == {"claimName": "outputs"}
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert mounts["simjob-inputs"] == {
        "name": "simjob-inputs",
        "mountPath": INPUT_DIR,
        "readOnly": True,
    }
    assert mounts["simjob-workspace"]["mountPath"] == WORKSPACE_DIR
    assert mounts["simjob-workspace"]["subPath"] == "lab/run-u1"  # unique per run
    env = {var["name"]: var["value"] for var in container["env"]}
    assert env["SIMJOB_INPUT_DIR"] == INPUT_DIR
    assert env["SIMJOB_OUTPUT_DIR"] == WORKSPACE_DIR
    assert pod["securityContext"]["fsGroup"] == c.POD_RUN_AS_USER  # non-root writes


def test_a_simjob_may_name_its_own_claim_and_sub_path() -> None:
    pod = manifest(workspace={"claimName": "mine", "subPath": "projects/a"})["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    (mount,) = container["volumeMounts"]
    assert mount["subPath"] == "projects/a"
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "mine"


def test_without_inputs_or_a_claim_the_pod_has_no_data_volumes() -> None:
    record = SimJobRecord.from_body(simjob_body("run"))
    assert record.spec is not None
    plain = Grant(cpu="1", memory="1Gi", max_runtime_seconds=60)
    job = build_job_manifest(
        namespace="lab", name="run", uid="u1", spec=record.spec, owner="lab", grant=plain
    )
    pod = job["spec"]["template"]["spec"]
    assert "volumes" not in pod
    assert "fsGroup" not in pod["securityContext"]


def test_progress_is_read_only_when_due_and_reported_only_on_change() -> None:
    kube = FakeKube()
    kube.add_pod(
        "lab",
        {
            "metadata": {"name": "sj-run-x", "labels": {c.POD_LABEL_CONTROLLER_UID: "job-1"}},
            "status": {"phase": "Running"},
        },
    )
    now = [0.0]
    seen: list[ProgressReport] = []
    reader = ProgressReader(
        kube, lambda key, report: seen.append(report), reads_per_second=100, clock=lambda: now[0]
    )
    reader.track(("lab", "run"), "lab", "job-1", interval=10)
    kube.logs[("lab", "sj-run-x")] = 'hello\nSIMJOB_PROGRESS {"percent": 10, "message": "a"}\n'
    asyncio.run(reader.read_due())  # the first read waits one interval: short runs cost none
    assert (kube.calls["read_pod_log"], seen) == (0, [])
    now[0] = 10.0
    asyncio.run(reader.read_due())
    assert seen == [ProgressReport(10.0, "a")]
    asyncio.run(reader.read_due())  # not due yet: no read
    assert kube.calls["read_pod_log"] == 1
    now[0] = 20.0
    asyncio.run(reader.read_due())  # due, unchanged: read, nothing reported
    assert (kube.calls["read_pod_log"], len(seen)) == (2, 1)
    kube.logs[("lab", "sj-run-x")] += 'SIMJOB_PROGRESS {"percent": 55.5, "message": "b"}\n'
    now[0] = 30.0
    asyncio.run(reader.read_due())
    assert seen[-1] == ProgressReport(55.5, "b")
    reader.untrack(("lab", "run"))
    now[0] = 40.0
    asyncio.run(reader.read_due())
    assert kube.calls["read_pod_log"] == 3


def test_admission_says_where_the_outputs_go_and_progress_reaches_status() -> None:
    kube = FakeKube()
    kube.add_simtier(
        "small",
        tier_spec(workspace={"claimName": "outputs"}, progressIntervalSeconds=1),
    )
    fast = Settings(timings=Timings(admission_resync=0.2, stop_poll=0.05))

    async def main() -> None:
        runtime = Runtime(kube, fast)
        runtime.start()
        try:
            body = simjob_body("run", created="2025-01-01T12:00:00Z")
            body["metadata"]["finalizers"] = [c.FINALIZER]
            stored = kube.add_simjob(body)
            runtime.cache.observe(stored)
            runtime.queue.add(("lab", "run"), Sighting(simjob=stored))
            for _ in range(500):
                if ("lab", "sj-run") in kube.jobs:
                    break
                await asyncio.sleep(0.01)
            status = kube.status_of("lab", "run")
            uid = kube.simjobs[("lab", "run")]["metadata"]["uid"]
            assert status["workspace"] == {"claimName": "outputs", "path": f"lab/run-{uid}"}
            job = kube.jobs[("lab", "sj-run")]
            job["metadata"]["uid"] = "job-1"
            job["status"] = {"ready": 1, "active": 1}
            kube.add_pod(
                "lab",
                {
                    "metadata": {
                        "name": "sj-run-x",
                        "labels": {c.POD_LABEL_CONTROLLER_UID: "job-1"},
                    },
                    "status": {"phase": "Running"},
                },
            )
            kube.logs[("lab", "sj-run-x")] = 'SIMJOB_PROGRESS {"percent": 42.5, "message": "m"}\n'
            runtime.queue.add(("lab", "run"), Sighting(backend=Seen.of("MODIFIED", job)))
            for _ in range(500):
                if kube.status_of("lab", "run").get("progress"):
                    break
                await asyncio.sleep(0.01)
            progress = kube.status_of("lab", "run")["progress"]
            assert (progress["percent"], progress["message"]) == (42.5, "m")
        finally:
            await asyncio.wait_for(runtime.stop(), 10)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_silent_simulation_is_read_ever_less_often() -> None:
    kube = FakeKube()
    kube.add_pod(
        "lab",
        {
            "metadata": {"name": "sj-quiet-x", "labels": {c.POD_LABEL_CONTROLLER_UID: "job-2"}},
            "status": {"phase": "Running"},
        },
    )
    kube.logs[("lab", "sj-quiet-x")] = "no progress lines here\n"
    now = [0.0]
    reader = ProgressReader(
        kube, lambda key, report: None, reads_per_second=100, clock=lambda: now[0]
    )
    reader.track(("lab", "quiet"), "lab", "job-2", interval=10)
    for second in range(0, 700, 10):  # 70 intervals
        now[0] = float(second)
        asyncio.run(reader.read_due())
    # 1 + 2 + 4 + 8 + 16 + 32 + 32 ... intervals apart: far fewer than 70 reads.
    assert kube.calls["read_pod_log"] <= 8


def test_the_next_read_is_timed_from_the_read_not_from_the_round() -> None:
    """A round that waits for the rate limit must not make the next read come early:
    reads of one log (and so its progress writes) stay at least an interval apart."""
    kube = FakeKube()
    kube.add_pod(
        "lab",
        {
            "metadata": {"name": "sj-slow-x", "labels": {c.POD_LABEL_CONTROLLER_UID: "job-3"}},
            "status": {"phase": "Running"},
        },
    )
    kube.logs[("lab", "sj-slow-x")] = 'SIMJOB_PROGRESS {"percent": 5, "message": "a"}\n'
    now = [0.0]
    read_at: list[float] = []
    reader = ProgressReader(
        kube, lambda key, report: None, reads_per_second=100, clock=lambda: now[0]
    )
    inner = kube.read_pod_log

    async def slow_read(*args: Any, **kwargs: Any) -> str | None:
        read_at.append(now[0])
        return await inner(*args, **kwargs)

    kube.read_pod_log = slow_read  # type: ignore[method-assign]
    reader.track(("lab", "slow"), "lab", "job-3", interval=10)

    class LateBucket:  # the round's turn at the rate limit comes 4 s after it started
        async def acquire(self) -> None:
            now[0] += 4.0

    reader._bucket = LateBucket()  # type: ignore[assignment]
    now[0] = 10.0
    asyncio.run(reader.read_due())  # started at 10, read at 14
    now[0] = 20.0
    asyncio.run(reader.read_due())  # 10 s after the round's start, 6 s after the read
    now[0] = 24.0
    asyncio.run(reader.read_due())  # due at 24: read at 28
    assert read_at == [14.0, 28.0]
