"""Slot decisions: which waiting SimJobs may start now. Pure.

A slot key is (owner, tier). At most ``maxConcurrentPerOwner`` SimJobs of one
key hold a slot at once; a SimJob holds one from the moment it is admitted
(condition Admitted=True) until it reaches a terminal phase. ``decide`` takes
every SimJob the API server returned (``records.SimJobRecord``), the capacity
of each tier, and which SimJobs are eligible (valid, not cancelled, not being
deleted), and returns an ``phases.Admission`` for every eligible SimJob that
does not hold a slot: admitted, or waiting with its 1-based queue position.

Order: oldest first by ``metadata.creationTimestamp`` (assigned by the API
server, so it survives operator restarts), then namespace and name. A waiting
SimJob that is not ``settled`` yet (the operator has not taken charge of it:
kopf's finalizer is not on it) keeps its place: neither it nor anyone behind it
is decided in this pass, so nobody overtakes it.
``admitting`` runs this over a fresh LIST, one pass at a time.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from simjob_operator.core.phases import Admission, AdmissionState, is_terminal
from simjob_operator.core.view import SimJobRecord


@dataclasses.dataclass(frozen=True, order=True)
class SlotKey:
    owner: str
    tier: str

    def __str__(self) -> str:
        return f"owner {self.owner!r} in tier {self.tier!r}"


def slot_key(record: SimJobRecord) -> SlotKey | None:
    tier = record.tier_name
    return SlotKey(record.owner, tier) if tier else None


def holds_slot(record: SimJobRecord) -> bool:
    return record.admitted and not is_terminal(record.phase)


def queue_order(record: SimJobRecord) -> tuple[str, str, str]:
    return (record.creation_timestamp, record.namespace, record.name)


def decide(
    records: Iterable[SimJobRecord],
    *,
    capacity: Mapping[str, int],
    eligible: Callable[[SimJobRecord], bool],
    settled: Callable[[SimJobRecord], bool] = lambda _record: True,
) -> dict[str, Admission]:
    """Admission decisions by SimJob uid.

    ``capacity`` maps a tier name to its ``maxConcurrentPerOwner``; keys whose tier
    is missing there are not decided (the tier is unknown). ``eligible`` says
    whether a SimJob without a slot may get one; ``settled`` whether an eligible
    one can be decided now (see the module docstring).
    """
    holders: dict[SlotKey, int] = defaultdict(int)
    waiting: dict[SlotKey, list[SimJobRecord]] = defaultdict(list)
    for record in records:
        key = slot_key(record)
        if key is None:
            continue
        if holds_slot(record):
            holders[key] += 1
        elif not record.admitted and not is_terminal(record.phase) and eligible(record):
            waiting[key].append(record)

    decisions: dict[str, Admission] = {}
    for key, queue in waiting.items():
        limit = capacity.get(key.tier)
        if limit is None:
            continue
        free = max(0, limit - holders[key])
        queue.sort(key=queue_order)
        for index, record in enumerate(queue):
            if not settled(record):
                break  # it keeps its place; the rest is decided in a later pass
            if index < free:
                decisions[record.uid] = Admission(
                    AdmissionState.ADMITTED,
                    message=f"admitted: slot {holders[key] + index + 1} of {limit} for {key}",
                )
            else:
                position = index - free + 1
                decisions[record.uid] = Admission(
                    AdmissionState.WAITING,
                    position=position,
                    message=f"waiting for a slot: {limit} of {limit} in use for {key}",
                )
    return decisions
