"""The level-triggered reconcile of one SimJob: observe, compare, act.

``Reconciler.process`` is the work-queue callback. It starts from what the
watches delivered (``core.sightings.Sighting``: the SimJob body, the newest Job
event) and reads from the API server what they did not. For a SimJob it resolves
the tier (``core.validation``) until admission, observes the backend once the
SimJob holds a slot, asks ``core.phases.next_phase`` for a verdict, records it
first (``controller.recorder``: status PATCH with a resourceVersion precondition,
409 -> re-read and decide again) and then acts: ask the admitter for a slot,
``submit`` with the recorded ``Grant``, or ``cancel`` until the backend object is
gone. Backends are adapters: the reconciler records what ``submit`` returns (the
backend reference, a rejection that fails the SimJob, a retry after a delay, shown
as a waiting ``Queued`` SimJob when it has a reason) and
cancels a job whose SimJob went away while it was submitted. It never remembers
edges: every call starts from what the API server and the backend say now, so a
restart, a missed event or a duplicate event changes nothing. ``finalize`` is the
same loop for a SimJob being deleted (the on.delete handler's; controller/deletion.py).
A finished SimJob is counted in the usage ledger (``controller.accounting``), then is
``controller.retention``'s: its outputs are removed after the grant's
outputRetentionSeconds, the object deleted after its ttlSecondsAfterFinished.

Errors: a temporary one (the API server or a Slurm site unavailable) is logged as
one line with the SimJob's identity and retried with the work queue's backoff; a
permanent refusal of the API server at submit fails the SimJob with its message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from simjob_operator.api import names as c
from simjob_operator.api.data import WorkspaceStatus
from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import BackendRef
from simjob_operator.backends.base import (
    Backend,
    Rejected,
    RetryAfter,
    Submitted,
)
from simjob_operator.controller.accounting import Accounting
from simjob_operator.controller.deletion import TEMPORARY, Deletion
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.retention import Expiry
from simjob_operator.controller.submitter import legacy_grant, record_reference
from simjob_operator.controller.tiers import TierCache
from simjob_operator.controller.workqueue import AlreadyLogged, Key
from simjob_operator.core.logs import ObjectLogger, key_logger, simjob_logger
from simjob_operator.core.pacing import (
    pending_seconds,
    progress_wanted,
    recheck_after,
    tier_grace_left,
)
from simjob_operator.core.phases import (
    Action,
    Observation,
    ObservedState,
    Phase,
    Rejection,
    Verdict,
    is_terminal,
    next_phase,
)
from simjob_operator.core.progress import ProgressReport
from simjob_operator.core.retention import OutputRemover
from simjob_operator.core.settings import DEFAULT as SETTINGS
from simjob_operator.core.settings import Settings
from simjob_operator.core.sightings import Seen, Sighting
from simjob_operator.core.statuses import build_status
from simjob_operator.core.validation import Effective, resolve
from simjob_operator.core.verdicts import verdict
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import Conflict, KubeApi, Refused, Unavailable

logger = logging.getLogger("simjob_operator.reconciler")
AfterSubmit = Callable[[SimJobRecord, BackendRef], None]


class Reconciler:
    def __init__(
        self,
        *,
        kube: KubeApi,
        tiers: TierCache,
        recorder: Recorder,
        backends: Mapping[str, Backend],
        request_admission: Callable[[], None],
        slot_freed: Callable[[], None],
        settings: Settings = SETTINGS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        after_submit: AfterSubmit | None = None,
        removers: Mapping[str, OutputRemover] | None = None,
    ) -> None:
        self._kube = kube
        self._tiers = tiers
        self._recorder = recorder
        self._backends = backends
        self._request_admission = request_admission
        self._slot_freed = slot_freed
        self._timings = settings.timings
        self._max_conflicts = settings.limits.max_conflicts
        self._now = now
        self._expiry = Expiry(
            kube=kube, tiers=tiers, recorder=recorder, removers=removers or {}, now=now
        )
        self.accounting = Accounting(  # counts a finished SimJob, then Expiry tends it
            kube=kube, now=now, then=self._expiry.tend, on_stored=recorder.on_stored
        )
        self._deletion = Deletion(
            read=self._read,
            write=self._write,
            backend_of=self._backend,
            accounting=self.accounting,
            slot_freed=slot_freed,
            max_conflicts=self._max_conflicts,
        )
        # A test seam: runs right after a backend object was submitted, before its
        # reference is recorded (where a crash is worst). Never set in production.
        self.after_submit = after_submit

    # ------------------------------------------------------------------ entry points

    async def process(self, key: Key, sighting: Sighting | None) -> float | None:
        """Reconcile ``key``; returns seconds until it must be looked at again."""
        seen = sighting.backend if sighting is not None else None
        body = sighting.simjob if sighting is not None else None
        progress = sighting.progress if sighting is not None else None
        if body is not None:
            record = SimJobRecord.from_body(body)
        else:
            fetched = await self._read(key, key_logger(*key))
            if fetched is None:
                return None  # deleted meanwhile
            record = fetched
        for _ in range(self._max_conflicts):
            log = simjob_logger(record)
            try:
                return await self._reconcile(record, log, seen, progress)
            except Conflict:
                log.debug("status changed meanwhile; re-reading")
            except TEMPORARY as exc:
                log.warning("%s; retrying with backoff", exc)
                raise AlreadyLogged(str(exc)) from exc
            except Refused as exc:
                # The API server refuses this write for good (e.g. a status it finds
                # invalid): retrying cannot help; a change of the SimJob will retry.
                log.error("the API server refused a write; not retrying: %s", exc.message)  # noqa: TRY400 - one line, no traceback per refusal
                return None
            except Exception as exc:
                log.exception("reconcile failed")
                raise AlreadyLogged(str(exc)) from exc
            fresh = await self._read(key, log)
            if fresh is None:
                return None
            record = fresh
        return self._timings.stop_poll

    async def finalize(self, record: SimJobRecord) -> bool:
        """The SimJob is being deleted: stop its backend object. True once all is gone
        (controller/deletion.py)."""
        return await self._deletion.finalize(record)

    async def _read(self, key: Key, log: ObjectLogger | None) -> SimJobRecord | None:
        try:
            body = await self._kube.get_simjob(*key)
        except Unavailable as exc:
            if log is not None:
                log.warning("%s; retrying with backoff", exc)
                raise AlreadyLogged(str(exc)) from exc
            raise
        return SimJobRecord.from_plain(body) if body is not None else None

    # ------------------------------------------------------------------ the loop

    def _backend(self, record: SimJobRecord) -> Backend:
        name = record.spec.backend if record.spec is not None else c.BACKEND_KUBERNETES
        return self._backends.get(name) or self._backends[c.BACKEND_KUBERNETES]

    async def _resolve(self, record: SimJobRecord) -> Effective | Rejection:
        tier, tier_error = await self._tiers.get(record.tier_name)
        return resolve(
            record.spec,
            namespace=record.namespace,
            tier_name=record.tier_name,
            tier=tier,
            spec_error=record.spec_error,
            tier_error=tier_error,
            slurm_available=c.BACKEND_SLURM in self._backends,
        )

    async def _reconcile(
        self,
        record: SimJobRecord,
        log: ObjectLogger,
        seen: Seen | None,
        progress: ProgressReport | None = None,
    ) -> float | None:
        if record.deleting:
            return None  # the on.delete handler (finalize) owns it now
        if is_terminal(record.phase):
            return await self.accounting.finished(record, log)

        resolution: Effective | Rejection | None = None
        if not record.admitted:
            resolution = await self._resolve(record)
            if isinstance(resolution, Rejection) and not record.cancel:
                wait = tier_grace_left(
                    record, resolution, self._now(), self._timings.unknown_tier_grace
                )
                if wait > 0:
                    log.info(
                        "SimTier %r not found yet; checking again in %.1f s", record.tier_name, wait
                    )
                    return wait
        backend = self._backend(record)
        observation = await backend.observe(record, seen) if record.admitted else None
        return await self._decide(
            record,
            backend,
            log,
            observation=observation,
            rejection=resolution if isinstance(resolution, Rejection) else None,
            progress=progress,
        )

    async def _decide(
        self,
        record: SimJobRecord,
        backend: Backend,
        log: ObjectLogger,
        *,
        observation: Observation | None,
        rejection: Rejection | None = None,
        progress: ProgressReport | None = None,
    ) -> float | None:
        pending = pending_seconds(record, observation, self._now())
        grant = record.status.grant
        verdict = next_phase(
            record.phase,
            reason=record.status.reason,
            cancel=record.cancel,
            replaced_by=record.replaced_by,
            admitted=record.admitted,
            rejection=rejection,
            observation=observation,
            max_runtime_seconds=record.status.effective_max_runtime_seconds,
            pending_seconds=pending,
            max_pending_seconds=grant.max_pending_seconds if grant is not None else None,
        )
        stored = await self._write(
            record,
            verdict,
            observation,
            log,
            progress=progress_wanted(record, progress, self._now()),
        )
        again = await self._act(stored, verdict, backend, log)
        if again is None and observation is not None and not verdict.terminal:
            return recheck_after(observation, pending, grant, tick=self._timings.resync_tick)
        return again

    async def _write(
        self,
        record: SimJobRecord,
        verdict: Verdict,
        observation: Observation | None,
        log: ObjectLogger,
        *,
        backend_ref: BackendRef | None = None,
        workspace: WorkspaceStatus | None = None,
        progress: ProgressReport | None = None,
    ) -> SimJobRecord:
        new_status = build_status(
            record.status,
            verdict,
            now=self._now(),
            generation=record.generation,
            owner=record.owner,
            observation=observation,
            backend_ref=backend_ref,
            workspace=workspace,
            progress=progress,
        )
        stored = await self._recorder.record(record, new_status, verdict, log)
        if verdict.terminal and not is_terminal(record.phase):
            self._slot_freed()  # a slot or a queue position was freed
        return stored

    async def _act(
        self, record: SimJobRecord, verdict: Verdict, backend: Backend, log: ObjectLogger
    ) -> float | None:
        if verdict.action == Action.ADMIT:
            self._request_admission()
            return None
        if verdict.action == Action.STOP and verdict.terminal:
            # Decided here (runtime or maxPendingSeconds) while the object still exists.
            gone = await backend.cancel(record)
            log.info("stopping %s: %s", backend.backend_id(record), verdict.reason)
            if not gone:
                log.info("%s is being removed in the background", backend.backend_id(record))
            return await self.accounting.finished(record, log)
        if verdict.action == Action.STOP:
            gone = await backend.cancel(record)
            log.info("stopping %s: %s", backend.backend_id(record), "gone" if gone else "waiting")
            return 0.0 if gone else self._timings.stop_poll
        if verdict.action == Action.SUBMIT:
            return await self._submit(record, backend, log)
        if verdict.terminal:
            return await self.accounting.finished(record, log)
        return None

    async def _submit(
        self, record: SimJobRecord, backend: Backend, log: ObjectLogger
    ) -> float | None:
        grant = record.status.grant or legacy_grant(record)
        if grant is None:
            rejection = Rejection(Reason.INVALID_SPEC, "admitted without a recorded grant")
            return await self._fail(record, backend, log, rejection)
        try:
            result = await backend.submit(record, grant)
        except Refused as exc:
            return await self._fail(record, backend, log, Rejection(Reason.REFUSED, exc.message))
        if isinstance(result, RetryAfter):
            log.info("submit: %s; again in %.1f s", result.message, result.delay)
            waiting = result.as_pending()  # shown like a pod that waits (maxPendingSeconds)
            if waiting is None:
                return result.delay
            return await self._decide(record, backend, log, observation=waiting)
        if isinstance(result, Rejected):
            return await self._fail(record, backend, log, Rejection(result.reason, result.message))
        if self.after_submit is not None:
            self.after_submit(record, result.ref)
        log.bind(backend_id=result.ref.name or result.ref.id).info("submit: %s", result.message)
        await record_reference(
            record,
            backend,
            result,
            log,
            write=self._write_reference,
            read=self._read,
            attempts=self._max_conflicts,
            cancel_attempts=SETTINGS.slurm.unwanted_cancel_attempts,
            backoff=self._timings.stop_poll,
        )
        return None

    async def _write_reference(
        self, record: SimJobRecord, result: Submitted, log: ObjectLogger
    ) -> None:
        keep = Verdict(phase=record.phase or Phase.PENDING, reason=None, message=None)
        if record.phase == Phase.QUEUED and record.status.reason != Reason.ADMITTED:
            keep = verdict(Phase.QUEUED, Reason.ADMITTED, result.message)  # waits no more
        await self._write(
            record, keep, None, log, backend_ref=result.ref, workspace=result.workspace
        )

    async def _fail(
        self, record: SimJobRecord, backend: Backend, log: ObjectLogger, rejection: Rejection
    ) -> float | None:
        """The backend refused the SimJob for good: it fails with the reason."""
        failed = Observation(
            ObservedState.FAILED, reason=rejection.reason, message=rejection.message
        )
        log.warning("submit refused (%s): %s", rejection.reason, rejection.message)
        return await self._decide(record, backend, log, observation=failed)
