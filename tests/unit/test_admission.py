"""Slot decisions (simjob_operator.core.slots): ordering, the concurrency bound,
what holds a slot, and what may take one. Pure; no cluster.
"""

from __future__ import annotations

import random

from simjob_operator.core.phases import AdmissionState
from simjob_operator.core.slots import SlotKey, decide, holds_slot, slot_key
from simjob_operator.core.view import SimJobRecord
from tests.support.bodies import admitted_status, simjob_body


def record(name: str, created: str = "2025-01-01T12:00:00Z", **kwargs: object) -> SimJobRecord:
    return SimJobRecord.from_body(simjob_body(name, created=created, **kwargs))  # type: ignore[arg-type]


def valid(rec: SimJobRecord) -> bool:
    return not rec.cancel and not rec.deleting


def test_oldest_first_then_name() -> None:
    records = [
        record("c", "2025-01-01T12:00:01Z"),
        record("b", "2025-01-01T12:00:00Z"),
        record("a", "2025-01-01T12:00:00Z"),
    ]
    decisions = decide(records, capacity={"small": 1}, eligible=valid)
    assert decisions["uid-lab-a"].state == AdmissionState.ADMITTED
    assert decisions["uid-lab-b"].state == AdmissionState.WAITING
    assert decisions["uid-lab-b"].position == 1
    assert decisions["uid-lab-c"].position == 2


def test_holders_count_against_the_limit() -> None:
    records = [
        record("running", status=admitted_status("Running")),
        record("starting", status=admitted_status("Queued")),
        record("next", "2025-01-01T12:00:05Z"),
    ]
    assert decide(records, capacity={"small": 2}, eligible=valid)["uid-lab-next"].state == (
        AdmissionState.WAITING
    )
    assert decide(records, capacity={"small": 3}, eligible=valid)["uid-lab-next"].state == (
        AdmissionState.ADMITTED
    )


def test_finished_jobs_release_their_slot() -> None:
    records = [
        record("done", status=admitted_status("Succeeded")),
        record("cancelled", status=admitted_status("Cancelled")),
        record("next"),
    ]
    assert not holds_slot(records[0])
    decisions = decide(records, capacity={"small": 1}, eligible=valid)
    assert decisions == {"uid-lab-next": decisions["uid-lab-next"]}
    assert decisions["uid-lab-next"].state == AdmissionState.ADMITTED


def test_keys_are_owner_and_tier() -> None:
    records = [
        record("a1", status=admitted_status()),
        record("a2"),  # owner = namespace "lab": waits behind a1
        record("b1", owner="bob"),  # another owner, same tier: free
        record("t1", tier="large"),  # same owner, another tier: free
        record("x1", namespace="other"),  # another namespace is another default owner
    ]
    decisions = decide(records, capacity={"small": 1, "large": 1}, eligible=valid)
    assert decisions["uid-lab-a2"].state == AdmissionState.WAITING
    assert decisions["uid-lab-b1"].state == AdmissionState.ADMITTED
    assert decisions["uid-lab-t1"].state == AdmissionState.ADMITTED
    assert decisions["uid-other-x1"].state == AdmissionState.ADMITTED
    assert slot_key(records[2]) == SlotKey("bob", "small")


def test_same_owner_across_namespaces_shares_slots() -> None:
    records = [
        record("a", namespace="ns1", owner="alice", status=admitted_status()),
        record("b", namespace="ns2", owner="alice"),
    ]
    decisions = decide(records, capacity={"small": 1}, eligible=valid)
    assert decisions["uid-ns2-b"].state == AdmissionState.WAITING


def test_unknown_tier_is_not_decided() -> None:
    decisions = decide([record("a", tier="ghost")], capacity={"small": 1}, eligible=valid)
    assert decisions == {}


def test_ineligible_jobs_neither_wait_nor_take_a_slot() -> None:
    records = [
        record("cancelled", "2025-01-01T11:00:00Z", cancel=True),
        record("deleting", "2025-01-01T11:00:00Z", deleting=True),
        record("next"),
    ]
    decisions = decide(records, capacity={"small": 1}, eligible=valid)
    assert set(decisions) == {"uid-lab-next"}
    assert decisions["uid-lab-next"].state == AdmissionState.ADMITTED


def test_cancelling_admitted_job_keeps_its_slot_until_finished() -> None:
    records = [
        record("stopping", cancel=True, status=admitted_status("Running")),
        record("next"),
    ]
    decisions = decide(records, capacity={"small": 1}, eligible=valid)
    assert decisions["uid-lab-next"].state == AdmissionState.WAITING


def test_bound_holds_for_any_order_and_capacity() -> None:
    rng = random.Random(7)
    for _ in range(200):
        capacity = rng.randint(1, 5)
        records = []
        for index in range(rng.randint(0, 12)):
            status = (
                admitted_status(rng.choice(["Queued", "Running", "Succeeded"]))
                if rng.random() < 0.3
                else None
            )
            created = f"2025-01-01T12:00:{rng.randint(0, 59):02d}Z"
            records.append(record(f"j{index}", created, status=status))
        rng.shuffle(records)
        decisions = decide(records, capacity={"small": capacity}, eligible=valid)
        holders = sum(holds_slot(r) for r in records)
        admitted = [
            r
            for r in records
            if decisions.get(r.uid) and decisions[r.uid].state == AdmissionState.ADMITTED
        ]
        waiting = [
            r
            for r in records
            if decisions.get(r.uid) and decisions[r.uid].state == AdmissionState.WAITING
        ]
        assert holders + len(admitted) <= max(capacity, holders)
        # Nobody waits while a slot is free, and every waiting one is younger.
        if waiting:
            assert holders + len(admitted) >= capacity
            newest_admitted = max(
                ((r.creation_timestamp, r.name) for r in admitted), default=("", "")
            )
            assert all((w.creation_timestamp, w.name) > newest_admitted for w in waiting)
            assert sorted(decisions[w.uid].position or 0 for w in waiting) == list(
                range(1, len(waiting) + 1)
            )


def test_decision_does_not_depend_on_input_order() -> None:
    records = [record(f"j{i}", f"2025-01-01T12:00:0{i % 3}Z") for i in range(9)]
    expected = decide(records, capacity={"small": 4}, eligible=valid)
    for seed in range(5):
        shuffled = list(records)
        random.Random(seed).shuffle(shuffled)
        assert decide(shuffled, capacity={"small": 4}, eligible=valid) == expected


def test_an_unsettled_simjob_keeps_its_place() -> None:
    # "a" has no finalizer yet: neither it nor anyone behind it is decided now,
    # so "b" cannot overtake it; "early" (ahead of it) is decided as usual.
    records = [
        record("early", "2025-01-01T11:59:59Z"),
        record("a", "2025-01-01T12:00:00Z"),
        record("b", "2025-01-01T12:00:00Z"),
        record("other", "2025-01-01T12:00:01Z", owner="someone-else"),
    ]
    decisions = decide(
        records,
        capacity={"small": 2},
        eligible=valid,
        settled=lambda rec: rec.name != "a",
    )
    assert set(decisions) == {"uid-lab-early", "uid-lab-other"}
    assert decisions["uid-lab-early"].state == AdmissionState.ADMITTED
    assert decisions["uid-lab-other"].state == AdmissionState.ADMITTED  # another slot key
    settled = decide(records, capacity={"small": 2}, eligible=valid, settled=lambda rec: True)
    assert settled["uid-lab-a"].state == AdmissionState.ADMITTED
    assert settled["uid-lab-b"].state == AdmissionState.WAITING
