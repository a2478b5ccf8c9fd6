"""A SimJob's exact place in its queue, computed on request the way admission decides.

The operator writes ``status.queuePosition`` only when a SimJob enters the queue and
when it reaches the head (issue 11), so a gateway that shows "3rd in line" asks here.
``position`` runs the operator's own pure admission rule, ``simjob_operator.core.slots
.decide`` (oldest ``creationTimestamp`` first, then namespace, then name; only SimJobs
that are not admitted, not terminal, not cancelled and not being deleted wait), over a
LIST of the SimJobs of the same tier, filtered to the same owner (``spec.owner``, else
the namespace, as ``core.view.SimJobRecord.owner``). Used by
``simjob_sdk.client.SimJobClient.queue_position``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from simjob_operator.core.phases import AdmissionState, is_terminal
from simjob_operator.core.slots import decide, queue_order, slot_key
from simjob_operator.core.view import SimJobRecord

# Without the tier's capacity: every slot counts as taken (the steady state while
# anyone waits), so the place is the rank among the waiting ones.
_NO_FREE_SLOT = 0


def waits(record: SimJobRecord) -> bool:
    """Whether admission would consider this SimJob for a slot."""
    return (
        record.spec is not None
        and not record.admitted
        and not is_terminal(record.phase)
        and not record.cancel
        and not record.deleting
    )


def position(bodies: Iterable[dict[str, Any]], uid: str, capacity: int | None) -> int | None:
    """1-based place of the SimJob ``uid`` among the SimJobs waiting for its slot key
    (owner, tier); 0 when a slot is free for it now (the next admission pass takes it);
    None when it does not wait (admitted, finished, cancelled, being deleted, absent).

    ``capacity`` is the tier's ``maxConcurrentPerOwner``; None (the tier is unknown or
    unreadable) gives the rank among the waiting ones.
    """
    records = [SimJobRecord.from_plain(body) for body in bodies]
    target = next((r for r in records if r.uid == uid), None)
    if target is None or not waits(target):
        return None
    key = slot_key(target)
    if key is None:
        return None
    same = [r for r in records if slot_key(r) == key]
    if capacity is None:
        queue = sorted((r for r in same if waits(r)), key=queue_order)
        rank = next(i for i, r in enumerate(queue) if r.uid == uid)
        return rank - _NO_FREE_SLOT + 1
    decision = decide(same, capacity={key.tier: capacity}, eligible=waits).get(uid)
    if decision is None:
        return None
    if decision.state == AdmissionState.ADMITTED:
        return 0
    return decision.position
