"""The usage ledger's exactly-once protocol (controller.accounting) on the FakeKube.

Every crash point of ``Accounting.account`` (before and after each of its writes) is
followed by a restart that starts from the stale body the crashed pass had; the ledger
must then hold the SimJob exactly once. Also: a second actor racing the first (the
reconciler and the on.delete handler), a randomized crash storm over many SimJobs of
several owners, tiers and days whose ledgers must equal the exact sums, the sweep of
entries a crash left pending, the size bound, and the TTL purge and the finalizer
waiting for the count. Neighbours: test_ledger.py (the pure fold), tests/chaos/
test_usage_ledger.py (the same on a real control plane under kill -9).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from simjob_operator.api import names as c
from simjob_operator.api.simusage import MAX_PENDING, SimUsageStatus
from simjob_operator.backends.base import Backend
from simjob_operator.backends.kubernetes.backend import KubernetesBackend
from simjob_operator.controller.accounting import SWEEP_AT, Accounting
from simjob_operator.controller.reconciler import Reconciler
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.tiers import TierCache
from simjob_operator.core.ledger import ledger_name, to_decimal
from simjob_operator.core.logs import simjob_logger
from simjob_operator.core.sightings import Sighting
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import Conflict, KubeError, Refused
from tests.support.bodies import simjob_body, tier_spec
from tests.support.fake_kube import FakeKube

NOW = datetime(2025, 1, 2, 9, 0, tzinfo=UTC)
NS = "lab"


class Crash(KubeError):
    """A kill -9 at this point: nothing after it runs (the protocol catches no KubeError
    but Conflict/AlreadyExists, like a dead process runs nothing)."""


def finished(
    phase: str = "Succeeded",
    *,
    wall: float = 10.0,
    cpu: float = 20.0,
    day: str = "2025-01-01",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "phase": phase,
        "conditions": [{"type": c.COND_ADMITTED, "status": "True", "reason": "Admitted"}],
        "startTime": f"{day}T11:00:00Z",
        "completionTime": f"{day}T11:00:10Z",
        "resources": {"cpu": "2", "memory": "4Gi", "gpu": 1},
        "usage": {
            "wallSeconds": wall,
            "cpuSeconds": cpu,
            "gpuSeconds": wall,
            "memoryGiBSeconds": wall * 4,
        },
        **extra,
    }


async def _then(record: SimJobRecord, log: object) -> float | None:
    return None


def accounting(kube: FakeKube, **kwargs: Any) -> Accounting:
    return Accounting(kube=kube, now=lambda: NOW, then=_then, **kwargs)


def add(kube: FakeKube, name: str, status: dict[str, Any], **spec: Any) -> SimJobRecord:
    return SimJobRecord.from_plain(kube.add_simjob(simjob_body(name, status=status, **spec)))


def account(acc: Accounting, record: SimJobRecord) -> SimJobRecord | None:
    return asyncio.run(acc.account(record, simjob_logger(record)))


def ledger(kube: FakeKube, name: str) -> SimUsageStatus:
    return SimUsageStatus.model_validate(kube.simusages[(NS, name)].get("status") or {})


def marker(kube: FakeKube, name: str) -> str | None:
    value = kube.status_of(NS, name).get("accountedIn")
    return str(value) if value is not None else None


LEDGER = ledger_name(NS, "small", "2025-01-01")  # owner defaults to the namespace


# --------------------------------------------------------------------------- the protocol


def test_a_finished_simjob_is_counted_marked_and_unpended() -> None:
    kube = FakeKube()
    record = add(kube, "a", finished("Failed", wall=1.2345, cpu=2.469))
    stored = account(accounting(kube), record)
    assert stored is not None
    assert stored.status.accounted_in == LEDGER
    assert marker(kube, "a") == LEDGER
    usage = ledger(kube, LEDGER)
    assert usage.sim_jobs == 1
    assert usage.outcomes == {"Failed": 1}
    assert usage.wall_seconds == "1.234" or usage.wall_seconds == "1.235"  # float of 1.2345
    assert usage.cpu_seconds == "2.469"
    assert usage.gpu_seconds == usage.wall_seconds
    assert usage.pending == []
    meta = kube.simusages[(NS, LEDGER)]
    assert meta["spec"] == {"owner": NS, "tier": "small", "period": "2025-01-01"}
    assert meta["metadata"]["labels"][c.LABEL_PERIOD] == "2025-01-01"


def test_accounting_again_writes_nothing() -> None:
    kube = FakeKube()
    record = add(kube, "a", finished())
    acc = accounting(kube)
    stored = account(acc, record)
    assert stored is not None
    before = dict(kube.calls)
    assert account(acc, stored) is stored  # the marker says it: not even a read
    assert dict(kube.calls) == before


def test_unfinished_simjobs_are_not_counted() -> None:
    kube = FakeKube()
    record = add(kube, "a", {"phase": "Running"})
    assert account(accounting(kube), record) is record
    assert kube.simusages == {}


@pytest.mark.parametrize(
    "crash",
    [
        "get_simusage",  # before anything
        "create_simusage",  # the ledger is not there yet
        "get_simjob",  # ledger created, nothing folded
        "patch_simusage_status",  # the fold itself is lost
        "after folded",  # folded, no marker: the uid is pending
        "patch_simjob_status",  # the marker write is lost
        "after marked",  # marked, the uid still pending
        "unpend",  # the unpend write is lost
    ],
)
def test_every_crash_point_then_a_restart_counts_once(crash: str) -> None:
    kube = FakeKube()
    stale = add(kube, "a", finished())
    crashing = accounting(kube)
    if crash.startswith("after "):

        def die(step: str, record: SimJobRecord) -> None:
            if step == crash.removeprefix("after "):
                raise Crash(f"kill -9 {crash}")

        crashing.after_step = die
    elif crash == "unpend":
        original = kube.patch_simusage_status
        seen = {"n": 0}

        async def second_write_dies(*args: Any, **kwargs: Any) -> dict[str, Any]:
            seen["n"] += 1
            if seen["n"] == 2:
                raise Crash("kill -9 before the unpend write")
            return await original(*args, **kwargs)

        kube.patch_simusage_status = second_write_dies  # type: ignore[method-assign]
    else:
        kube.fail(crash, Crash(f"kill -9 at {crash}"))
    with pytest.raises(Crash):
        account(crashing, stale)
    if crash == "unpend":
        kube.patch_simusage_status = original  # type: ignore[method-assign]

    restarted = accounting(kube)
    stored = account(restarted, stale)  # the restart starts from the stale body
    assert stored is not None
    assert stored.status.accounted_in == LEDGER
    usage = ledger(kube, LEDGER)
    assert usage.sim_jobs == 1, crash
    assert usage.cpu_seconds == "20"
    assert usage.outcomes == {"Succeeded": 1}
    # Only a crash after the marker (before its unpend) leaves the uid pending; the
    # sweep of a later fold takes it out (test_the_sweep_drops_what_crashes_left).
    leftover = crash in {"after marked", "unpend"}
    assert [p.uid for p in usage.pending] == (["uid-lab-a"] if leftover else [])


def test_a_stale_second_actor_never_counts_again() -> None:
    """The on.delete handler and the reconciler may both hold the SimJob without its
    marker: whoever comes second sees the marker (read after the ledger) and stops."""
    kube = FakeKube()
    stale = add(kube, "a", finished())
    account(accounting(kube), stale)
    stored = account(accounting(kube), stale)
    assert stored is not None
    assert stored.status.accounted_in == LEDGER
    assert ledger(kube, LEDGER).sim_jobs == 1


@pytest.mark.parametrize("interleave_at", [1, 2])
def test_a_race_between_reading_the_ledger_and_folding_loses_with_a_conflict(
    interleave_at: int,
) -> None:
    """B reads the ledger, then A counts, marks and unpends the SimJob, then B reads the
    SimJob (1: marker written, B stops). Or A does all that after B read both (2): B's
    fold carries the ledger version it read and is refused (409); B starts again and
    sees the marker."""
    kube = FakeKube()
    stale = add(kube, "a", finished())
    first, second = accounting(kube), accounting(kube)
    original: Callable[[str, str], Awaitable[dict[str, Any] | None]] = kube.get_simjob
    calls = {"n": 0}

    async def get_with_a_rival(namespace: str, name: str) -> dict[str, Any] | None:
        calls["n"] += 1
        body = await original(namespace, name)
        if calls["n"] == 1:
            kube.get_simjob = original  # type: ignore[method-assign,assignment]
            if interleave_at == 1:
                await first.account(stale, simjob_logger(stale))
                body = await original(namespace, name)
            else:
                await first.account(stale, simjob_logger(stale))
        return body

    kube.get_simjob = get_with_a_rival  # type: ignore[method-assign]
    account(second, stale)
    assert ledger(kube, LEDGER).sim_jobs == 1
    assert marker(kube, "a") == LEDGER


def test_conflicts_on_every_write_are_retried() -> None:
    kube = FakeKube()
    record = add(kube, "a", finished())
    kube.fail("patch_simusage_status", Conflict("409"))
    kube.conflicts = 1  # the marker write loses one race too
    stored = account(accounting(kube), record)
    assert stored is not None
    assert stored.status.accounted_in == LEDGER
    assert ledger(kube, LEDGER).sim_jobs == 1


def test_a_simjob_gone_before_it_was_counted_is_left_alone() -> None:
    kube = FakeKube()
    record = add(kube, "a", finished())
    del kube.simjobs[(NS, "a")]  # its finalizer removed by hand
    assert account(accounting(kube), record) is None
    assert ledger(kube, LEDGER).sim_jobs == 0  # the (empty) ledger was made first


def test_a_name_collision_is_refused() -> None:
    kube = FakeKube()
    record = add(kube, "a", finished())
    kube.simusages[(NS, LEDGER)] = {
        "metadata": {"name": LEDGER, "namespace": NS, "resourceVersion": "1"},
        "spec": {"owner": "someone-else", "tier": "small", "period": "2025-01-01"},
    }
    with pytest.raises(Refused):
        account(accounting(kube), record)


# --------------------------------------------------------------------------- many SimJobs


def test_a_crash_storm_over_many_simjobs_leaves_exact_sums() -> None:
    rng = random.Random(14)
    kube = FakeKube()
    phases = ["Succeeded", "Failed", "Cancelled", "TimedOut"]
    records = []
    for index in range(120):
        wall = round(rng.uniform(0, 5000), 3)
        status = finished(
            rng.choice(phases),
            wall=wall,
            cpu=round(wall * rng.choice([0.1, 0.5, 2.0]), 3),
            day=rng.choice(["2025-01-01", "2025-01-02"]),
        )
        owner = rng.choice(["alice", "Bob_2", None])
        spec = {"tier": rng.choice(["small", "big.gpu"])} | ({"owner": owner} if owner else {})
        records.append(add(kube, f"sj-{index}", status, **spec))
    calls = ["get_simusage", "create_simusage", "get_simjob", "patch_simusage_status"]
    crashes = 0
    todo = list(records)
    while todo:
        record = todo.pop(0)
        acc = accounting(kube)
        if rng.random() < 0.4:
            kube.fail(rng.choice([*calls, "patch_simjob_status"]), Crash("kill -9"))
        try:
            account(acc, record)
        except Crash:
            crashes += 1
            todo.append(record)  # the restart looks at it again (from the stale body)
        kube.failures.clear()
    assert crashes > 20
    expected: dict[str, dict[str, Any]] = {}
    for record in records:
        final = SimJobRecord.from_plain(kube.simjobs[(NS, record.name)])
        assert final.status.accounted_in is not None
        usage = final.status.usage
        assert usage is not None
        sums = expected.setdefault(final.status.accounted_in, {"n": 0, "cpu": Decimal(0)})
        sums["n"] += 1
        sums["cpu"] += to_decimal(usage.cpu_seconds)
    assert sum(sums["n"] for sums in expected.values()) == len(records)
    for name, sums in expected.items():
        book = ledger(kube, name)
        assert book.sim_jobs == sums["n"]
        assert Decimal(book.cpu_seconds) == sums["cpu"]
        assert sum(book.outcomes.values()) == sums["n"]
    assert len(kube.simusages) == len(expected) <= 2 * 2 * 3


def test_the_sweep_drops_what_crashes_left() -> None:
    kube = FakeKube()
    leftovers = []
    for index in range(SWEEP_AT):
        leftovers.append(add(kube, f"old-{index}", finished()))
    acc = accounting(kube)

    def die(step: str, record: SimJobRecord) -> None:
        if step == "marked":
            raise Crash("kill -9 after the marker")

    acc.after_step = die
    for record in leftovers:
        with pytest.raises(Crash):
            account(acc, record)
    del kube.simjobs[(NS, "old-0")]  # one of them purged meanwhile
    assert len(ledger(kube, LEDGER).pending) == SWEEP_AT
    account(accounting(kube), add(kube, "new", finished()))
    usage = ledger(kube, LEDGER)
    assert usage.sim_jobs == SWEEP_AT + 1
    assert usage.pending == []


def test_the_pending_list_is_bounded() -> None:
    kube = FakeKube()
    record = add(kube, "a", finished())
    acc = accounting(kube)
    name = LEDGER
    full = [{"uid": f"u{i}", "name": f"in-flight-{i}"} for i in range(MAX_PENDING)]
    for entry in full:
        kube.add_simjob(simjob_body(entry["name"], uid=entry["uid"], status=finished()))
    kube.simusages[(NS, name)] = {
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "1"},
        "spec": {"owner": NS, "tier": "small", "period": "2025-01-01"},
        "status": {"simJobs": MAX_PENDING, "pending": full},
    }
    stored = account(acc, record)  # every pending SimJob is in flight: no room
    assert stored is not None
    assert stored.status.accounted_in is None
    assert ledger(kube, name).sim_jobs == MAX_PENDING


# --------------------------------------------------------------------------- the reconciler


def reconciler(kube: FakeKube) -> Reconciler:
    backends: dict[str, Backend] = {c.BACKEND_KUBERNETES: KubernetesBackend(kube, now=lambda: NOW)}
    return Reconciler(
        kube=kube,
        tiers=TierCache(kube),
        recorder=Recorder(kube),
        backends=backends,
        request_admission=lambda: None,
        slot_freed=lambda: None,
        now=lambda: NOW,
    )


def test_the_ttl_purge_waits_for_the_count() -> None:
    kube = FakeKube()
    kube.add_simtier("small", tier_spec())
    status = finished(grant={"cpu": "2", "memory": "4Gi", "maxRuntimeSeconds": 60})
    status["grant"]["ttlSecondsAfterFinished"] = 0
    add(kube, "a", status)
    kube.fail("patch_simusage_status", Crash("kill -9 at the fold"))
    r = reconciler(kube)
    body = kube.simjobs[(NS, "a")]
    with pytest.raises(Exception, match="kill -9"):
        asyncio.run(r.process((NS, "a"), Sighting(simjob=body)))
    assert (NS, "a") in kube.simjobs  # not purged uncounted
    asyncio.run(r.process((NS, "a"), Sighting(simjob=kube.simjobs[(NS, "a")])))
    assert (NS, "a") not in kube.simjobs
    assert ledger(kube, LEDGER).sim_jobs == 1


def test_the_finalizer_goes_only_after_the_count() -> None:
    kube = FakeKube()
    kube.add_simtier("small", tier_spec())
    record = add(kube, "a", finished())
    done = asyncio.run(reconciler(kube).finalize(record))
    assert done is True
    assert marker(kube, "a") == LEDGER
    assert ledger(kube, LEDGER).sim_jobs == 1


def test_a_simjob_deleted_while_pending_is_counted_as_cancelled() -> None:
    kube = FakeKube()
    kube.add_simtier("small", tier_spec())
    record = SimJobRecord.from_plain(kube.add_simjob(simjob_body("a", deleting=True)))
    assert asyncio.run(reconciler(kube).finalize(record)) is True
    name = ledger_name(NS, "small", "2025-01-02")  # it ended now (NOW's day)
    usage = ledger(kube, name)
    assert usage.sim_jobs == 1
    assert usage.outcomes == {"Cancelled": 1}
    assert usage.cpu_seconds == "0"


class YieldingKube(FakeKube):
    """A FakeKube whose ledger and SimJob calls yield to the event loop, so SimJobs
    accounted concurrently interleave as they do against a real API server."""

    async def get_simusage(self, namespace: str, name: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        return await super().get_simusage(namespace, name)

    async def get_simjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        return await super().get_simjob(namespace, name)


def test_simjobs_finishing_together_take_turns_instead_of_losing_races() -> None:
    kube = YieldingKube()
    records = [add(kube, f"sj-{index}", finished()) for index in range(30)]
    acc = accounting(kube)

    async def all_at_once() -> list[SimJobRecord | None]:
        return await asyncio.gather(*(acc.account(r, simjob_logger(r)) for r in records))

    stored = asyncio.run(all_at_once())
    assert all(r is not None and r.status.accounted_in == LEDGER for r in stored)
    assert ledger(kube, LEDGER).sim_jobs == 30
    assert ledger(kube, LEDGER).pending == []
    # one fold each, no write lost to a 409 and retried; each fold reuses the ledger the
    # one before stored and unpends the uids marked before it; one unpend at the end
    assert kube.calls["patch_simusage_status"] == 31
    assert kube.calls["get_simusage"] == 1
    assert kube.calls["get_simjob"] == 30
