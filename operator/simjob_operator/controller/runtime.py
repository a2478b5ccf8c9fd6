"""The operator's moving parts, wired together and started as asyncio tasks.

``Runtime`` owns one ``kube.seam.KubeApi`` client, the ``controller.tiers.TierCache``,
the backends (Kubernetes, and Slurm with its pollers' task), the reconcile
``controller.workqueue.WorkQueue`` (drained by ``controller.reconciler.Reconciler``),
the ``controller.admitter.Admitter`` and the newest SimJob body each watch event
delivered (``simjobs``: where a reconcile triggered by a Job event starts, instead
of a GET). It takes one ``core.settings.Settings`` and hands each part what it
needs. ``controller.handlers`` creates it on startup, feeds it from kopf's watches,
and stops it on cleanup by putting sentinels into its queues (no Task.cancel()).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.backends.base import Backend
from simjob_operator.backends.kubernetes.backend import KubernetesBackend
from simjob_operator.backends.slurm.backend import SlurmBackend
from simjob_operator.controller.admitter import Admitter
from simjob_operator.controller.reconciler import Reconciler
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.tiers import TierCache
from simjob_operator.controller.workqueue import Key, WorkQueue
from simjob_operator.core.records import SimJobRecord
from simjob_operator.core.settings import DEFAULT as SETTINGS
from simjob_operator.core.settings import Settings
from simjob_operator.core.sightings import Seen, Sighting
from simjob_operator.kube.seam import KubeApi

logger = logging.getLogger("simjob_operator.runtime")


class Runtime:
    def __init__(self, kube: KubeApi, settings: Settings = SETTINGS) -> None:
        self.kube = kube
        self.settings = settings
        self.tiers = TierCache(kube)
        self.recorder = Recorder(kube)
        self.queue: WorkQueue[Sighting] = WorkQueue(
            self._process,
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
        )
        self.backends: dict[str, Backend] = {
            c.BACKEND_KUBERNETES: KubernetesBackend(kube, retry_delay=settings.timings.stop_poll),
            c.BACKEND_SLURM: self.slurm,
        }
        self.admitter = Admitter(
            kube=kube,
            tiers=self.tiers,
            recorder=self.recorder,
            backends=self.backends,
            on_admitted=self._admitted,
            timings=settings.timings,
        )
        self.reconciler = Reconciler(
            kube=kube,
            tiers=self.tiers,
            recorder=self.recorder,
            backends=self.backends,
            request_admission=self.admitter.trigger,
            slot_freed=self.admitter.slot_freed,
            settings=settings,
        )
        self._tasks: list[asyncio.Task[None]] = []
        # The newest SimJob bodies from the watch (kopf's; parsed from a copy). A
        # stale one costs a 409 and a GET: status writes carry its resourceVersion.
        self.simjobs: dict[Key, Mapping[str, Any]] = {}
        # When each SimJob was last reconciled (loop time), for ``resync``.
        self._reconciled: dict[Key, float] = {}

    def _admitted(self, record: SimJobRecord) -> None:
        nothing = Seen.nothing_yet(record.resource_version)
        self.queue.add(record.key, Sighting(simjob=record.body, backend=nothing))

    async def _process(self, key: Key, sighting: Sighting | None) -> float | None:
        again = await self.reconciler.process(key, sighting)
        self._reconciled[key] = asyncio.get_running_loop().time()
        return again

    def resync(self, key: Key, body: Mapping[str, Any]) -> None:
        """The resync timer's tick: reconcile ``key`` unless a reconcile looked at it
        within the last resync interval (a watch event, a retry or admission did the
        timer's work: the timer is for SimJobs nothing else looks at)."""
        last = self._reconciled.get(key)
        now = asyncio.get_running_loop().time()
        if last is None or now - last >= self.settings.timings.resync_interval:
            self.queue.add(key, Sighting(simjob=body))

    def forget(self, key: Key) -> None:
        """The SimJob is gone."""
        self.simjobs.pop(key, None)
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
        ]
        self.admitter.trigger()  # slots are recomputed from the API server at every start

    async def stop(self) -> None:
        self.queue.stop()
        self.admitter.stop()
        self.slurm.stop()
        await asyncio.gather(*self._tasks)
        self._tasks = []
