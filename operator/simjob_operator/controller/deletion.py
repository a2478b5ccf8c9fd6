"""A SimJob being deleted: stop its backend object, record the end, count it, let go.

The on.delete handler (controller/handlers.py) calls ``Reconciler.finalize``, which is
``Deletion.finalize``: the same observe-decide-write loop as a live SimJob's
(controller/reconciler.py), with ``deleted=True`` for ``core.phases.next_phase``
(reason Deleted). A finished SimJob is only counted in the usage ledger
(controller/accounting.py) and its backend object asked once to go (the owner
reference garbage-collects the rest); an unfinished one is stopped and its end
recorded before the finalizer may be removed. The reconciler lends its reads,
status writes and backend choice, so both paths write status the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from simjob_operator.backends.base import Backend, BackendUnavailable
from simjob_operator.controller.accounting import Accounting
from simjob_operator.controller.workqueue import Key
from simjob_operator.core.logs import ObjectLogger, simjob_logger
from simjob_operator.core.phases import (
    Action,
    Observation,
    ObservedState,
    Verdict,
    is_terminal,
    next_phase,
)
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import Conflict, Unavailable

# Errors that heal by themselves: retried, never fail a SimJob (the reconciler's too).
TEMPORARY = (Unavailable, BackendUnavailable)
Read = Callable[[Key, ObjectLogger | None], Awaitable[SimJobRecord | None]]
Write = Callable[[SimJobRecord, Verdict, Observation | None, ObjectLogger], Awaitable[SimJobRecord]]


class Deletion:
    def __init__(
        self,
        *,
        read: Read,
        write: Write,
        backend_of: Callable[[SimJobRecord], Backend],
        accounting: Accounting,
        slot_freed: Callable[[], None],
        max_conflicts: int,
    ) -> None:
        self._read = read
        self._write = write
        self._backend_of = backend_of
        self._accounting = accounting
        self._slot_freed = slot_freed
        self._max_conflicts = max_conflicts

    async def finalize(self, record: SimJobRecord) -> bool:
        """The SimJob is being deleted: stop its backend object. True once all is gone."""
        for _ in range(self._max_conflicts):
            log = simjob_logger(record)
            try:
                return await self._finalize(record, log)
            except Conflict:
                log.debug("status changed meanwhile; re-reading")
            except TEMPORARY as exc:
                log.warning("deleting: %s; retrying", exc)
                return False
            fresh = await self._read(record.key, log)
            if fresh is None or fresh.uid != record.uid:
                return True
            record = fresh
        return False

    async def _finalize(self, record: SimJobRecord, log: ObjectLogger) -> bool:
        backend = self._backend_of(record)
        if is_terminal(record.phase):
            # Nothing runs and the slot is free: ask once, do not wait for pods'
            # grace periods (the owner reference garbage-collects the rest).
            # Counted in the usage ledger before the finalizer may go.
            await self._accounting.account(record, log)
            await backend.cancel(record)
            log.info("deleted; removing %s in the background", backend.backend_id(record))
            return True
        observation = await backend.observe(record)
        exists = observation.state != ObservedState.ABSENT
        verdict = next_phase(
            record.phase,
            reason=record.status.reason,
            cancel=record.cancel,
            replaced_by=record.replaced_by,
            admitted=record.admitted or exists,
            observation=observation,
            max_runtime_seconds=record.status.effective_max_runtime_seconds,
            deleted=True,
        )
        stored = await self._write(record, verdict, observation, log)
        if exists or verdict.action == Action.STOP:
            gone = await backend.cancel(stored)
            log.info(
                "deleting: %s %s",
                backend.backend_id(record),
                "is gone" if gone else "is being removed",
            )
            if not gone:
                return False
            if not verdict.terminal:
                # It went away during this pass: the next pass observes it absent and
                # records the end (Cancelled, reason Deleted, with its Event).
                return False
        await self._accounting.account(stored, log)  # it ended just now: counted first
        self._slot_freed()
        return True
