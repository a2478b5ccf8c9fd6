"""The admission worker (simjob_operator.controller.admitter) against a fake API server:
a SimJob still waiting for kopf's finalizer is not written to, and a released
slot asks for a pass only when someone waits. Runs an asyncio loop; no cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.backends.base import Backend
from simjob_operator.backends.kubernetes.backend import KubernetesBackend
from simjob_operator.controller.admitter import Admitter
from simjob_operator.controller.cache import SimJobCache
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.tiers import TierCache
from simjob_operator.core.view import SimJobRecord
from tests.support.bodies import admitted_status, simjob_body, tier_spec
from tests.support.fake_kube import FakeKube


def fake_kube(*bodies: dict[str, Any], slots: int) -> FakeKube:
    """The one fake API server with these SimJobs and the tier "small"."""
    kube = FakeKube()
    for body in bodies:
        kube.add_simjob(body)
    kube.add_simtier("small", tier_spec(maxConcurrentPerOwner=slots))
    return kube


def patched(kube: FakeKube) -> list[str]:
    return [name for (_namespace, name), _patch in kube.status_patches]


def body_of(kube: FakeKube, name: str) -> dict[str, Any]:
    return kube.simjobs[("lab", name)]


def managed(name: str, created: str, **kwargs: Any) -> dict[str, Any]:
    body = simjob_body(name, created=created, **kwargs)
    body["metadata"]["finalizers"] = [c.FINALIZER]
    return body


CACHES: dict[int, SimJobCache] = {}


def admitter(kube: FakeKube, admitted: list[str]) -> Admitter:
    """An admitter over the fake, with the SimJob cache the runtime would give it (one
    per fake: seeded by one LIST, then fed by ``watch``, as kopf's events would)."""
    backends: dict[str, Backend] = {c.BACKEND_KUBERNETES: KubernetesBackend(kube)}
    cache = CACHES.setdefault(id(kube), SimJobCache())
    if getattr(kube, "_admission_cache", None) is not cache:  # an id reused after GC
        cache = CACHES[id(kube)] = SimJobCache()
        kube._admission_cache = cache  # type: ignore[attr-defined]
    return Admitter(
        kube=kube,
        cache=cache,
        tiers=TierCache(kube),
        recorder=Recorder(kube, on_stored=cache.stored),
        backends=backends,
        on_admitted=lambda record: admitted.append(record.name),
    )


def watch(kube: FakeKube, name: str) -> None:
    """The watch event of a change made on the fake API server."""
    CACHES[id(kube)].observe(body_of(kube, name))


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
    kube = fake_kube(fresh, managed("later", "2025-01-01T12:00:01Z"), slots=5)
    admitted: list[str] = []

    async def main() -> bool:
        return await admitter(kube, admitted).run_pass()

    anything_waits = run(main())
    assert patched(kube) == []  # "later" does not overtake "fresh"
    assert admitted == []
    assert anything_waits  # so the pass is repeated
    body_of(kube, "fresh")["metadata"]["finalizers"] = [c.FINALIZER]
    body_of(kube, "fresh")["metadata"]["resourceVersion"] = "5000"
    watch(kube, "fresh")
    assert not run(main())
    assert sorted(admitted) == ["fresh", "later"]


def test_a_released_slot_asks_for_a_pass_only_when_someone_waits() -> None:
    kube = fake_kube(
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

        kube.add_simjob(managed("next", "2025-01-01T12:00:05Z"))
        watch(kube, "next")
        worker.trigger()  # a new SimJob asks for its own pass; it has to wait
        await until(lambda: worker.passes == 2)
        await until(lambda: patched(kube) == ["next"])
        assert SimJobRecord.from_body(body_of(kube, "next")).status.reason == (
            Reason.WAITING_FOR_SLOT
        )
        body_of(kube, "holder")["status"]["phase"] = "Succeeded"
        body_of(kube, "holder")["metadata"]["resourceVersion"] = "6000"
        watch(kube, "holder")
        worker.slot_freed()  # someone waits: decide again
        await until(lambda: admitted == ["next"])
        assert worker.passes == 3
        worker.stop()
        await task

    run(main())
