"""The admission worker: one per process, deciding slots over a fresh LIST.

``trigger()`` asks for a pass (triggers while a pass is queued coalesce). A
pass LISTs every SimJob from the API server (never a cache), resolves each
waiting one against its tier (``validation``), lets ``admission.decide`` pick
who starts (a SimJob still waiting for kopf's finalizer keeps its place and is
decided once the finalizer is there: no write races that patch), and records
the verdicts (``phases.next_phase`` with the decision): Admitted=True for the
chosen, Queued/WaitingForSlot with a position for the rest. Passes run one at a
time, so two events can never hand out the same slot; every write carries a
resourceVersion precondition, so a decision made on a stale read fails (409)
and triggers a new pass. Admitted SimJobs are handed to the reconcile queue at
once (``on_admitted``). While anything waits, a pass also runs every
``ADMISSION_RESYNC_SECONDS`` (a missed event heals). A SimJob that let go of a
slot or a queue position (``slot_freed``) asks for a pass only when one could
change something: the last pass left SimJobs waiting, or a pass is under way
(its LIST may predate the release); a SimJob nobody has decided about yet asks
for its own pass through ``trigger``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from simjob_operator.api import names as c
from simjob_operator.api.simtier import SimTierSpec
from simjob_operator.backends.base import Backend
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.tiers import TierCache
from simjob_operator.core.logs import simjob_logger
from simjob_operator.core.phases import Admission, AdmissionState, is_terminal, next_phase
from simjob_operator.core.records import SimJobRecord
from simjob_operator.core.settings import DEFAULT as SETTINGS
from simjob_operator.core.settings import Timings
from simjob_operator.core.slots import decide
from simjob_operator.core.statuses import build_status
from simjob_operator.core.validation import Effective, resolve
from simjob_operator.kube.seam import Conflict, KubeApi

logger = logging.getLogger("simjob_operator.controller.admitter")


class Admitter:
    def __init__(
        self,
        *,
        kube: KubeApi,
        tiers: TierCache,
        recorder: Recorder,
        backends: Mapping[str, Backend],
        on_admitted: Callable[[SimJobRecord], None],
        timings: Timings = SETTINGS.timings,
    ) -> None:
        self._kube = kube
        self._tiers = tiers
        self._recorder = recorder
        self._backends = backends
        self._on_admitted = on_admitted
        self._resync = timings.admission_resync
        self._queue: asyncio.Queue[bool] = asyncio.Queue()  # True: run a pass; False: stop
        self._queued = False
        self._passing = False  # a pass is under way
        self._waiters = True  # the last pass left SimJobs waiting (unknown: assume so)
        self.passes = 0

    def trigger(self) -> None:
        if not self._queued:
            self._queued = True
            self._queue.put_nowait(True)

    def slot_freed(self) -> None:
        """A SimJob finished, or stopped waiting: decide again if that can matter."""
        if self._waiters or self._passing:
            self.trigger()

    def stop(self) -> None:
        self._queue.put_nowait(False)

    async def run(self) -> None:
        anything_waits = True  # after a start, look once more after the resync delay
        while True:
            timeout = self._resync if anything_waits else None
            try:
                go = await asyncio.wait_for(self._queue.get(), timeout=timeout)
            except TimeoutError:
                go = True
            if not go:
                return
            self._queued = False
            self._passing = True
            try:
                anything_waits = await self.run_pass()
            except Exception:
                logger.exception("admission pass failed; retrying in %.0f s", self._resync)
                anything_waits = True
            finally:
                self._passing = False
            self._waiters = anything_waits

    async def _tier_specs(self, records: list[SimJobRecord]) -> dict[str, SimTierSpec]:
        names = {
            r.tier_name
            for r in records
            if r.tier_name and not r.admitted and not is_terminal(r.phase)
        }
        specs: dict[str, SimTierSpec] = {}
        for name in sorted(n for n in names if n):
            spec, _error = await self._tiers.get(name)
            if spec is not None:
                specs[name] = spec
        return specs

    async def run_pass(self) -> bool:
        """One decision over the whole cluster; returns whether anything still waits."""
        self.passes += 1
        records = [SimJobRecord.from_plain(body) for body in await self._kube.list_simjobs()]
        specs = await self._tier_specs(records)
        effective: dict[str, Effective] = {}
        for record in records:
            if record.admitted or is_terminal(record.phase) or record.deleting or record.cancel:
                continue
            tier = specs.get(record.tier_name or "")
            if tier is None:
                continue
            resolved = resolve(
                record.spec,
                namespace=record.namespace,
                tier_name=record.tier_name,
                tier=tier,
                spec_error=record.spec_error,
                slurm_available=c.BACKEND_SLURM in self._backends,
            )
            if isinstance(resolved, Effective) and resolved.backend in self._backends:
                effective[record.uid] = resolved
        decisions = decide(
            records,
            capacity={name: spec.max_concurrent_per_owner for name, spec in specs.items()},
            eligible=lambda record: record.uid in effective,
            settled=lambda record: c.FINALIZER in record.finalizers,
        )
        by_uid = {record.uid: record for record in records}
        results = await asyncio.gather(
            *(
                self._apply(by_uid[uid], decision, effective[uid])
                for uid, decision in decisions.items()
            ),
            return_exceptions=True,
        )
        for uid, result in zip(decisions, results, strict=True):
            if isinstance(result, Conflict):
                self.trigger()  # decided on a stale read: decide again from a fresh LIST
            elif isinstance(result, BaseException):
                simjob_logger(by_uid[uid]).error("admission write failed", exc_info=result)
                self.trigger()
        undecided = any(uid not in decisions for uid in effective)  # behind an unsettled one
        return undecided or any(d.state == AdmissionState.WAITING for d in decisions.values())

    async def _apply(self, record: SimJobRecord, decision: Admission, effective: Effective) -> None:
        backend = self._backends[effective.backend]
        verdict = next_phase(
            record.phase,
            reason=record.status.reason,
            cancel=record.cancel,
            admitted=False,
            admission=decision,
        )
        new_status = build_status(
            record.status,
            verdict,
            now=datetime.now(UTC),
            generation=record.generation,
            owner=record.owner,
            grant=effective.grant,
            backend_ref=backend.planned_ref(record),
        )
        stored = await self._recorder.record(record, new_status, verdict, simjob_logger(record))
        if verdict.admitted_now and stored.admitted:
            self._on_admitted(stored)
