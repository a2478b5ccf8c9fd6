"""Recording a verdict: the status write, its Event, its log line.

``Recorder.record`` writes the status that ``statuses.build_status`` made as a
JSON merge patch of the status subresource carrying metadata.resourceVersion
as a precondition (a stale decision fails with ``kube.Conflict``; the caller
re-reads and decides again). When the phase changed it logs the transition
and posts a Kubernetes Event (Warning for Failed/TimedOut). Used by
``reconciling`` and ``admitting``; the only writer of SimJob status.
"""

from __future__ import annotations

from simjob_operator.api.simjob import SimJobStatus
from simjob_operator.core.logs import SimJobLogger
from simjob_operator.core.phases import Phase, Verdict
from simjob_operator.core.records import SimJobRecord
from simjob_operator.core.statuses import status_patch
from simjob_operator.kube.seam import KubeApi

WARNING_PHASES = frozenset({Phase.FAILED, Phase.TIMED_OUT})


class Recorder:
    def __init__(self, kube: KubeApi) -> None:
        self.kube = kube

    async def record(
        self,
        record: SimJobRecord,
        new_status: SimJobStatus,
        verdict: Verdict,
        log: SimJobLogger,
    ) -> SimJobRecord:
        """Write ``new_status`` if it differs; returns the SimJob as stored afterwards."""
        patch = status_patch(record.status, new_status)
        if not patch:
            return record
        body = await self.kube.patch_simjob_status(
            record.namespace, record.name, patch, resource_version=record.resource_version
        )
        stored = SimJobRecord.from_plain(body)
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
            await self._post(stored, old_phase, new_phase, log)
        elif verdict.reason is not None and verdict.reason != record.status.reason:
            log.info("reason %s: %s", stored.status.reason, stored.status.message)
        return stored

    async def _post(self, record: SimJobRecord, old: Phase, new: Phase, log: SimJobLogger) -> None:
        reason = record.status.reason or new.value
        message = f"{old.value} -> {new.value}: {record.status.message or ''}".strip()
        try:
            await self.kube.post_event(
                record.body,
                type_="Warning" if new in WARNING_PHASES else "Normal",
                reason=reason,
                message=message,
                action=new.value,
            )
        except Exception:
            log.warning("could not post the %s event", new.value, exc_info=True)
