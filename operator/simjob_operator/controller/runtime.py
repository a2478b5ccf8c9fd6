"""The operator's moving parts, wired together and started as asyncio tasks.

``Runtime`` owns one ``kube.seam.KubeApi`` client, the ``controller.tiers.TierCache``,
the backends (Kubernetes, and Slurm with its pollers' task), the reconcile
``controller.workqueue.WorkQueue`` (drained by ``controller.reconciler.Reconciler``),
the ``controller.admitter.Admitter``, the ``controller.cache.SimJobCache`` (the newest
body of every SimJob, where admission decides and a reconcile starts) and the newest
Job event of each SimJob (``jobs``). One resync loop re-reconciles, from those caches
and without an API call, the unfinished SimJobs nothing looked at for a while. It
takes one ``core.settings.Settings`` and hands each part what it needs.
``controller.handlers`` creates it on startup, feeds it from kopf's watches,
and stops it on cleanup by putting sentinels into its queues (no Task.cancel()).
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from simjob_operator import metrics
from simjob_operator.api import names as c
from simjob_operator.backends.base import Backend
from simjob_operator.backends.kubernetes.backend import KubernetesBackend
from simjob_operator.backends.kubernetes.progress import ProgressReader
from simjob_operator.backends.kubernetes.retention import ClaimCleaner
from simjob_operator.backends.slurm.backend import SlurmBackend
from simjob_operator.backends.slurm.retention import RunDirCleaner
from simjob_operator.controller.admitter import Admitter
from simjob_operator.controller.cache import SimJobCache
from simjob_operator.controller.reconciler import Reconciler
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.retention import CLAIM, RUN_DIRECTORY
from simjob_operator.controller.tiers import TierCache
from simjob_operator.controller.workqueue import Key, WorkQueue
from simjob_operator.core.phases import is_terminal
from simjob_operator.core.progress import ProgressReport
from simjob_operator.core.settings import DEFAULT as SETTINGS
from simjob_operator.core.settings import Settings, retention_from_env
from simjob_operator.core.sightings import Seen, Sighting
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import KubeApi

logger = logging.getLogger("simjob_operator.runtime")


class Runtime:
    def __init__(self, kube: KubeApi, settings: Settings = SETTINGS) -> None:
        self.kube = kube
        self.settings = settings
        self.tiers = TierCache(kube)
        self.cache = SimJobCache()
        self.recorder = Recorder(kube, on_stored=self.cache.stored)
        self.queue: WorkQueue[Sighting] = WorkQueue(
            metrics.timed_reconcile(self._process),
            workers=settings.limits.reconcile_workers,
            logger=logger,
            merge=Sighting.merge,
        )
        # The Slurm backend polls its clusters in batches and wakes the queue itself.
        self.slurm = SlurmBackend(
            kube,
            notify=self.queue.add,
            settings=settings.slurm,
            unknown_grace=settings.timings.unknown_tier_grace,
            progressed=self._progressed,
            known_uids=lambda: {record.uid for record in self.cache.records()},
        )
        self.progress = ProgressReader(kube, self._progressed)
        self.backends: dict[str, Backend] = {
            c.BACKEND_KUBERNETES: KubernetesBackend(
                kube, retry_delay=settings.timings.stop_poll, progress=self.progress
            ),
            c.BACKEND_SLURM: self.slurm,
        }
        self.admitter = Admitter(
            kube=kube,
            cache=self.cache,
            tiers=self.tiers,
            recorder=self.recorder,
            backends=self.backends,
            on_admitted=self._admitted,
            settings=settings,
        )
        self.reconciler = Reconciler(
            kube=kube,
            tiers=self.tiers,
            recorder=self.recorder,
            backends=self.backends,
            request_admission=self.admitter.trigger,
            slot_freed=self.admitter.slot_freed,
            settings=settings,
            removers={
                CLAIM: ClaimCleaner(kube, retention_from_env(settings.retention, os.environ)),
                RUN_DIRECTORY: RunDirCleaner(self.slurm.sites),
            },
        )
        self._tasks: list[asyncio.Task[None]] = []
        # The newest Job event of each SimJob: a resync observes from it, not a GET.
        self.jobs: dict[Key, Seen] = {}
        # When each SimJob was last reconciled (loop time), for ``resync``.
        self._reconciled: dict[Key, float] = {}
        self._stopping: asyncio.Queue[bool] = asyncio.Queue()

    def _progressed(self, key: Key, report: ProgressReport) -> None:
        """A progress reader saw a new progress line: the reconciler writes it."""
        self.queue.add(key, Sighting(simjob=self.cache.body(key), progress=report))

    def _admitted(self, record: SimJobRecord) -> None:
        nothing = Seen.nothing_yet(record.resource_version)
        self.queue.add(record.key, Sighting(simjob=record.body, backend=nothing))

    async def _process(self, key: Key, sighting: Sighting | None) -> float | None:
        if sighting is None or sighting.simjob is None:
            # A retry or a hint without the SimJob: start from the cached body (its
            # writes carry its resourceVersion, so a stale one costs a 409, never a
            # wrong write) instead of a GET, and log with the SimJob's full identity.
            cached = self.cache.body(key)
            if cached is not None:
                sighting = (sighting or Sighting()).merge(Sighting(simjob=cached))
        again = await self.reconciler.process(key, sighting)
        self._reconciled[key] = asyncio.get_running_loop().time()
        return again

    def resync(self) -> int:
        """One tick of the resync loop: reconcile the unfinished SimJobs that nothing
        looked at within ``resync_interval`` (a watch event, a retry or admission did
        the loop's work for the others), starting from the cached bodies. Returns how
        many were queued."""
        now = asyncio.get_running_loop().time()
        interval = self.settings.timings.resync_interval
        queued = 0
        for record in self.cache.records():
            if is_terminal(record.phase) or record.deleting:
                continue
            last = self._reconciled.get(record.key)
            if last is not None and now - last < interval:
                continue
            self._reconciled[record.key] = now  # not again before its turn comes
            self.queue.add(
                record.key, Sighting(simjob=record.body, backend=self.jobs.get(record.key))
            )
            queued += 1
        return queued

    async def _resync_loop(self) -> None:
        tick = self.settings.timings.resync_tick
        while True:
            try:
                if await asyncio.wait_for(self._stopping.get(), tick):
                    return
            except TimeoutError:
                self.resync()

    def forget(self, key: Key) -> None:
        """The SimJob is gone."""
        self.cache.forget(key)
        self.jobs.pop(key, None)
        self._reconciled.pop(key, None)

    def start(self) -> None:
        # Every API call runs in a thread: give them as many threads as connections.
        loop = asyncio.get_running_loop()
        loop.set_default_executor(
            ThreadPoolExecutor(
                max_workers=self.settings.limits.api_pool_size, thread_name_prefix="simjob-api"
            )
        )
        self._tasks = [
            asyncio.create_task(self.queue.run(), name="simjob-reconcile-queue"),
            asyncio.create_task(self.admitter.run(), name="simjob-admitter"),
            asyncio.create_task(self.slurm.run(), name="simjob-slurm"),
            asyncio.create_task(self._resync_loop(), name="simjob-resync"),
            asyncio.create_task(self.progress.run(), name="simjob-progress"),
        ]
        self.admitter.trigger()  # slots are recomputed from the API server at every start

    async def stop(self) -> None:
        self.queue.stop()
        self.admitter.stop()
        self.slurm.stop()
        self.progress.stop()
        self._stopping.put_nowait(True)
        await asyncio.gather(*self._tasks)
        self._tasks = []
