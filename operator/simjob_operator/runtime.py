"""The operator's moving parts, wired together and started as asyncio tasks.

``Runtime`` owns one ``kube.Kube`` client, the ``tiers.TierCache``, the
backends, the reconcile ``workqueue.WorkQueue`` (drained by
``reconciling.Reconciler``) and the ``admitting.Admitter``. ``handlers`` creates
it on startup, feeds it from kopf's watches, and stops it on cleanup by
putting sentinels into its queues (no Task.cancel()).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import constants as c
from .admitting import Admitter
from .backends import Backend
from .backends.kubernetes_backend import KubernetesBackend
from .kube import POOL_SIZE, Kube
from .reconciling import Reconciler
from .recording import Recorder
from .records import SimJobRecord
from .tiers import TierCache
from .workqueue import Key, WorkQueue

logger = logging.getLogger("simjob_operator.runtime")


class Runtime:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.tiers = TierCache(kube)
        self.recorder = Recorder(kube)
        self.backends: dict[str, Backend] = {c.BACKEND_KUBERNETES: KubernetesBackend(kube)}
        self.queue = WorkQueue(self._process, workers=c.RECONCILE_WORKERS, logger=logger)
        self.admitter = Admitter(
            kube=kube,
            tiers=self.tiers,
            recorder=self.recorder,
            backends=self.backends,
            on_admitted=self._admitted,
        )
        self.reconciler = Reconciler(
            kube=kube,
            tiers=self.tiers,
            recorder=self.recorder,
            backends=self.backends,
            request_admission=self.admitter.trigger,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def _admitted(self, record: SimJobRecord) -> None:
        self.queue.add(record.key, record.body)

    async def _process(self, key: Key, body: Mapping[str, Any] | None) -> float | None:
        return await self.reconciler.process(key, body)

    def start(self) -> None:
        # Every API call runs in a thread: give them as many threads as connections.
        loop = asyncio.get_running_loop()
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="simjob-api")
        )
        self._tasks = [
            asyncio.create_task(self.queue.run(), name="simjob-reconcile-queue"),
            asyncio.create_task(self.admitter.run(), name="simjob-admitter"),
        ]
        self.admitter.trigger()  # slots are recomputed from the API server at every start

    async def stop(self) -> None:
        self.queue.stop()
        self.admitter.stop()
        await asyncio.gather(*self._tasks)
        self._tasks = []
