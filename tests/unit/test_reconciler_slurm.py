"""The reconciler's effects with the Slurm backend (in-memory Slurm, the one fake API
server): it records the job id that submit returns (created or adopted), cancels a job
whose SimJob was deleted or ended while sbatch ran (retrying while Slurm is down),
fails a SimJob that sbatch refused or that carries unsafe values, and looks again
after the grace of an unknown SlurmCluster; a SimJob whose input is missing shows it as
its Queued reason until the input appears or maxPendingSeconds ends it InputNotFound.
The backend's side of each contract is in
test_slurm_backend.py. No cluster, no Slurm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.backends.base import Backend
from simjob_operator.backends.kubernetes.backend import KubernetesBackend
from simjob_operator.backends.slurm.jobs import marker
from simjob_operator.controller.reconciler import Reconciler
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.tiers import TierCache
from simjob_operator.core.settings import Settings, Timings
from simjob_operator.core.sightings import Sighting
from simjob_operator.core.times import format_time, parse_time
from simjob_operator.core.view import SimJobRecord
from slurm_bridge import LocalRunner
from tests.unit.test_slurm_backend import CREATED, GRANT, Harness, eventually

FAST = Settings(timings=Timings(stop_poll=0.01))


class World(Harness):
    """The Slurm backend's harness plus a reconciler over the same fakes."""

    def __init__(self, minutes_after_creation: float = 1.0) -> None:
        created = parse_time(CREATED)
        assert created is not None
        super().__init__(now=created + timedelta(minutes=minutes_after_creation))
        backends: dict[str, Backend] = {
            c.BACKEND_KUBERNETES: KubernetesBackend(self.kube),
            c.BACKEND_SLURM: self.backend,
        }
        self.reconciler = Reconciler(
            kube=self.kube,
            tiers=TierCache(self.kube),
            recorder=Recorder(self.kube),
            backends=backends,
            request_admission=lambda: None,
            slot_freed=lambda: None,
            settings=FAST,
            now=lambda: self.now,
        )

    async def reconcile(self, record: SimJobRecord) -> float | None:
        body = self.kube.simjobs[record.key]
        return await self.reconciler.process(record.key, Sighting(simjob=body))

    def status(self, record: SimJobRecord) -> dict[str, Any]:
        return self.kube.status_of(*record.key)


def run(scenario: Callable[[World], Any], world: World | None = None) -> World:
    world = world or World()

    async def main() -> None:
        task = asyncio.create_task(world.backend.run())
        try:
            await scenario(world)
        finally:
            world.backend.stop()
            await asyncio.wait_for(task, 10)

    asyncio.run(asyncio.wait_for(main(), 30))
    return world


def test_the_reconciler_records_the_submitted_job_id() -> None:
    async def scenario(w: World) -> None:
        record = w.simjob("one")
        await w.reconcile(record)
        ref = w.status(record)["backendRef"]
        assert ref == {"kind": c.SLURM_JOB_KIND, "id": "101", "cluster": "hpc"}
        assert w.slurm.calls["sbatch"] == 1

    run(scenario)


def test_the_reconciler_records_an_adopted_job_and_submits_nothing() -> None:
    async def scenario(w: World) -> None:
        record = w.simjob("crashed")
        w.slurm.add("77", marker(record.uid), "RUNNING")  # sbatch ran before a kill -9
        await w.reconcile(record)
        assert w.status(record)["backendRef"] == {
            "kind": c.SLURM_JOB_KIND,
            "id": "77",
            "cluster": "hpc",
        }
        assert w.slurm.calls["sbatch"] == 0

    run(scenario)


def test_a_job_whose_simjob_is_deleted_while_sbatch_runs_is_cancelled_once() -> None:
    async def scenario(w: World) -> None:
        record = w.simjob("gone")
        w.slurm.during_submit = lambda: w.kube.simjobs.pop(record.key)
        await w.reconcile(record)
        assert w.slurm.calls["scancel"] == 1
        assert [state.state for _, state in w.slurm.jobs.values()] == ["CANCELLED"]

    run(scenario)


def test_a_job_whose_simjob_ends_while_sbatch_runs_is_cancelled_and_not_recorded() -> None:
    async def scenario(w: World) -> None:
        record = w.simjob("ended")

        def cancel_meanwhile() -> None:
            body = w.kube.simjobs[record.key]
            body["status"]["phase"] = "Cancelled"
            body["metadata"]["resourceVersion"] = "9999"

        w.slurm.during_submit = cancel_meanwhile
        await w.reconcile(record)
        assert w.slurm.calls["scancel"] == 1
        assert [state.state for _, state in w.slurm.jobs.values()] == ["CANCELLED"]
        assert w.status(record).get("backendRef") == {"kind": c.SLURM_JOB_KIND}  # no id

    run(scenario)


def test_an_unwanted_job_is_cancelled_once_slurm_answers_again() -> None:
    async def scenario(w: World) -> None:
        record = w.simjob("flaky")

        def vanish_and_go_down() -> None:
            w.kube.simjobs.pop(record.key)
            w.slurm.unreachable = "slurmctld: connection refused"

        async def come_back() -> None:
            await eventually(lambda: w.slurm.calls["scancel"] >= 2)
            w.slurm.unreachable = None

        w.slurm.during_submit = vanish_and_go_down
        back = asyncio.create_task(come_back())
        await w.reconcile(record)
        await back
        assert w.slurm.calls["scancel"] >= 2  # retried while Slurm was down
        assert [state.state for _, state in w.slurm.jobs.values()] == ["CANCELLED"]

    run(scenario)


def test_sbatch_refusal_and_unsafe_values_fail_the_simjob_with_a_reason() -> None:
    async def scenario(w: World) -> None:
        w.slurm.reject = "sbatch: error: invalid partition specified: nope"
        refused = w.simjob("refused")
        await w.reconcile(refused)
        status = w.status(refused)
        assert (status["phase"], status["reason"]) == ("Failed", Reason.SLURM_REJECTED)
        assert "invalid partition" in status["message"]
        w.slurm.reject = None
        unsafe = w.simjob("unsafe", command=["echo", "a\rb"])
        await w.reconcile(unsafe)
        status = w.status(unsafe)
        assert (status["phase"], status["reason"]) == ("Failed", Reason.INVALID_SPEC)
        assert w.slurm.calls["sbatch"] == 1  # only the refused one reached sbatch
        assert [e["type"] for e in w.kube.events] == ["Warning", "Warning"]

    run(scenario)


def test_an_unknown_cluster_is_looked_at_again_after_its_grace() -> None:
    async def scenario(w: World) -> None:
        record = w.simjob("early", slurm={"cluster": "later"})
        again = await w.reconcile(record)
        assert again is not None
        assert 3.5 <= again <= 5.0  # the rest of the 5 s grace, then it fails
        assert w.status(record)["phase"] == "Queued"
        w.now = w.now.replace(second=59)
        await w.reconcile(record)
        status = w.status(record)
        assert (status["phase"], status["reason"]) == ("Failed", Reason.UNKNOWN_SLURM_CLUSTER)

    run(scenario, World(minutes_after_creation=1 / 60))


def test_the_grant_reaches_sbatch() -> None:
    async def scenario(w: World) -> None:
        record = w.simjob("sized")
        await w.reconcile(record)
        (spec,) = w.slurm.specs.values()
        assert spec.time_limit_seconds == GRANT.max_runtime_seconds

    run(scenario)


def test_a_missing_input_shows_as_the_queued_reason_until_it_appears_or_time_is_up(
    tmp_path: Path,
) -> None:
    async def scenario(w: World) -> None:
        w.slurm.work_dir = str(tmp_path / "work")
        w.slurm.runner = LocalRunner()
        created = parse_time(CREATED)
        assert created is not None
        records = []
        for name in ("appears", "never"):
            record = w.simjob(name, inputs=[{"configMap": {"name": f"{name}-params"}}])
            body = w.kube.simjobs[record.key]
            body["status"]["conditions"][0]["lastTransitionTime"] = format_time(created)
            records.append(w.stored(record))
        appears, never = records
        again = await w.reconcile(appears)
        status = w.status(appears)
        assert (status["phase"], status["reason"]) == ("Queued", Reason.INPUT_NOT_FOUND)
        assert "ConfigMap lab/appears-params does not exist" in status["message"]
        assert again is not None
        assert again <= 15.0  # looked at again soon (60 s waited: a quarter, or the tick)
        writes = len(w.kube.patches_of(*appears.key))
        await w.reconcile(w.stored(appears))  # still missing: nothing new to write
        assert len(w.kube.patches_of(*appears.key)) == writes
        assert w.slurm.calls["sbatch"] == 0
        w.kube.configmaps[("lab", "appears-params")] = {"grid": b"8"}
        await w.reconcile(w.stored(appears))
        status = w.status(appears)
        assert status["backendRef"]["id"] == "101"
        assert (status["phase"], status["reason"]) == ("Queued", Reason.ADMITTED)
        assert status["message"] == "submitted Slurm job 101 on hpc"
        # the other one: still missing when maxPendingSeconds is over
        w.now = created + timedelta(seconds=c.DEFAULT_MAX_PENDING_SECONDS + 1)
        await w.reconcile(never)
        status = w.status(never)
        assert (status["phase"], status["reason"]) == ("Failed", Reason.INPUT_NOT_FOUND)
        assert "ConfigMap lab/never-params does not exist" in status["message"]
        assert "did not appear within maxPendingSeconds" in status["message"]
        assert w.slurm.calls["sbatch"] == 1

    run(scenario)
