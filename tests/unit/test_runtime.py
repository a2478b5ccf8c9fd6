"""The runtime (simjob_operator.controller.runtime) wired over the one fake API server:
a SimJob fed in as a watch event is admitted (its grant recorded), its Job created,
and it follows the Job's events to Succeeded; slots bound how many run; the runtime
stops cleanly by sentinels. No cluster, no kopf.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.controller.runtime import Runtime
from simjob_operator.core.settings import Settings, Timings
from simjob_operator.core.sightings import Seen, Sighting
from tests.support.bodies import simjob_body, tier_spec
from tests.support.fake_kube import FakeKube

FAST = Settings(timings=Timings(resync_interval=0.2, admission_resync=0.2, stop_poll=0.05))


async def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 10.0
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def managed(name: str, created: str) -> dict[str, Any]:
    body = simjob_body(name, created=created)
    body["metadata"]["finalizers"] = [c.FINALIZER]  # kopf's, as on a real cluster
    return body


def complete(job: dict[str, Any]) -> dict[str, Any]:
    done = dict(job)
    done["status"] = {
        "startTime": "2025-01-01T12:00:01Z",
        "completionTime": "2025-01-01T12:00:03Z",
        "succeeded": 1,
        "conditions": [
            {"type": "Complete", "status": "True", "lastTransitionTime": "2025-01-01T12:00:03Z"}
        ],
    }
    return done


def test_a_simjob_goes_from_event_to_succeeded_within_its_slots() -> None:
    kube = FakeKube()
    kube.add_simtier("small", tier_spec(maxConcurrentPerOwner=1, priorityClassName="sim-high"))

    async def main() -> None:
        runtime = Runtime(kube, FAST)
        runtime.start()
        try:
            for name, created in (
                ("first", "2025-01-01T12:00:00Z"),
                ("second", "2025-01-01T12:00:01Z"),
            ):
                body = kube.add_simjob(managed(name, created))
                runtime.queue.add(("lab", name), Sighting(simjob=body))
            await eventually(lambda: ("lab", "sj-first") in kube.jobs, "the first Job")
            await asyncio.sleep(0.3)  # a few admission passes: the slot bound holds
            assert ("lab", "sj-second") not in kube.jobs
            assert kube.status_of("lab", "second")["reason"] == "WaitingForSlot"
            grant = kube.status_of("lab", "first")["grant"]
            assert (grant["cpu"], grant["priorityClassName"]) == ("2", "sim-high")

            done = complete(kube.jobs[("lab", "sj-first")])
            kube.jobs[("lab", "sj-first")] = done
            body = kube.simjobs[("lab", "first")]
            runtime.queue.add(
                ("lab", "first"), Sighting(simjob=body, backend=Seen.of("MODIFIED", done))
            )
            await eventually(
                lambda: kube.status_of("lab", "first").get("phase") == "Succeeded", "Succeeded"
            )
            # The freed slot goes to the next one, without any event about it.
            await eventually(lambda: ("lab", "sj-second") in kube.jobs, "the second Job")
        finally:
            await asyncio.wait_for(runtime.stop(), 10)

    asyncio.run(asyncio.wait_for(main(), 30))
    assert kube.calls["create_job"] == 2
    patches = [patch for key, patch in kube.status_patches if key == ("lab", "first")]
    phases = [patch["phase"] for patch in patches if "phase" in patch]
    assert phases[-1] == "Succeeded"
    assert patches[-1] == {"accountedIn": "2025-01-01.lab.small"}  # then counted, once
    reasons = [event["reason"] for event in kube.events if event["regarding"]["name"] == "first"]
    assert reasons[-1] == "Completed"


def test_a_backlog_costs_a_bounded_number_of_writes_per_simjob() -> None:
    """60 SimJobs on 2 slots (each Job completes as soon as it exists): admission reads
    the cache, not the cluster (one LIST at start), and each SimJob's status is written
    a bounded number of times whatever the backlog: the queue entry, its arrival at the
    head, the admission, the end and the usage ledger's marker. The quadratic cost (a
    write per waiting SimJob per admission) must not come back unseen."""
    kube = FakeKube()
    kube.add_simtier("small", tier_spec(maxConcurrentPerOwner=2))
    names = [f"sim-{index:02d}" for index in range(60)]

    async def main() -> None:
        runtime = Runtime(kube, FAST)
        runtime.start()
        try:
            for index, name in enumerate(names):
                created = f"2025-01-01T12:{index // 60:02d}:{index % 60:02d}Z"
                body = kube.add_simjob(managed(name, created))
                runtime.cache.observe(body)  # the watch event
                runtime.queue.add(("lab", name), Sighting(simjob=body))
            done: set[str] = set()
            deadline = asyncio.get_running_loop().time() + 60
            while len(done) < len(names):
                assert asyncio.get_running_loop().time() < deadline, f"{len(done)} done"
                for (_namespace, job_name), job in list(kube.jobs.items()):
                    name = job_name.removeprefix("sj-")
                    if name in done or "conditions" in (job.get("status") or {}):
                        continue
                    finished = complete(job)  # the Job controller and the pod, at once
                    kube.jobs[("lab", job_name)] = finished
                    seen = Seen.of("MODIFIED", finished)
                    runtime.queue.add(("lab", name), Sighting(simjob=None, backend=seen))
                done = {
                    name
                    for name in names
                    if kube.status_of("lab", name).get("phase") == "Succeeded"
                }
                await asyncio.sleep(0.01)
        finally:
            await asyncio.wait_for(runtime.stop(), 10)

    asyncio.run(asyncio.wait_for(main(), 90))
    writes = {name: len(kube.patches_of("lab", name)) for name in names}
    # entry, head, admission, end, and the usage ledger's marker (docs/accounting.md)
    assert max(writes.values()) <= 5, writes
    assert sum(writes.values()) / len(names) <= 5
    assert all(kube.status_of("lab", name).get("accountedIn") for name in names)
    # Two LISTs at start (the admission seed; the Slurm pollers' start-up tracking), none
    # per admission pass: passes read the cache.
    assert kube.calls["list_simjobs"] == 2
    assert kube.calls["create_job"] == 60
    # The slot bound held: never more than 2 Jobs without an end at once is implied by
    # admission; check the order: oldest first.
    starts = sorted(names, key=lambda name: kube.status_of("lab", name)["startTime"])
    assert starts[:2] == names[:2]
