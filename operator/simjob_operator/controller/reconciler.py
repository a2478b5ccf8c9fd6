"""The level-triggered reconcile of one SimJob: observe, compare, act.

``Reconciler.process`` is the work-queue callback. It starts from what the
watches delivered (``sightings.Sighting``: the SimJob body, the newest Job event)
and reads from the API server what they did not. For a SimJob it resolves the
tier (``validation``), observes the backend when the SimJob holds a slot,
asks ``phases.next_phase`` for a verdict, records it first (``recording``;
status PATCH with a resourceVersion precondition, 409 -> re-read and decide
again) and then acts: ask ``admitting`` for a slot, ``submit`` (idempotent),
or ``cancel`` until the backend object is gone. It never remembers edges: every
call starts from what the API server and the backend say now, so a restart, a
missed event or a duplicate event changes nothing. ``finalize`` is the same
loop for a SimJob being deleted (called by the on.delete handler).
Finished SimJobs are deleted after their tier's ttlSecondsAfterFinished.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.backends.base import Backend, Submitted
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.tiers import TierCache
from simjob_operator.controller.workqueue import AlreadyLogged, Key
from simjob_operator.core.logs import SimJobLogger, simjob_logger
from simjob_operator.core.phases import (
    Action,
    Observation,
    ObservedState,
    Rejection,
    Verdict,
    is_terminal,
    next_phase,
)
from simjob_operator.core.quantities import cpu_cores
from simjob_operator.core.records import SimJobRecord, parse_time
from simjob_operator.core.settings import DEFAULT as SETTINGS
from simjob_operator.core.sightings import Seen, Sighting
from simjob_operator.core.statuses import build_status
from simjob_operator.core.validation import Effective, resolve
from simjob_operator.kube.client import Conflict, Kube

logger = logging.getLogger("simjob_operator.controller.reconciler")
MAX_CONFLICTS = 5


def effective_from_status(record: SimJobRecord) -> Effective | None:
    """What a SimJob was admitted with (its tier may have changed or gone since)."""
    status, spec = record.status, record.spec
    if status.resources is None or status.effective_max_runtime_seconds is None or spec is None:
        return None
    return Effective(
        tier=spec.tier,
        owner=record.owner,
        backend=spec.backend,
        cpu=status.resources.cpu,
        memory=status.resources.memory,
        gpu=status.resources.gpu,
        cpu_cores=cpu_cores(status.resources.cpu),
        max_runtime_seconds=status.effective_max_runtime_seconds,
        max_concurrent_per_owner=1,
        priority_class_name=None,
        ttl_seconds_after_finished=None,
    )


class Reconciler:
    def __init__(
        self,
        *,
        kube: Kube,
        tiers: TierCache,
        recorder: Recorder,
        backends: Mapping[str, Backend],
        request_admission: Callable[[], None],
        slot_freed: Callable[[], None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kube = kube
        self._tiers = tiers
        self._recorder = recorder
        self._backends = backends
        self._request_admission = request_admission
        self._slot_freed = slot_freed
        self._now = now

    # ------------------------------------------------------------------ entry points

    async def process(self, key: Key, sighting: Sighting | None) -> float | None:
        """Reconcile ``key``; returns seconds until it must be looked at again."""
        seen = sighting.backend if sighting is not None else None
        body = sighting.simjob if sighting is not None else None
        if body is not None:
            record = SimJobRecord.from_body(body)
        else:
            fetched = await self._kube.get_simjob(*key)
            if fetched is None:
                return None  # deleted meanwhile
            record = SimJobRecord.from_plain(fetched)
        for _ in range(MAX_CONFLICTS):
            log = simjob_logger(record)
            try:
                return await self._reconcile(record, log, seen)
            except Conflict:
                log.debug("status changed meanwhile; re-reading")
            except Exception as exc:
                log.exception("reconcile failed")
                raise AlreadyLogged(str(exc)) from exc
            fresh = await self._kube.get_simjob(*key)
            if fresh is None:
                return None
            record = SimJobRecord.from_plain(fresh)
        return SETTINGS.timings.stop_poll

    async def finalize(self, body: Mapping[str, Any]) -> bool:
        """The SimJob is being deleted: stop its backend object. True once all is gone."""
        record = SimJobRecord.from_body(body)
        for _ in range(MAX_CONFLICTS):
            log = simjob_logger(record)
            try:
                return await self._finalize(record, log)
            except Conflict:
                log.debug("status changed meanwhile; re-reading")
            fresh = await self._kube.get_simjob(record.namespace, record.name)
            if fresh is None or SimJobRecord.from_plain(fresh).uid != record.uid:
                return True
            record = SimJobRecord.from_plain(fresh)
        return False

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

    def _tier_grace_left(self, record: SimJobRecord, rejection: Rejection) -> float:
        """A SimJob may be applied just before its SimTier: wait briefly before failing."""
        if rejection.reason != Reason.UNKNOWN_TIER:
            return 0.0
        created = parse_time(record.creation_timestamp)
        if created is None:
            return 0.0
        age = (self._now() - created).total_seconds()
        return max(0.0, SETTINGS.timings.unknown_tier_grace - age)

    async def _reconcile(
        self, record: SimJobRecord, log: SimJobLogger, seen: Seen | None
    ) -> float | None:
        if record.deleting:
            return None  # the on.delete handler (finalize) owns it now
        if is_terminal(record.phase):
            return await self._expire(record, log)

        resolution: Effective | Rejection | None = None
        if not record.admitted:
            resolution = await self._resolve(record)
            if isinstance(resolution, Rejection) and not record.cancel:
                wait = self._tier_grace_left(record, resolution)
                if wait > 0:
                    log.info(
                        "SimTier %r not found yet; checking again in %.1f s", record.tier_name, wait
                    )
                    return wait
        backend = self._backend(record)
        observation = await backend.observe(record, seen) if record.admitted else None
        verdict = next_phase(
            record.phase,
            reason=record.status.reason,
            cancel=record.cancel,
            admitted=record.admitted,
            rejection=resolution if isinstance(resolution, Rejection) else None,
            observation=observation,
            max_runtime_seconds=record.status.effective_max_runtime_seconds,
        )
        stored = await self._write(record, verdict, observation, log)
        return await self._act(stored, verdict, backend, resolution, log)

    async def _write(
        self,
        record: SimJobRecord,
        verdict: Verdict,
        observation: Observation | None,
        log: SimJobLogger,
    ) -> SimJobRecord:
        new_status = build_status(
            record.status,
            verdict,
            now=self._now(),
            generation=record.generation,
            owner=record.owner,
            observation=observation,
        )
        stored = await self._recorder.record(record, new_status, verdict, log)
        if verdict.terminal and not is_terminal(record.phase):
            self._slot_freed()  # a slot or a queue position was freed
        return stored

    async def _act(
        self,
        record: SimJobRecord,
        verdict: Verdict,
        backend: Backend,
        resolution: Effective | Rejection | None,
        log: SimJobLogger,
    ) -> float | None:
        if verdict.action == Action.ADMIT:
            self._request_admission()
            return None
        if verdict.action == Action.STOP:
            gone = await backend.cancel(record)
            log.info("stopping %s: %s", backend.backend_id(record), "gone" if gone else "waiting")
            return 0.0 if gone else SETTINGS.timings.stop_poll
        if verdict.action == Action.SUBMIT:
            effective = effective_from_status(record)
            if effective is None and isinstance(resolution, Effective):
                effective = resolution
            if effective is None:
                log.error("admitted without recorded resources; cannot submit")
                return SETTINGS.timings.stop_poll
            result = await backend.submit(record, effective)
            log.bind(backend_id=result.backend_id).info(
                "submit: %s (%s)", result.outcome, result.message
            )
            if result.outcome == Submitted.BLOCKED:
                return SETTINGS.timings.stop_poll
            return None
        if verdict.terminal:
            return await self._expire(record, log)
        return None

    async def _finalize(self, record: SimJobRecord, log: SimJobLogger) -> bool:
        backend = self._backend(record)
        if is_terminal(record.phase):
            # Nothing runs and the slot is free: ask once, do not wait for pods'
            # grace periods (the owner reference garbage-collects the rest).
            await backend.cancel(record)
            log.info("deleted; removing %s in the background", backend.backend_id(record))
            return True
        observation = await backend.observe(record)
        exists = observation.state != ObservedState.ABSENT
        verdict = next_phase(
            record.phase,
            reason=record.status.reason,
            cancel=record.cancel,
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
        self._slot_freed()
        return True

    async def _expire(self, record: SimJobRecord, log: SimJobLogger) -> float | None:
        """Delete a finished SimJob once its tier's ttlSecondsAfterFinished has passed."""
        finished = parse_time(record.status.completion_time)
        if finished is None:
            return None
        tier, _error = await self._tiers.get(record.tier_name)
        if tier is None or tier.ttl_seconds_after_finished is None:
            return None
        left = tier.ttl_seconds_after_finished - (self._now() - finished).total_seconds()
        if left > 0:
            return left
        log.info(
            "deleting: finished %.0f s ago (ttlSecondsAfterFinished %d)",
            tier.ttl_seconds_after_finished - left,
            tier.ttl_seconds_after_finished,
        )
        await self._kube.delete_simjob(record.namespace, record.name, uid=record.uid)
        return None
