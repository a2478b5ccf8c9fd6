"""Recording a verdict: the status write, its Event, its log line.

``Recorder.record`` writes the status that ``core.statuses.build_status`` made as a
JSON merge patch of the status subresource carrying metadata.resourceVersion as a
precondition (a stale decision fails with ``kube.seam.Conflict``; the caller re-reads
and decides again), and hands the stored body to ``on_stored`` (the SimJob cache:
write-through). It logs every phase or reason change. Events are paid by the API
server, so only what a user must be told gets one (see ``event_for``): the end of a
run (Warning for Failed/TimedOut) and a wait that is not routine (Unschedulable, an
image that cannot be pulled, a Slurm pending reason). Used by
``controller.reconciler`` and ``controller.admitter``; the only writer of SimJob
status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simjob_operator import metrics
from simjob_operator.api.reasons import STOP_REASONS, Reason
from simjob_operator.api.simjob import SimJobStatus
from simjob_operator.core.logs import ObjectLogger
from simjob_operator.core.observations import ROUTINE_PENDING_REASONS
from simjob_operator.core.phases import TERMINAL_PHASES, Phase, Verdict
from simjob_operator.core.statuses import status_patch
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import KubeApi, KubeError

WARNING_PHASES = frozenset({Phase.FAILED, Phase.TIMED_OUT})
# Reasons of a live SimJob that need no Event: the normal way through.
ROUTINE_REASONS = frozenset(
    {
        Reason.WAITING_FOR_SLOT,
        Reason.ADMITTED,
        Reason.STARTED,
        *STOP_REASONS,
        *ROUTINE_PENDING_REASONS,
    }
)


def event_for(old: SimJobRecord, new: SimJobRecord) -> tuple[str, str] | None:
    """(type, reason) of the Event a status change deserves, or None. Pure."""
    old_phase, new_phase = old.phase or Phase.PENDING, new.phase or Phase.PENDING
    reason = new.status.reason or new_phase.value
    if new_phase != old_phase and new_phase in TERMINAL_PHASES:
        return ("Warning" if new_phase in WARNING_PHASES else "Normal", reason)
    if new_phase in TERMINAL_PHASES or reason == old.status.reason:
        return None
    return None if reason in ROUTINE_REASONS else ("Warning", reason)


class Recorder:
    def __init__(
        self, kube: KubeApi, on_stored: Callable[[dict[str, Any]], object] | None = None
    ) -> None:
        self.kube = kube
        self.on_stored = on_stored

    async def record(
        self,
        record: SimJobRecord,
        new_status: SimJobStatus,
        verdict: Verdict,
        log: ObjectLogger,
    ) -> SimJobRecord:
        """Write ``new_status`` if it differs; returns the SimJob as stored afterwards."""
        patch = status_patch(record.status, new_status)
        if not patch:
            return record
        body = await self.kube.patch_simjob_status(
            record.namespace, record.name, patch, resource_version=record.resource_version
        )
        if self.on_stored is not None:
            self.on_stored(body)
        stored = SimJobRecord.from_plain(body)
        metrics.recorded(record, stored)  # admission, start, end: written by this process
        old_phase = record.phase or Phase.PENDING
        new_phase = stored.phase or Phase.PENDING
        if new_phase != old_phase:
            log = log.bind(phase=new_phase.value)
            log.info(
                "phase %s -> %s (%s): %s",
                old_phase.value,
                new_phase.value,
                stored.status.reason,
                stored.status.message,
            )
        elif verdict.reason is not None and verdict.reason != record.status.reason:
            log.info("reason %s: %s", stored.status.reason, stored.status.message)
        event = event_for(record, stored)
        if event is not None:
            await self._post(stored, old_phase, new_phase, event, log)
        return stored

    async def _post(
        self,
        record: SimJobRecord,
        old: Phase,
        new: Phase,
        event: tuple[str, str],
        log: ObjectLogger,
    ) -> None:
        type_, reason = event
        message = f"{old.value} -> {new.value}: {record.status.message or ''}".strip()
        try:
            await self.kube.post_event(
                record.body, type_=type_, reason=reason, message=message, action=new.value
            )
        except KubeError as exc:  # an Event is a courtesy: the status already says it
            log.warning("could not post the %s event: %s", reason, exc)
