"""The admission worker (simjob_operator.controller.admitter) against a fake API server:
a SimJob still waiting for kopf's finalizer is not written to, and a released
slot asks for a pass only when someone waits. Runs an asyncio loop; no cluster.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any, cast

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.backends.base import Backend
from simjob_operator.backends.kubernetes.backend import KubernetesBackend
from simjob_operator.controller.admitter import Admitter
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.tiers import TierCache
from simjob_operator.core.records import SimJobRecord
from simjob_operator.kube.client import Kube
from tests.support.bodies import admitted_status, simjob_body, tier_spec


class FakeKube:
    """SimJobs in a dict; status patches applied with their precondition checked."""

    def __init__(self, *bodies: dict[str, Any], slots: int) -> None:
        self.simjobs = {body["metadata"]["name"]: body for body in bodies}
        self.tier = {"spec": tier_spec(maxConcurrentPerOwner=slots)}
        self.lists = 0
        self.patched: list[str] = []

    async def list_simjobs(self) -> list[dict[str, Any]]:
        self.lists += 1
        return [copy.deepcopy(body) for body in self.simjobs.values()]

    async def get_simtier(self, name: str) -> dict[str, Any] | None:
        return self.tier if name == "small" else None

    async def patch_simjob_status(
        self, namespace: str, name: str, status: dict[str, Any], *, resource_version: str
    ) -> dict[str, Any]:
        body = self.simjobs[name]
        assert body["metadata"]["resourceVersion"] == resource_version
        body["status"] = {**(body.get("status") or {}), **status}
        body["metadata"]["resourceVersion"] = str(int(resource_version) + 1)
        self.patched.append(name)
        return copy.deepcopy(body)

    async def post_event(self, regarding: dict[str, Any], **_: Any) -> None:
        return None


def managed(name: str, created: str, **kwargs: Any) -> dict[str, Any]:
    body = simjob_body(name, created=created, **kwargs)
    body["metadata"]["finalizers"] = [c.FINALIZER]
    return body


def admitter(kube: FakeKube, admitted: list[str]) -> Admitter:
    fake = cast(Kube, kube)
    backends: dict[str, Backend] = {c.BACKEND_KUBERNETES: KubernetesBackend(fake)}
    return Admitter(
        kube=fake,
        tiers=TierCache(fake),
        recorder=Recorder(fake),
        backends=backends,
        on_admitted=lambda record: admitted.append(record.name),
    )


async def until(check: Callable[[], bool]) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def test_a_simjob_without_the_finalizer_is_not_written_to() -> None:
    fresh = simjob_body("fresh", created="2025-01-01T12:00:00Z")  # kopf's patch is on its way
    kube = FakeKube(fresh, managed("later", "2025-01-01T12:00:01Z"), slots=5)
    admitted: list[str] = []

    async def main() -> bool:
        return await admitter(kube, admitted).run_pass()

    anything_waits = run(main())
    assert kube.patched == []  # "later" does not overtake "fresh"
    assert admitted == []
    assert anything_waits  # so the pass is repeated
    kube.simjobs["fresh"]["metadata"]["finalizers"] = [c.FINALIZER]
    assert not run(main())
    assert sorted(admitted) == ["fresh", "later"]


def test_a_released_slot_asks_for_a_pass_only_when_someone_waits() -> None:
    kube = FakeKube(
        managed("holder", "2025-01-01T12:00:00Z", status=admitted_status("Running")),
        slots=1,
    )
    admitted: list[str] = []

    async def main() -> None:
        worker = admitter(kube, admitted)
        task = asyncio.create_task(worker.run())
        worker.trigger()
        await until(lambda: worker.passes == 1)
        await asyncio.sleep(0.05)
        worker.slot_freed()  # nobody waited at the last pass: nothing to decide
        await asyncio.sleep(0.05)
        assert worker.passes == 1

        kube.simjobs["next"] = managed("next", "2025-01-01T12:00:05Z")
        worker.trigger()  # a new SimJob asks for its own pass; it has to wait
        await until(lambda: worker.passes == 2)
        await until(lambda: kube.patched == ["next"])
        assert SimJobRecord.from_body(kube.simjobs["next"]).status.reason == (
            Reason.WAITING_FOR_SLOT
        )
        kube.simjobs["holder"]["status"]["phase"] = "Succeeded"
        worker.slot_freed()  # someone waits: decide again
        await until(lambda: admitted == ["next"])
        assert worker.passes == 3
        worker.stop()
        await task

    run(main())
