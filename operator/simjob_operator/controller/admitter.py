"""The admission worker: one per process, deciding slots from the SimJob cache.

``trigger()`` asks for a pass (triggers while a pass is queued coalesce). A pass
reads the ``controller.cache.SimJobCache`` (seeded by one LIST at start, then kept
by watch events and write-through) and decides only the slot keys (owner, tier) that
changed since the last pass: ``core.slots.decide`` picks who starts (a SimJob still
waiting for kopf's finalizer keeps its place and is decided once the finalizer is
there: no write races that patch) and the verdicts are recorded
(``core.phases.next_phase`` with the decision): Admitted=True and the ``Grant`` for
the chosen, Queued/WaitingForSlot for the rest. Passes run one at a time, so two
events can never hand out the same slot; every write carries a resourceVersion
precondition, so a decision made on a stale body fails (409): the body is re-read
and its slot decided again.

Queue positions cost no write storm (Kueue serves them on request for the same
reason): a waiting SimJob's position is written when it enters the queue and once
more when it reaches the head (``Limits.queue_head`` places); in between the
written position only grows stale, never wrong in direction, and the exact one is
served on request (``simjob get`` in the SDK computes it from the same order). So a
SimJob costs at most two queue writes whatever the backlog. While anything waits, a
pass also revisits the waiting slots every ``admission_resync`` seconds (a missed
event heals).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.status import ReusedFrom
from simjob_operator.backends.base import Backend
from simjob_operator.controller.cache import SimJobCache
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.tiers import TierCache
from simjob_operator.core.logs import simjob_logger
from simjob_operator.core.phases import (
    Admission,
    AdmissionState,
    Rejection,
    is_terminal,
    next_phase,
)
from simjob_operator.core.runkeys import Forbid, Replace, Reuse, Superseded, decide_run_key
from simjob_operator.core.settings import DEFAULT as SETTINGS
from simjob_operator.core.settings import Settings
from simjob_operator.core.slots import SlotKey, decide
from simjob_operator.core.statuses import build_status
from simjob_operator.core.validation import Effective, resolve
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import Conflict, Gone, KubeApi, Unavailable

logger = logging.getLogger("simjob_operator.controller.admitter")


def worth_writing(record: SimJobRecord, decision: Admission, head: int) -> bool:
    """Whether a decision changes what the SimJob must show: always for a slot; for a
    waiting SimJob only when it enters the queue or reaches the head. Pure."""
    if decision.state == AdmissionState.ADMITTED:
        return True
    if record.status.reason != Reason.WAITING_FOR_SLOT:
        return True  # it enters the queue (or comes back to it)
    written = record.status.queue_position
    position = decision.position
    if position is None or position > head:
        return False
    return written is None or written > head


class Admitter:
    def __init__(
        self,
        *,
        kube: KubeApi,
        cache: SimJobCache,
        tiers: TierCache,
        recorder: Recorder,
        backends: Mapping[str, Backend],
        on_admitted: Callable[[SimJobRecord], None],
        settings: Settings = SETTINGS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kube = kube
        self._cache = cache
        self._tiers = tiers
        self._recorder = recorder
        self._backends = backends
        self._on_admitted = on_admitted
        self._resync = settings.timings.admission_resync
        self._head = settings.limits.queue_head
        self._now = now
        self._queue: asyncio.Queue[bool] = asyncio.Queue()  # True: run a pass; False: stop
        self._queued = False
        self._passing = False
        self._waiting: set[SlotKey] = set()  # slot keys the last passes left with waiters
        # Resolutions of waiting SimJobs, by uid: (generation, Effective or None).
        self._resolved: dict[str, tuple[int, Effective | None]] = {}
        self.passes = 0
        self.writes = 0  # status writes of admission (tests and benchmarks read it)

    def trigger(self) -> None:
        if not self._queued:
            self._queued = True
            self._queue.put_nowait(True)

    def slot_freed(self) -> None:
        """A SimJob finished or stopped waiting (its slot key is dirty in the cache):
        decide again if that can matter (someone waits, or a pass is under way)."""
        if self._waiting or self._passing:
            self.trigger()

    def tier_changed(self) -> None:
        """A SimTier was added, changed or deleted: decide every slot key again."""
        self._resolved.clear()
        self._cache.mark_dirty()
        self.trigger()

    def stop(self) -> None:
        self._queue.put_nowait(False)

    async def run(self) -> None:
        while True:
            timeout = self._resync if self._waiting else None
            try:
                go = await asyncio.wait_for(self._queue.get(), timeout=timeout)
            except TimeoutError:
                self._cache.mark_dirty(self._waiting)  # heal a missed event
                go = True
            if not go:
                return
            self._queued = False
            self._passing = True
            try:
                await self.run_pass()
            except Unavailable as exc:  # the API server is away: one line, no traceback
                logger.warning("admission pass: %s; retrying in %.0f s", exc, self._resync)
                self._cache.mark_dirty()
                await asyncio.sleep(self._resync)
                self.trigger()
            except Exception:
                logger.exception("admission pass failed; retrying in %.0f s", self._resync)
                self._cache.mark_dirty()
                await asyncio.sleep(self._resync)
                self.trigger()
            finally:
                self._passing = False

    async def run_pass(self) -> bool:
        """Decide the slot keys that changed; returns whether anything still waits."""
        self.passes += 1
        if not self._cache.seeded:
            self._cache.seed(await self._kube.list_simjobs())  # once per start
            self._cache.mark_dirty()
        for slot in sorted(self._cache.take_dirty()):
            if await self._decide_slot(slot):
                self._waiting.add(slot)
            else:
                self._waiting.discard(slot)
        return bool(self._waiting)

    async def _effective(self, record: SimJobRecord) -> Effective | None:
        cached = self._resolved.get(record.uid)
        if cached is not None and cached[0] == record.generation:
            return cached[1]
        tier, _error = await self._tiers.get(record.tier_name)
        resolved = resolve(
            record.spec,
            namespace=record.namespace,
            tier_name=record.tier_name,
            tier=tier,
            spec_error=record.spec_error,
            slurm_available=c.BACKEND_SLURM in self._backends,
        )
        usable = isinstance(resolved, Effective) and resolved.backend in self._backends
        effective = resolved if usable and isinstance(resolved, Effective) else None
        self._resolved[record.uid] = (record.generation, effective)
        return effective

    async def _decide_slot(self, slot: SlotKey) -> bool:
        """One slot key; returns whether SimJobs of it still wait."""
        tier, _error = await self._tiers.get(slot.tier)
        if tier is None:
            return False  # the reconciler fails its SimJobs (UnknownTier)
        records = self._cache.in_slot(slot)
        effective: dict[str, Effective] = {}
        for record in records:
            if record.admitted or is_terminal(record.phase) or record.deleting or record.cancel:
                self._resolved.pop(record.uid, None)
                continue
            resolved = await self._effective(record)
            if resolved is not None and await self._run_key_allows(record):
                effective[record.uid] = resolved
        decisions = decide(
            records,
            capacity={slot.tier: tier.max_concurrent_per_owner},
            eligible=lambda record: record.uid in effective,
            settled=lambda record: c.FINALIZER in record.finalizers,
        )
        by_uid = {record.uid: record for record in records}
        wanted = {
            uid: decision
            for uid, decision in decisions.items()
            if worth_writing(by_uid[uid], decision, self._head)
        }
        results = await asyncio.gather(
            *(
                self._apply(by_uid[uid], decision, effective[uid])
                for uid, decision in wanted.items()
            ),
            return_exceptions=True,
        )
        for uid, result in zip(wanted, results, strict=True):
            if isinstance(result, Conflict):
                await self._refresh(by_uid[uid])  # decided on a stale body: read it again
            elif isinstance(result, Gone):
                continue  # deleted meanwhile; its DELETED event frees the key
            elif isinstance(result, Unavailable):
                simjob_logger(by_uid[uid]).warning("admission write failed: %s", result)
                self._cache.mark_dirty([slot])
                self.trigger()
            elif isinstance(result, BaseException):
                simjob_logger(by_uid[uid]).error("admission write failed", exc_info=result)
                self._cache.mark_dirty([slot])
                self.trigger()
        undecided = any(uid not in decisions for uid in effective)  # behind an unsettled one
        return undecided or any(d.state == AdmissionState.WAITING for d in decisions.values())

    async def _run_key_allows(self, record: SimJobRecord) -> bool:
        """Apply ``record``'s runKey policy (``core.runkeys``); False when it ended here
        (reused, or refused as a run in progress) and takes no slot."""
        run_key = record.spec.run_key if record.spec is not None else None
        if run_key is None or not self._cache.seeded:
            return True
        decision = decide_run_key(
            record, self._cache.with_run_key(record.namespace, run_key), now=self._now()
        )
        if isinstance(decision, Replace):
            for older in decision.older:
                simjob_logger(older).info(
                    "replaced by the newer run %s of runKey %r: cancelling", record.name, run_key
                )
                await self._kube.cancel_simjob(
                    older.namespace, older.name, uid=older.uid, replaced_by=record.name
                )
            return True
        if isinstance(decision, Superseded):
            simjob_logger(record).info(
                "replaced by the newer run %s of runKey %r before it started",
                decision.newer.name,
                run_key,
            )
            await self._kube.cancel_simjob(
                record.namespace, record.name, uid=record.uid, replaced_by=decision.newer.name
            )
            return False
        if decision is None:
            return True
        try:
            await self._end_early(record, decision)
        except Conflict:
            await self._refresh(record)
        return False

    async def _end_early(self, record: SimJobRecord, decision: Reuse | Forbid) -> None:
        if isinstance(decision, Reuse):
            source = decision.source
            reused = source.status.reused_from or ReusedFrom(
                name=source.name, uid=source.uid, workspace=source.status.workspace
            )
            verdict = next_phase(record.phase, reason=record.status.reason, reused=reused.name)
        else:
            run_key = record.spec.run_key if record.spec is not None else None
            message = (
                f"SimJob {decision.running.name} of runKey {run_key!r} is still unfinished "
                "and concurrencyPolicy is Forbid"
            )
            verdict = next_phase(
                record.phase,
                reason=record.status.reason,
                rejection=Rejection(Reason.RUN_IN_PROGRESS, message),
            )
            reused = None
        status = build_status(
            record.status,
            verdict,
            now=self._now(),
            generation=record.generation,
            owner=record.owner,
        )
        if reused is not None:
            status.reused_from = reused
            status.workspace = reused.workspace
        await self._recorder.record(record, status, verdict, simjob_logger(record))
        self.writes += 1

    async def _refresh(self, record: SimJobRecord) -> None:
        body = await self._kube.get_simjob(record.namespace, record.name)
        if body is None:
            self._cache.forget(record.key)
        else:
            self._cache.observe(body)
        self.trigger()

    async def _apply(self, record: SimJobRecord, decision: Admission, effective: Effective) -> None:
        backend = self._backends[effective.backend]
        verdict = next_phase(
            record.phase,
            reason=record.status.reason,
            cancel=record.cancel,
            admitted=False,
            admission=decision,
        )
        admitted = decision.state == AdmissionState.ADMITTED
        new_status = build_status(
            record.status,
            verdict,
            now=self._now(),
            generation=record.generation,
            owner=record.owner,
            grant=effective.grant,
            backend_ref=backend.planned_ref(record) if admitted else None,
            workspace=backend.planned_workspace(record, effective.grant) if admitted else None,
        )
        stored = await self._recorder.record(record, new_status, verdict, simjob_logger(record))
        self.writes += 1
        if verdict.admitted_now and stored.admitted:
            self._resolved.pop(record.uid, None)
            self._on_admitted(stored)
