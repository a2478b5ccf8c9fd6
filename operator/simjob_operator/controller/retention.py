"""What happens to a finished SimJob over time: its outputs expire, then it is deleted.

``Expiry.tend`` is the reconciler's step for a SimJob in a terminal phase. Level-
triggered from status alone (``core.retention``), so a restart resumes where it was:

1. outputs: once ``completionTime + outputRetentionSeconds`` has passed and no
   ``OutputsRemoved`` condition is set, the remover of the workspace's kind
   (``backends.kubernetes.retention.ClaimCleaner`` for a claim,
   ``backends.slurm.retention.RunDirCleaner`` for a Slurm run directory) removes exactly
   the run's directory; while it works ``tend`` looks again after its delay; when it
   ended the condition is written (True ``OutputsExpired``, or False
   ``OutputsRemovalRefused`` with the reason — not retried), with an Event;
2. the object: after ``ttlSecondsAfterFinished`` it is deleted, but never before its
   outputs' removal ended (the SimJob is the only record of them; the SimTier's CEL
   refuses a retention longer than the TTL, so this only waits for a removal in
   progress, or for grants recorded before that rule).

Status is written through the reconciler's ``Recorder`` (the only status writer);
a stale body raises ``kube.seam.Conflict`` and the reconciler re-reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from simjob_operator.api.data import WorkspaceStatus
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.tiers import TierCache
from simjob_operator.core import retention as r
from simjob_operator.core.logs import ObjectLogger
from simjob_operator.core.phases import Phase, Verdict
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import KubeApi, KubeError

CLAIM = "claim"  # the removers' keys: a workspace in a PersistentVolumeClaim
RUN_DIRECTORY = "runDirectory"  # ... or a Slurm run directory


def _kind(workspace: WorkspaceStatus) -> str:
    return CLAIM if workspace.claim_name is not None else RUN_DIRECTORY


class Expiry:
    def __init__(
        self,
        *,
        kube: KubeApi,
        tiers: TierCache,
        recorder: Recorder,
        removers: Mapping[str, r.OutputRemover],
        now: Callable[[], datetime],
    ) -> None:
        self._kube = kube
        self._tiers = tiers
        self._recorder = recorder
        self._removers = removers
        self._now = now

    async def tend(self, record: SimJobRecord, log: ObjectLogger) -> float | None:
        """Remove expired outputs, delete an expired SimJob; seconds until next time."""
        waits: list[float] = []
        pending = False  # a removal to come holds the deletion back
        due = r.step(record, self._now())
        if isinstance(due, r.Wait):
            waits.append(due.seconds)
            pending = True
        elif isinstance(due, r.RemoveNow):
            delay = await self._remove(record, due.workspace, log)
            if delay is not None:
                waits.append(delay)
                pending = True
        ttl = record.status.grant.ttl_seconds_after_finished if record.status.grant else None
        if ttl is None and record.status.grant is None:  # admitted by an older operator
            tier, _error = await self._tiers.get(record.tier_name)
            ttl = tier.ttl_seconds_after_finished if tier is not None else None
        left = r.ttl_left(record, ttl, self._now())
        if left is not None and left > 0:
            waits.append(left)
        elif left is not None and ttl is not None and not pending:
            log.info("deleting: finished %.0f s ago (ttlSecondsAfterFinished %d)", ttl - left, ttl)
            await self._kube.delete_simjob(record.namespace, record.name, uid=record.uid)
            return None
        return min(waits) if waits else None

    async def _remove(
        self, record: SimJobRecord, workspace: WorkspaceStatus, log: ObjectLogger
    ) -> float | None:
        """One look at the removal; its delay while it works, None once recorded."""
        remover = self._removers.get(_kind(workspace))
        if remover is None:
            removal: r.Removal = r.Refused(f"no remover for {_kind(workspace)} outputs")
        else:
            removal = await remover.remove(record, workspace)
        if isinstance(removal, r.Removing):
            log.debug("outputs expired: %s", removal.message)
            return removal.delay
        status = r.with_removal(
            record.status, removal, now=self._now(), generation=record.generation
        )
        keep = Verdict(phase=record.phase or Phase.SUCCEEDED, reason=None, message=None)
        stored = await self._recorder.record(record, status, keep, log)
        removed = isinstance(removal, r.Removed)
        if removed:
            log.info("outputs expired and removed: %s", removal.message)
        else:
            log.warning("outputs expired; removal refused: %s", removal.message)
        try:
            await self._kube.post_event(
                stored.body,
                type_="Normal" if removed else "Warning",
                reason=r.REASON_EXPIRED if removed else r.REASON_REFUSED,
                message=removal.message,
                action="RemoveOutputs",
            )
        except KubeError as exc:  # an Event is a courtesy: the condition says it
            log.warning("could not post the outputs event: %s", exc)
        return None
