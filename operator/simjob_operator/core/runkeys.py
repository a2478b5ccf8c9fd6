"""One run per simulation: what a SimJob's runKey means for it. Pure.

A SimJob with ``spec.runKey`` belongs to a simulation (Sirepo's "one run per
simulation"); the SimJobs of one runKey in one namespace are ordered like the queue
(``core.slots.queue_order``: creation time, then name), so every operator, before or
after a restart, decides the same. For a SimJob that does not hold a slot yet:

* ``reuse: IfSucceeded`` and a Succeeded SimJob of the same runKey and inputHash whose
  outputs are still retained (``core.retention.outputs_retained``: not removed, not past
  ``outputRetentionSeconds``) -> ``Reuse`` it: end Succeeded (reason Reused) without
  compute or slot. A Reused SimJob is never a source itself (its outputs are its
  source's, whose expiry only the source knows): the source is;
* ``concurrencyPolicy: Forbid`` and an older unfinished SimJob of the runKey ->
  ``Forbid``: fail with reason RunInProgress;
* ``concurrencyPolicy: Replace`` and older unfinished SimJobs -> ``Replace`` them: they
  are cancelled (``spec.cancel``), this one goes on to admission;
* a newer unfinished SimJob of the runKey with ``concurrencyPolicy: Replace`` ->
  ``Superseded``: it is cancelled before it takes a slot (two submits seen in one pass
  never start the older run only to stop it);
* otherwise nothing to do.

The admitter decides this in its serialized passes, from the SimJob cache: the watch of
a namespace delivers SimJobs in the order they were created, so a SimJob is never seen
before an older one of its runKey (two concurrent submits are decided one way).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

from simjob_operator.core.retention import outputs_retained
from simjob_operator.core.slots import queue_order
from simjob_operator.core.verdicts import Phase, is_terminal
from simjob_operator.core.view import SimJobRecord


@dataclasses.dataclass(frozen=True)
class Reuse:
    source: SimJobRecord


@dataclasses.dataclass(frozen=True)
class Forbid:
    running: SimJobRecord


@dataclasses.dataclass(frozen=True)
class Replace:
    older: tuple[SimJobRecord, ...]


@dataclasses.dataclass(frozen=True)
class Superseded:
    newer: SimJobRecord


RunKeyDecision = Reuse | Forbid | Replace | Superseded | None


def _unfinished(record: SimJobRecord) -> bool:
    return not is_terminal(record.phase) and not record.deleting and not record.cancel


def decide_run_key(
    record: SimJobRecord, others: Iterable[SimJobRecord], *, now: datetime | None = None
) -> RunKeyDecision:
    """What ``record``'s runKey asks for, given the other SimJobs of that runKey
    (``now``: the time outputs' expiry is judged at; None judges only removals)."""
    spec = record.spec
    if spec is None or spec.run_key is None:
        return None
    peers = [other for other in others if other.uid != record.uid]
    if spec.reuse == "IfSucceeded" and spec.input_hash is not None:
        done = [
            other
            for other in peers
            if other.phase == Phase.SUCCEEDED
            and other.spec is not None
            and other.spec.input_hash == spec.input_hash
            and other.status.reused_from is None
            and outputs_retained(other, now)
        ]
        if done:
            return Reuse(max(done, key=queue_order))
    mine = queue_order(record)
    replacing = [
        other
        for other in peers
        if _unfinished(other)
        and queue_order(other) > mine
        and other.spec is not None
        and other.spec.concurrency_policy == "Replace"
    ]
    if replacing and not record.admitted:  # a run holding a slot is the newer one's to stop
        return Superseded(max(replacing, key=queue_order))
    older = sorted(
        (other for other in peers if _unfinished(other) and queue_order(other) < mine),
        key=queue_order,
    )
    if not older:
        return None
    if spec.concurrency_policy == "Forbid":
        return Forbid(older[-1])
    return Replace(tuple(older))
