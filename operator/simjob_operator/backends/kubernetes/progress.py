"""Progress of running simulations on Kubernetes: the newest line of their pod logs.

``ProgressReader`` is the Kubernetes backend's long-running task. ``track`` (called by
the backend when it sees a SimJob running) asks for that pod's log to be read every
``interval`` seconds (the grant's ``progressIntervalSeconds``); each read fetches only
the log's tail (``TAIL_LINES``, at most ``TAIL_BYTES``), finds the newest progress line
(``core.progress``) and, only when it changed, hands it to ``notify``: the reconciler
writes status, never this task. All reads together are rate-limited by one token bucket
(``reads_per_second``), so N running SimJobs cost at most that many API requests per
second however large N is (and N / interval when that is less); a log that never had a
progress line is read ever less often (up to 32 intervals apart). ``untrack`` (finished,
deleted) stops the reads. Neighbours: ``backends.kubernetes.backend``,
``kube.seam.KubeApi.read_pod_log``, ``controller.runtime`` (starts it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from simjob_operator.api import names as c
from simjob_operator.core.progress import ProgressReport, last_progress
from simjob_operator.core.view import Key
from simjob_operator.kube.ratelimit import TokenBucket
from simjob_operator.kube.seam import KubeApi, KubeError, Refused

logger = logging.getLogger("simjob_operator.progress")
TAIL_LINES = 40
TAIL_BYTES = 16 * 1024
SILENT_BACKOFF_STEPS = 5


@dataclasses.dataclass
class _Tracked:
    namespace: str
    job_uid: str
    interval: float
    due: float
    pod: str | None = None
    last: ProgressReport | None = None
    silent: int = 0  # reads in a row that found no progress line
    warned: bool = False  # a permanent refusal was logged once


class ProgressReader:
    def __init__(
        self,
        kube: KubeApi,
        notify: Callable[[Key, ProgressReport], None],
        *,
        reads_per_second: float = 10.0,
        tick: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._notify = notify
        self._bucket = TokenBucket(reads_per_second, max(1, int(reads_per_second)), clock=clock)
        self._tick = tick
        self._clock = clock
        self._tracked: dict[Key, _Tracked] = {}
        self._stop: asyncio.Queue[bool] = asyncio.Queue()
        self.reads = 0  # log reads made (benchmarks: the API cost of progress)

    def track(self, key: Key, namespace: str, job_uid: str, interval: float) -> None:
        entry = self._tracked.get(key)
        if entry is None or entry.job_uid != job_uid:
            # The first read comes one interval after the start: a short run costs none.
            due = self._clock() + interval
            self._tracked[key] = _Tracked(namespace, job_uid, interval, due=due)
        else:
            entry.interval = interval

    def untrack(self, key: Key) -> None:
        self._tracked.pop(key, None)

    def tracked(self) -> int:
        return len(self._tracked)

    def stop(self) -> None:
        self._stop.put_nowait(True)

    async def run(self) -> None:
        while True:
            try:
                if await asyncio.wait_for(self._stop.get(), self._tick):
                    return
            except TimeoutError:
                await self.read_due()

    async def read_due(self) -> None:
        """One round: read every tracked log whose time has come (rate-limited)."""
        now = self._clock()
        for key, entry in list(self._tracked.items()):
            if entry.due > now or self._tracked.get(key) is not entry:
                continue
            entry.due = float("inf")  # being read: no other round takes it meanwhile
            await self._bucket.acquire()
            # Timed from the read itself, not from the round's start (a round waits for the
            # rate limit): one read, and so at most one status write, per interval. A
            # simulation that never printed a progress line is read less and less often
            # (up to 32 intervals apart): most of the cost of progress is reading logs.
            backoff = 2 ** min(entry.silent, SILENT_BACKOFF_STEPS)
            entry.due = self._clock() + entry.interval * backoff
            try:
                report = await self._read(entry)
            except Refused as exc:  # will not heal by itself: say it once, loudly
                if not entry.warned:
                    entry.warned = True
                    logger.warning("reading the log of %s/%s is refused: %s", *key, exc.message)
                continue
            except KubeError as exc:  # temporary: the next round tries again
                logger.debug("reading the log of %s/%s failed: %s", key[0], key[1], exc)
                continue
            if report is None and entry.last is None:
                entry.silent += 1
                continue
            entry.silent = 0
            if report is not None and report != entry.last:
                entry.last = report
                self._notify(key, report)

    async def _read(self, entry: _Tracked) -> ProgressReport | None:
        if entry.pod is None:
            selector = f"{c.POD_LABEL_CONTROLLER_UID}={entry.job_uid}"
            pods = await self._kube.list_pods(entry.namespace, selector)
            if not pods:
                return None
            entry.pod = str((pods[0].get("metadata") or {}).get("name"))
        self.reads += 1
        text = await self._kube.read_pod_log(
            entry.namespace,
            entry.pod,
            container=c.CONTAINER_NAME,
            tail_lines=TAIL_LINES,
            limit_bytes=TAIL_BYTES,
        )
        return last_progress(text) if text is not None else None
