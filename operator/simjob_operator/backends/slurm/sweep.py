"""The orphan sweep: cancel Slurm jobs whose SimJob no longer exists.

A SimJob's finalizer cancels its Slurm job. When the finalizer was removed by hand,
or the namespace force-deleted, the job would run on, unseen. ``OrphanSweep.run``
(a task of ``backend.SlurmBackend``) lists, for every SlurmCluster, the unfinished
jobs of the cluster's own credentials named ``simjob-...`` (ONE ``squeue --me``,
``slurm_bridge.list_jobs``) and hands them to a ``core.orphans.OrphanTracker``, which
keeps only the jobs whose comment names THIS Kubernetes cluster (its kube-system
namespace uid: several Kubernetes clusters may share one Slurm site and account) and
a namespace this operator serves. A job whose SimJob (its uid) the operator's cache
does not hold is timed; once absent for the SlurmCluster's ``orphanGraceSeconds``
the SimJob is read again with a fresh GET — only if it is still gone (no object of
that name, or one with another uid) is the job cancelled, logged with the job id, the
SimJob's namespace/name/uid and the cluster. Jobs of per-user credentials run as
other site users: they are not listed (squeue --me) and not swept. Each cluster is
swept every min(60, grace/3) seconds. Neighbours: ``sites`` (clusters, clients),
``core.orphans`` (the decisions), ``backend`` (``cluster_id``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection

from simjob_operator.api import names as c
from simjob_operator.backends.slurm.reachability import ReportingClient
from simjob_operator.backends.slurm.sites import DEFAULT_LOGIN, Site, SiteError, Sites
from simjob_operator.core.orphans import MarkedJob, OrphanTracker, parse_mark
from simjob_operator.kube.seam import KubeApi, KubeError
from slurm_bridge import JobKind, SlurmUnavailable

logger = logging.getLogger("simjob_operator.slurm.sweep")
TICK_SECONDS = 5.0
MAX_SWEEP_INTERVAL = 60.0


def sweep_interval(grace: float) -> float:
    """How often a cluster with this grace is swept. Pure."""
    return max(TICK_SECONDS, min(MAX_SWEEP_INTERVAL, grace / 3))


class OrphanSweep:
    """Finds and cancels the Slurm jobs of SimJobs that are gone (see the module)."""

    def __init__(
        self,
        kube: KubeApi,
        sites: Sites,
        *,
        cluster_id: Callable[[], Awaitable[str | None]],
        known_uids: Callable[[], Collection[str]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._sites = sites
        self._cluster_id = cluster_id
        self._known_uids = known_uids
        self._clock = clock
        self._trackers: dict[str, OrphanTracker] = {}
        self._next: dict[str, float] = {}
        self._stop: asyncio.Queue[bool] = asyncio.Queue()
        self.cancelled: list[str] = []  # job ids cancelled (logs, tests)

    def stop(self) -> None:
        self._stop.put_nowait(True)

    async def run(self) -> None:
        while True:
            try:
                if await asyncio.wait_for(self._stop.get(), TICK_SECONDS):
                    return
            except TimeoutError:
                pass
            try:
                await self.sweep_due()
            except KubeError as exc:  # the API server is away: try at the next tick
                logger.warning("orphan sweep: %s", exc.message)
            except Exception:  # the sweep must live on
                logger.exception("orphan sweep failed")

    async def sweep_due(self) -> int:
        """Sweep every cluster whose turn it is; how many jobs were cancelled."""
        cluster_id = await self._cluster_id()
        if not cluster_id:
            return 0
        cancelled = 0
        now = self._clock()
        for site in self._sites.known():
            grace = float(site.spec.orphan_grace_seconds)
            if now < self._next.get(site.name, 0.0):
                continue
            self._next[site.name] = now + sweep_interval(grace)
            tracker = self._trackers.get(site.name)
            if tracker is None or tracker.grace != grace or tracker.cluster_id != cluster_id:
                tracker = OrphanTracker(cluster_id, self._kube.namespaces, grace)
                self._trackers[site.name] = tracker
            cancelled += await self.sweep(site, tracker)
        for name in [name for name in self._trackers if self._sites.cached(name) is None]:
            del self._trackers[name]
        return cancelled

    async def sweep(self, site: Site, tracker: OrphanTracker) -> int:
        """One sweep of ``site``."""
        try:
            client = await self._sites.client(site, DEFAULT_LOGIN)
        except SiteError as exc:
            logger.debug("[SlurmCluster %s] no sweep: %s", site.name, exc.message)
            return 0
        if not isinstance(client, ReportingClient):
            return 0
        try:
            listed = await client.list_jobs(c.SLURM_MARKER_PREFIX)
        except SlurmUnavailable as exc:
            logger.info("[SlurmCluster %s] no sweep: %s", site.name, exc.message)
            return 0
        if listed is None:  # a client without a runner (pyslurm): nothing to list with
            return 0
        marked = [parse_mark(job.job_id, job.name, job.comment) for job in listed]
        jobs = [job for job in marked if job is not None]
        due = tracker.observe(jobs, self._known_uids(), self._clock())
        cancelled = 0
        for job in due:
            if await self._still_gone(job):
                if await self._cancel(site, client, job, tracker):
                    cancelled += 1
            else:
                tracker.done(job.job_id)  # its SimJob exists: the count starts again
        return cancelled

    async def _still_gone(self, job: MarkedJob) -> bool:
        """A fresh GET (not the cache): is there still no SimJob with the job's uid?"""
        body = await self._kube.get_simjob(job.namespace, job.name)
        if body is None:
            return True
        return str((body.get("metadata") or {}).get("uid") or "") != job.uid

    async def _cancel(
        self, site: Site, client: ReportingClient, job: MarkedJob, tracker: OrphanTracker
    ) -> bool:
        logger.warning(
            "[SlurmCluster %s] cancelling orphaned %s: the SimJob has been gone for %.0f s "
            "or more (kube cluster %s)",
            site.name,
            job.describe(),
            tracker.grace,
            job.cluster_id,
        )
        try:
            state = await client.cancel(job.job_id)
        except SlurmUnavailable as exc:
            logger.warning(
                "[SlurmCluster %s] scancel of orphaned Slurm job %s failed (next sweep "
                "retries): %s",
                site.name,
                job.job_id,
                exc.message,
            )
            return False
        logger.warning(
            "[SlurmCluster %s] orphaned Slurm job %s (SimJob %s/%s uid %s): Slurm reports %s",
            site.name,
            job.job_id,
            job.namespace,
            job.name,
            job.uid,
            state.state,
        )
        if state.finished or state.kind is JobKind.MISSING:
            tracker.done(job.job_id)
            self.cancelled.append(job.job_id)
            return True
        return False
