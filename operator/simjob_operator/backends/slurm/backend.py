"""The Slurm backend: one Slurm job per SimJob, on the SlurmCluster it names.

``submit`` looks the SimJob's marker up first (``SlurmClient.find``) and adopts a job
an earlier run of the operator submitted (a kill -9 between sbatch and the status
write), else builds the job (``slurm_jobs.job_spec``) and runs sbatch; the job id is
written into ``status.backendRef`` ({kind: SlurmJob, id, cluster}) right after. An
sbatch that failed with ``SlurmUnavailable`` may still have created the job: the
retry's ``find`` adopts it, so nothing is submitted twice. ``observe`` reads the job's
state from the SlurmCluster's ``slurm_polling.ClusterPoller`` (one batched query per
interval for all jobs) and maps it with ``slurm_jobs.interpret``; a failed job's
message carries the tail of its output. ``cancel`` runs scancel until Slurm confirms
the job ended (its real end: a job that completed first stays Succeeded).

Errors: Slurm unreachable (``SlurmUnavailable``) propagates — the reconciler keeps
the phase and retries with backoff — and marks the SlurmCluster ``Reachable=False``.
What no retry fixes before anything was submitted ends the SimJob Failed with a
reason: ``UnknownSlurmCluster``, ``InvalidSlurmCredentials`` (Secrets), ``SlurmRejected``
(sbatch refused), ``InvalidSpec`` (values sbatch cannot take safely), after a grace of
``UNKNOWN_TIER_GRACE_SECONDS`` for objects applied in the wrong order. Once a job
exists it is never abandoned silently. ``run`` is the backend's task
(``slurm_pollers``): it re-lists the SlurmClusters, runs one poller per cluster and, at
start, tracks the jobs of every unfinished SimJob (one LIST). Neighbours:
``slurm_sites``, ``slurm_polling``, ``slurm_pollers``, ``slurm_jobs``, ``slurm_api``;
wired in by ``runtime``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import BackendRef, SimJobSlurmSpec
from simjob_operator.backends.base import SubmitResult, Submitted
from simjob_operator.backends.slurm.api import SlurmApi
from simjob_operator.backends.slurm.jobs import (
    failure_message,
    interpret,
    job_id_of,
    job_spec,
    login_of,
    marker,
)
from simjob_operator.backends.slurm.poller import ClusterPoller
from simjob_operator.backends.slurm.sites import Site, SiteError, Sites
from simjob_operator.backends.slurm.supervisor import Pollers
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.tiers import TierCache
from simjob_operator.controller.workqueue import Key
from simjob_operator.core.logs import SimJobLogger, simjob_logger
from simjob_operator.core.phases import (
    Observation,
    ObservedState,
    Phase,
    Rejection,
    Verdict,
    is_terminal,
)
from simjob_operator.core.records import SimJobRecord, parse_time
from simjob_operator.core.settings import DEFAULT as SETTINGS
from simjob_operator.core.sightings import Seen
from simjob_operator.core.validation import Effective
from simjob_operator.kube.client import Conflict, Gone, Kube
from slurm_bridge import (
    InvalidJobSpec,
    JobKind,
    SlurmClient,
    SlurmRejected,
    SlurmUnavailable,
)

logger = logging.getLogger("simjob_operator.slurm")
MAX_ID_WRITES = 5
UNWANTED_CANCEL_ATTEMPTS = 4  # scancel of a job whose SimJob went away (1+2+4 s apart)


def stopping(record: SimJobRecord) -> bool:
    """We asked (or are asking) Slurm to stop this SimJob's job."""
    stop_reasons = (Reason.CANCEL_REQUESTED, Reason.DELETED)
    return record.cancel or record.deleting or record.status.reason in stop_reasons


class SlurmBackend:
    kind = c.SLURM_JOB_KIND

    def __init__(
        self,
        kube: Kube,
        tiers: TierCache,
        recorder: Recorder,
        *,
        enqueue: Callable[[Key], None],
        requeue: Callable[[Key, float], None],
        api: SlurmApi | None = None,
        sites: Sites | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kube = kube
        self._tiers = tiers
        self._recorder = recorder
        self._enqueue = enqueue
        self._requeue = requeue
        self._api = api if api is not None else SlurmApi(kube)
        self.sites = sites if sites is not None else Sites(self._api)
        self._now = now
        self._pollers = Pollers(kube, self._api, self.sites, enqueue)
        # Refusals no retry fixes, found while submitting; the next observe reports them.
        self._rejections: dict[str, Rejection] = {}
        self._tails: dict[str, str] = {}

    def backend_id(self, record: SimJobRecord) -> str:
        return job_id_of(record) or marker(record.uid)

    # ------------------------------------------------------------------ the task

    @property
    def pollers(self) -> dict[str, ClusterPoller]:
        """The poller of each SlurmCluster, by name."""
        return self._pollers.by_name

    async def run(self) -> None:
        """Pollers, the SlurmCluster resync and the start-up tracking, until ``stop``."""
        await self._pollers.run()

    def stop(self) -> None:
        self._pollers.stop()

    def poller(self, site: Site) -> ClusterPoller:
        """The poller of ``site`` (created and started on first use)."""
        return self._pollers.of(site)

    # ------------------------------------------------------------------ Backend

    async def _connect(
        self, record: SimJobRecord, slurm: SimJobSlurmSpec
    ) -> tuple[Site, ClusterPoller, SlurmClient]:
        site = await self.sites.get(slurm.cluster)
        if site is None:
            raise SiteError(
                Reason.UNKNOWN_SLURM_CLUSTER, f"SlurmCluster {slurm.cluster!r} does not exist"
            )
        poller = self.poller(site)
        client = await self.sites.client(site, login_of(record))
        return site, poller, client

    def _grace_left(self, record: SimJobRecord) -> float:
        created = parse_time(record.creation_timestamp)
        if created is None:
            return 0.0
        age = (self._now() - created).total_seconds()
        return max(0.0, SETTINGS.timings.unknown_tier_grace - age)

    def _unusable(
        self, record: SimJobRecord, job_id: str | None, error: SiteError, log: SimJobLogger
    ) -> Observation:
        if job_id is None:
            if stopping(record):
                return Observation(ObservedState.ABSENT)  # nothing reachable was submitted
            wait = self._grace_left(record)
            if wait > 0:  # the SlurmCluster or Secret may be applied a moment later
                log.info("%s; checking again in %.1f s", error.message, wait)
                self._requeue(record.key, wait)
                return Observation(ObservedState.PENDING, reason=Reason.STARTING)
            return Observation(ObservedState.FAILED, reason=error.reason, message=error.message)
        if stopping(record) and error.reason == Reason.UNKNOWN_SLURM_CLUSTER:
            log.error("cannot cancel Slurm job %s: %s; it may still run", job_id, error.message)
            return Observation(ObservedState.ABSENT)
        raise error  # a job exists: keep the phase and retry (a Secret may come back)

    async def observe(self, record: SimJobRecord, seen: Seen | None = None) -> Observation:
        slurm = record.spec.slurm if record.spec is not None else None
        if slurm is None:
            return Observation(
                ObservedState.FAILED,
                reason=Reason.INVALID_SPEC,
                message="spec.slurm.cluster is required for backend slurm",
            )
        log = simjob_logger(record)
        job_id = job_id_of(record)
        rejection = self._rejections.pop(record.uid, None)
        if rejection is not None and job_id is None:
            return Observation(
                ObservedState.FAILED, reason=rejection.reason, message=rejection.message
            )
        try:
            site, poller, client = await self._connect(record, slurm)
        except SiteError as error:
            return self._unusable(record, job_id, error, log)
        if job_id is None:
            if not stopping(record):
                return Observation(ObservedState.ABSENT)  # submit finds before it submits
            job_id = await self._find(record, poller, client)
            if job_id is None:
                return Observation(ObservedState.ABSENT)
        state = await poller.state(login_of(record), job_id, record.key)
        observation = interpret(state, stopping=stopping(record), cluster=site.name)
        if observation.state == ObservedState.FAILED and state.kind is JobKind.FAILED:
            tail = await self._tail(client, job_id, log)
            observation = dataclasses.replace(observation, message=failure_message(state, tail))
        return observation

    async def submit(self, record: SimJobRecord, effective: Effective) -> SubmitResult:
        slurm = record.spec.slurm if record.spec is not None else None
        name = marker(record.uid)
        if record.spec is None or slurm is None:
            return SubmitResult(Submitted.BLOCKED, name, "spec.slurm is missing")
        log = simjob_logger(record, backend_id=name)
        try:
            site, poller, client = await self._connect(record, slurm)
        except SiteError as error:
            self._rejections[record.uid] = Rejection(error.reason, error.message)
            return SubmitResult(Submitted.BLOCKED, name, error.message)
        job_id = await self._find(record, poller, client)
        outcome = Submitted.ADOPTED
        if job_id is None:
            tier, _error = await self._tiers.get(record.spec.tier)
            try:
                job = job_spec(
                    namespace=record.namespace,
                    name=record.name,
                    uid=record.uid,
                    spec=record.spec,
                    slurm=slurm,
                    effective=effective,
                    tier_slurm=tier.slurm if tier is not None else None,
                )
            except InvalidJobSpec as exc:
                self._rejections[record.uid] = Rejection(Reason.INVALID_SPEC, str(exc))
                return SubmitResult(Submitted.BLOCKED, name, str(exc))
            try:
                job_id = await client.submit(job)
            except SlurmRejected as exc:
                poller.report(True, "")
                message = f"sbatch refused the job on {site.name}: {exc.message}"
                self._rejections[record.uid] = Rejection(Reason.SLURM_REJECTED, message)
                return SubmitResult(Submitted.BLOCKED, name, message)
            except SlurmUnavailable as exc:
                # Ambiguous: the job may exist. The retry's find() adopts it.
                poller.report(False, exc.message)
                raise
            _crash_hook(record, job_id)
            outcome = Submitted.CREATED
        poller.report(True, "")
        job_log = log.bind(backend_id=job_id)
        if not await self._record_job(record, job_id, site.name, job_log):
            # Cancelled or deleted while sbatch ran: nobody else would stop this job.
            await self._cancel_unwanted(client, poller, job_id, job_log)
            message = f"Slurm job {job_id} on {site.name} is no longer wanted; cancelled it"
            return SubmitResult(Submitted.BLOCKED, job_id, message)
        poller.track(login_of(record), job_id, record.key)
        poller.poll_soon()
        verb = "submitted" if outcome == Submitted.CREATED else "adopted"
        return SubmitResult(outcome, job_id, f"{verb} Slurm job {job_id} on {site.name}")

    async def cancel(self, record: SimJobRecord) -> bool:
        slurm = record.spec.slurm if record.spec is not None else None
        job_id = job_id_of(record)
        if is_terminal(record.phase) or slurm is None:
            self._rejections.pop(record.uid, None)
            return True  # its job has ended (or never existed)
        log = simjob_logger(record)
        try:
            _site, poller, client = await self._connect(record, slurm)
        except SiteError as error:
            self._unusable(record, job_id, error, log)  # raises while a job may live
            return True
        if job_id is None:
            job_id = await self._find(record, poller, client)
            if job_id is None:
                return True
        try:
            state = await client.cancel(job_id)
        except SlurmUnavailable as exc:
            poller.report(False, exc.message)
            raise
        poller.report(True, "")
        poller.record(job_id, state)
        log.bind(backend_id=job_id).info("scancel: Slurm reports %s", state.state)
        return state.finished or state.kind is JobKind.MISSING

    # ------------------------------------------------------------------ helpers

    async def _find(
        self, record: SimJobRecord, poller: ClusterPoller, client: SlurmClient
    ) -> str | None:
        try:
            found = await client.find(marker(record.uid))
        except SlurmUnavailable as exc:
            poller.report(False, exc.message)
            raise
        poller.report(True, "")
        return found

    async def _tail(self, client: SlurmClient, job_id: str, log: SimJobLogger) -> str:
        if job_id in self._tails:
            return self._tails[job_id]
        try:
            tail = await client.output_tail(job_id)
        except SlurmUnavailable as exc:
            log.warning("could not read the output of Slurm job %s: %s", job_id, exc.message)
            return ""
        if len(self._tails) > 1000:
            self._tails.clear()
        self._tails[job_id] = tail
        return tail

    async def _record_job(
        self, record: SimJobRecord, job_id: str, cluster: str, log: SimJobLogger
    ) -> bool:
        """status.backendRef = the Slurm job (with the usual precondition; on a conflict,
        re-read and write again). False when the job is no longer wanted: the SimJob
        was deleted, replaced (another uid) or ended (e.g. Cancelled) while sbatch ran,
        so that nothing would ever track or stop the job."""
        ref = BackendRef(kind=c.SLURM_JOB_KIND, id=job_id, cluster=cluster)
        current = record
        for _ in range(MAX_ID_WRITES):
            if current.status.backend_ref == ref:
                return True
            status = current.status.model_copy(deep=True)
            status.backend_ref = ref
            verdict = Verdict(phase=current.phase or Phase.PENDING, reason=None, message=None)
            try:
                await self._recorder.record(current, status, verdict, log)
            except Gone:
                return False
            except Conflict:
                fresh = await self._kube.get_simjob(record.namespace, record.name)
                if fresh is None:
                    return False
                current = SimJobRecord.from_body(fresh)
                if current.uid != record.uid or is_terminal(current.phase):
                    return False
                continue
            log.info("recorded Slurm job %s on %s", job_id, cluster)
            return True
        log.warning("could not record Slurm job %s (conflicts); find() adopts it", job_id)
        return True

    async def _cancel_unwanted(
        self, client: SlurmClient, poller: ClusterPoller, job_id: str, log: SimJobLogger
    ) -> None:
        """scancel a job whose SimJob went away while sbatch ran, retrying a few times
        while Slurm is unreachable; what is left is logged with the job id."""
        delay = 1.0
        for attempt in range(1, UNWANTED_CANCEL_ATTEMPTS + 1):
            try:
                state = await client.cancel(job_id)
            except SlurmUnavailable as exc:
                poller.report(False, exc.message)
                if attempt == UNWANTED_CANCEL_ATTEMPTS:
                    log.exception(
                        "Slurm job %s outlived its SimJob and scancel failed %d times (%s); "
                        "cancel it by hand: scancel %s",
                        job_id,
                        attempt,
                        exc.message,
                        job_id,
                    )
                    return
                await asyncio.sleep(delay)
                delay *= 2
                continue
            poller.report(True, "")
            log.warning(
                "the SimJob was cancelled or deleted while sbatch ran; scancel of Slurm "
                "job %s: Slurm reports %s",
                job_id,
                state.state,
            )
            return


def _crash_hook(record: SimJobRecord, job_id: str) -> None:
    """Test hook: die like a kill -9 between sbatch and the status write."""
    who = f"{record.namespace}/{record.name}"
    if os.environ.get(c.ENV_CRASH_AFTER_SBATCH) == who:
        os.write(2, f"{c.ENV_CRASH_AFTER_SBATCH}={who}: exiting after sbatch ({job_id})\n".encode())
        os._exit(137)
