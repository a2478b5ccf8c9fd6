"""The Slurm backend: one Slurm job per SimJob, on the SlurmCluster it names.

An adapter behind ``backends.base.Backend``: it returns results and observations and
never writes a SimJob's status. ``submit`` looks the SimJob's marker up first
(``SlurmClient.find``) and adopts a job an earlier run of the operator submitted (a
kill -9 between sbatch and the reconciler's status write), else builds the job from
the SimJob and its ``Grant`` (``jobs.job_spec``) and runs sbatch; it returns
``Submitted`` with the job's ``BackendRef`` ({kind: SlurmJob, id, cluster}), which the
reconciler records. An sbatch that failed with ``SlurmUnavailable`` may still have
created the job: the retry's ``find`` adopts it, so nothing is submitted twice.
``observe`` reads the job's state from the SlurmCluster's ``poller.ClusterPoller``
(one batched query per interval for all jobs) and maps it with ``jobs.interpret``; a
failed job's message carries the tail of its output. ``cancel`` runs scancel until
Slurm confirms the job ended (its real end: a job that completed first stays
Succeeded); given a record whose status.backendRef holds a job id it cancels that job
(the reconciler uses this for a job whose SimJob went away while sbatch ran).
Before sbatch, ``submit`` prepares the run directory (``rundir``: the inputs read from
ConfigMaps and Secrets, ``outputs/``) and the job runs in it; ``Submitted`` carries it
as the workspace. ``observe`` has ``progress`` follow the batch output of a running job
(one command per cluster and interval for all of them); the failure tail is read there.

Errors: Slurm unreachable raises ``backends.base.BackendUnavailable`` (the reconciler
keeps the phase and retries with backoff); the SlurmCluster's ``Reachable`` condition is
set by the clients themselves (``reachability``). What no retry fixes before anything
was submitted is ``Rejected`` with a reason: ``UnknownSlurmCluster``,
``InvalidSlurmCredentials`` (Secrets), ``InvalidInputs``/``InputNotFound``
(``spec.inputs``: a missing one is waited for up to maxPendingSeconds, ``rundir``),
``SlurmRejected`` (sbatch refused), ``SlurmUnsatisfiable`` (no node of the partition can
ever run it, e.g. more GPUs than any node has), ``InvalidSpec`` (values sbatch cannot
take safely); a missing SlurmCluster or credentials Secret gets a short grace
(``RetryAfter``) for objects applied in the wrong order. Once a job exists it is never
abandoned silently. ``run`` is the backend's task (``supervisor``): it re-lists the
SlurmClusters, runs one poller per cluster and, at start, tracks the jobs of every
unfinished SimJob (one LIST); a poll that sees a job change calls ``notify`` with its
SimJob's key. A job's comment names this Kubernetes cluster
(``measures.ClusterIdentity``) so that this operator's orphan sweep (``sweep``), and no
other, may cancel it; ``measures.Annotator`` adds a finished job's usage from
accounting, or an unfinished one's expired SSH certificate (``certificates``). A SimJob
with an image runs in the SlurmCluster's container runtime (``containers``). Neighbours:
``sites``, ``credentials``, ``poller``, ``supervisor``, ``reachability``, ``jobs``,
``measures``, ``sweep``, ``containers``; wired in by ``controller.runtime``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from simjob_operator.api import names as c
from simjob_operator.api.data import WorkspaceStatus
from simjob_operator.api.reasons import STOP_REASONS, Reason
from simjob_operator.api.simjob import BackendRef, Grant, SimJobSlurmSpec
from simjob_operator.backends.base import (
    BackendUnavailable,
    Rejected,
    RetryAfter,
    SubmitResult,
    Submitted,
)
from simjob_operator.backends.slurm.containers import image_ignored, in_container
from simjob_operator.backends.slurm.jobs import (
    failure_message,
    interpret,
    job_id_of,
    job_spec,
    login_of,
    marker,
)
from simjob_operator.backends.slurm.measures import Annotator, ClusterIdentity
from simjob_operator.backends.slurm.poller import ClusterPoller, Key
from simjob_operator.backends.slurm.progress import SlurmProgress
from simjob_operator.backends.slurm.rundir import (
    in_run_dir,
    input_wait,
    place_of,
    prepare_run_dir,
    run_dir_in,
    run_dir_of,
    workspace,
)
from simjob_operator.backends.slurm.sites import Site, SiteError, Sites
from simjob_operator.backends.slurm.supervisor import Pollers
from simjob_operator.backends.slurm.sweep import OrphanSweep
from simjob_operator.core.logs import SimJobLogger, simjob_logger
from simjob_operator.core.observations import Observation, ObservedState
from simjob_operator.core.phases import is_terminal
from simjob_operator.core.progress import ProgressReport
from simjob_operator.core.settings import DEFAULT, SlurmTimings
from simjob_operator.core.sightings import Seen
from simjob_operator.core.times import parse_time
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import KubeApi
from slurm_bridge import (
    InvalidJobSpec,
    JobKind,
    SlurmClient,
    SlurmRejected,
    SlurmUnavailable,
    SlurmUnsatisfiable,
)

logger = logging.getLogger("simjob_operator.slurm")
MAX_TAILS = 1000  # failed jobs' output tails kept (each is read once)


def stopping(record: SimJobRecord) -> bool:
    """We asked (or are asking) Slurm to stop this SimJob's job."""
    return record.cancel or record.deleting or record.status.reason in STOP_REASONS


def _unavailable(cluster: str, error: SlurmUnavailable) -> BackendUnavailable:
    return BackendUnavailable(f"Slurm on {cluster} does not answer: {error.message}")


class SlurmBackend:
    kind = c.SLURM_JOB_KIND

    def __init__(
        self,
        kube: KubeApi,
        *,
        notify: Callable[[Key], None],
        settings: SlurmTimings = DEFAULT.slurm,
        unknown_grace: float = DEFAULT.timings.unknown_tier_grace,
        sites: Sites | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        progressed: Callable[[Key, ProgressReport], None] = lambda key, report: None,
        known_uids: Callable[[], Collection[str]] = tuple,
    ) -> None:
        self._kube = kube
        self._unknown_grace = unknown_grace
        self._timeout = settings.command_timeout
        self.sites = sites if sites is not None else Sites(kube, settings=settings)
        self._now = now
        self._pollers = Pollers(kube, self.sites, notify, settings)
        self.progress = SlurmProgress(self.sites, progressed, timeout_s=settings.command_timeout)
        self._tails: dict[str, str] = {}
        self._annotator = Annotator()
        self.identity = ClusterIdentity(kube)
        self.sweep = OrphanSweep(
            kube, self.sites, cluster_id=self.identity.get, known_uids=known_uids
        )

    def backend_id(self, record: SimJobRecord) -> str:
        return job_id_of(record) or marker(record.uid)

    def planned_ref(self, record: SimJobRecord) -> BackendRef | None:
        return None  # the job id is known only after sbatch

    def planned_workspace(self, record: SimJobRecord, grant: Grant) -> WorkspaceStatus | None:
        return None  # the run directory is known with the login's workDir, at submit

    # ------------------------------------------------------------------ the task

    @property
    def pollers(self) -> dict[str, ClusterPoller]:
        """The poller of each SlurmCluster, by name."""
        return self._pollers.by_name

    async def run(self) -> None:
        """Pollers, the SlurmCluster resync, the start-up tracking, the progress reads
        and the orphan sweep, until ``stop``."""
        await asyncio.gather(self._pollers.run(), self.progress.run(), self.sweep.run())

    def stop(self) -> None:
        self._pollers.stop()
        self.progress.stop()
        self.sweep.stop()

    def poller(self, site: Site) -> ClusterPoller:
        """The poller of ``site`` (created and started on first use)."""
        return self._pollers.of(site)

    # ------------------------------------------------------------------ Backend

    async def submit(self, record: SimJobRecord, grant: Grant) -> SubmitResult:
        slurm = record.spec.slurm if record.spec is not None else None
        if record.spec is None or slurm is None:
            return Rejected(Reason.INVALID_SPEC, "spec.slurm.cluster is required for backend slurm")
        log = simjob_logger(record, backend_id=marker(record.uid))
        try:
            site, poller, client = await self._connect(record, slurm)
        except SiteError as error:
            wait = self._grace_left(record)
            if wait > 0:  # the SlurmCluster or Secret may be applied a moment later
                log.info("%s; trying again in %.1f s", error.message, wait)
                return RetryAfter(wait, error.message)
            return Rejected(error.reason, error.message)
        created = False
        runner, work_dir = place_of(client)
        try:
            run_dir = run_dir_of(work_dir, record.namespace, record.name, record.uid)
        except InvalidJobSpec as exc:
            return Rejected(Reason.INVALID_SPEC, str(exc))
        try:
            job_id = await client.find(marker(record.uid))
            if job_id is None:
                refused = await prepare_run_dir(
                    self._kube, record, site.name, runner, run_dir,
                    wait=input_wait(record, grant, self._now()), timeout_s=self._timeout,
                )  # fmt: skip
                if refused is not None:
                    return refused
                try:
                    job = job_spec(
                        namespace=record.namespace,
                        name=record.name,
                        uid=record.uid,
                        spec=record.spec,
                        slurm=slurm,
                        grant=grant,
                        cluster_id=await self.identity.get(),
                    )
                    job = in_run_dir(job, run_dir, with_inputs=bool(record.spec.inputs))
                    job = in_container(job, record.spec, site.spec)
                except InvalidJobSpec as exc:
                    return Rejected(Reason.INVALID_SPEC, str(exc))
                try:
                    job_id = await client.submit(job)
                except SlurmUnsatisfiable as exc:
                    message = (
                        f"no node of {site.name} can ever run the job as asked "
                        f"({job.cpus_per_task} CPUs, {job.memory_mib} MiB, {job.gpus or 0} "
                        f"GPUs per node; a smaller tier or another partition may fit): "
                        f"{exc.message}"
                    )
                    return Rejected(Reason.SLURM_UNSATISFIABLE, message)
                except SlurmRejected as exc:
                    message = f"sbatch refused the job on {site.name}: {exc.message}"
                    return Rejected(Reason.SLURM_REJECTED, message)
                created = True
        except SlurmUnavailable as exc:
            # For sbatch ambiguous: the job may exist. The retry's find() adopts it.
            raise _unavailable(site.name, exc) from exc
        poller.track(login_of(record), job_id, record.key)
        poller.poll_soon()
        verb = "submitted" if created else "adopted"
        message = f"{verb} Slurm job {job_id} on {site.name}"
        if image_ignored(record.spec, site.spec):
            message += f" (its image is not used: {site.name} has containerRuntime none)"
        log.bind(backend_id=job_id).info("%s", message)
        ref = BackendRef(kind=c.SLURM_JOB_KIND, id=job_id, cluster=site.name)
        return Submitted(ref, created, message, workspace=workspace(site.name, run_dir))

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
        try:
            site, poller, client = await self._connect(record, slurm)
        except SiteError as error:
            return self._unusable(record, job_id, error, log)
        try:
            if job_id is None:
                if not stopping(record):
                    return Observation(ObservedState.ABSENT)  # submit finds before it submits
                job_id = await client.find(marker(record.uid))
                if job_id is None:
                    return Observation(ObservedState.ABSENT)
            state = await poller.state(login_of(record), job_id, record.key)
        except SlurmUnavailable as exc:
            raise _unavailable(site.name, exc) from exc
        except SiteError as error:  # the poll found the cluster or a Secret gone
            raise BackendUnavailable(error.message) from error
        except TimeoutError as exc:
            message = f"no answer from the poller of {site.name} for Slurm job {job_id}"
            raise BackendUnavailable(message) from exc
        gpus = record.status.grant.gpu if record.status.grant is not None else 0
        observation = interpret(state, stopping=stopping(record), cluster=site.name, gpus=gpus)
        run_dir = run_dir_in(record, site.name)
        self.progress.follow(record, site.name, job_id, run_dir, observation)
        if observation.state == ObservedState.FAILED and state.kind is JobKind.FAILED:
            tail = await self._tail(client, job_id, log, run_dir)
            observation = dataclasses.replace(observation, message=failure_message(state, tail))
        problem = poller.credentials.problem(login_of(record))
        where = f"Slurm job {job_id} on {site.name}"
        return await self._annotator.annotate(
            observation, state, client, problem=problem, where=where, log=log
        )

    async def cancel(self, record: SimJobRecord) -> bool:
        """scancel the job of ``record`` (the id in status.backendRef, else the one its
        marker finds); True once Slurm confirms it ended or never had it. A terminal
        phase means the job has ended already: no Slurm call."""
        slurm = record.spec.slurm if record.spec is not None else None
        job_id = job_id_of(record)
        self.progress.untrack(record.key)
        if is_terminal(record.phase) or slurm is None:
            return True  # its job has ended (or never existed)
        log = simjob_logger(record)
        try:
            site, poller, client = await self._connect(record, slurm)
        except SiteError as error:
            self._unusable(record, job_id, error, log)  # raises while a job may live
            return True
        try:
            if job_id is None:
                job_id = await client.find(marker(record.uid))
                if job_id is None:
                    return True
            state = await client.cancel(job_id)
        except SlurmUnavailable as exc:
            raise _unavailable(site.name, exc) from exc
        poller.record(job_id, state)
        log.bind(backend_id=job_id).info("scancel: Slurm reports %s", state.state)
        return state.finished or state.kind is JobKind.MISSING

    # ------------------------------------------------------------------ helpers

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
        return max(0.0, self._unknown_grace - age)

    def _unusable(
        self, record: SimJobRecord, job_id: str | None, error: SiteError, log: SimJobLogger
    ) -> Observation:
        """The SlurmCluster or its credentials cannot be used. Raises
        ``BackendUnavailable`` while a job may live (a Secret may come back)."""
        if job_id is None:
            if stopping(record):
                return Observation(ObservedState.ABSENT)  # nothing reachable was submitted
            wait = self._grace_left(record)
            if wait > 0:  # the SlurmCluster or Secret may be applied a moment later
                log.info("%s; checking again in %.1f s", error.message, wait)
                return Observation(
                    ObservedState.PENDING, reason=Reason.STARTING, recheck_after=wait
                )
            return Observation(ObservedState.FAILED, reason=error.reason, message=error.message)
        if stopping(record) and error.reason == Reason.UNKNOWN_SLURM_CLUSTER:
            log.error("cannot cancel Slurm job %s: %s; it may still run", job_id, error.message)
            return Observation(ObservedState.ABSENT)
        # A job exists: keep the phase and retry.
        raise BackendUnavailable(f"Slurm job {job_id}: {error.message}") from error

    async def _tail(
        self, client: SlurmClient, job_id: str, log: SimJobLogger, run_dir: str | None
    ) -> str:
        if job_id in self._tails:
            return self._tails[job_id]
        try:
            tail = await client.output_tail(job_id, directory=run_dir)
        except SlurmUnavailable as exc:
            log.warning("could not read the output of Slurm job %s: %s", job_id, exc.message)
            return ""
        if len(self._tails) > MAX_TAILS:
            self._tails.clear()
        self._tails[job_id] = tail
        return tail
