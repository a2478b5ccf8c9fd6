"""A keyed work queue: each SimJob is reconciled by one worker at a time.

Like client-go's workqueue: ``add(key, item)`` while the key waits coalesces
(the items are combined by ``merge``; by default the newest wins, and no item
keeps the one there); ``add(key)`` while the key is being processed marks it
dirty so it runs once more afterwards; ``add_after`` schedules a retry. Workers
call ``process(key, item)``, which returns how many seconds until the key must
be looked at again (or None). The item is a hint (``sightings.Sighting``: what
the watches delivered), never the only way to learn the state. An exception is
logged with the key and retried with exponential backoff; it never kills a
worker. ``stop()`` enqueues one sentinel per worker (no Task.cancel()). Fed by
``handlers`` and ``admitting``; drained by ``reconciling``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from simjob_operator.core.logs import key_logger
from simjob_operator.core.view import Key

__all__ = ["AlreadyLogged", "Key", "WorkQueue"]

T = TypeVar("T")
Process = Callable[[Key, T | None], Awaitable[float | None]]

BACKOFF_BASE = 0.5
BACKOFF_MAX = 15.0  # after an outage, every SimJob is looked at again within this


class AlreadyLogged(Exception):
    """Raised by ``process`` after logging a failure with the SimJob's full context."""


def _newest(_older: T, newer: T) -> T:
    return newer


class WorkQueue(Generic[T]):
    def __init__(
        self,
        process: Process[T],
        *,
        workers: int,
        logger: logging.Logger,
        merge: Callable[[T, T], T] = _newest,
    ) -> None:
        self._process = process
        self._workers = workers
        self._logger = logger
        self._merge = merge
        self._queue: asyncio.Queue[Key | None] = asyncio.Queue()
        self._waiting: dict[Key, T | None] = {}
        self._processing: set[Key] = set()
        self._dirty: dict[Key, T | None] = {}
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._waiting) + len(self._dirty)

    def _combined(self, older: T | None, newer: T | None) -> T | None:
        if newer is None:
            return older
        if older is None:
            return newer
        return self._merge(older, newer)

    def add(self, key: Key, item: T | None = None) -> None:
        """Make sure ``key`` is processed (again) soon, with everything known about it."""
        if key in self._processing:
            self._dirty[key] = self._combined(self._dirty.get(key), item)
            return
        if key in self._waiting:
            self._waiting[key] = self._combined(self._waiting[key], item)
            return
        self._waiting[key] = item
        self._queue.put_nowait(key)

    def add_after(self, key: Key, delay: float) -> None:
        """Process ``key`` after ``delay`` seconds (an earlier pending retry wins)."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        pending = self._timers.get(key)
        if pending is not None and pending.when() <= loop.time() + delay:
            return
        if pending is not None:
            pending.cancel()  # a TimerHandle, not a task: nothing is interrupted
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def run(self) -> None:
        """Run the workers until ``stop()``."""
        async with asyncio.TaskGroup() as group:
            for index in range(self._workers):
                group.create_task(self._worker(), name=f"simjob-worker-{index}")

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for _ in range(self._workers):
            self._queue.put_nowait(None)

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            if key is None:
                return
            item = self._waiting.pop(key, None)
            self._processing.add(key)
            try:
                again = await self._process_one(key, item)
            finally:
                self._processing.discard(key)
            if key in self._dirty:
                self.add(key, self._dirty.pop(key))
            elif again is not None:
                self.add_after(key, again)

    async def _process_one(self, key: Key, item: T | None) -> float | None:
        try:
            again: float | None = await self._process(key, item)
        except Exception as exc:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** (failures - 1))
            if not isinstance(exc, AlreadyLogged):  # the reconciler logs with full identity
                log = key_logger(*key, base=self._logger)
                log.exception("reconcile failed (attempt %d); retrying in %.1f s", failures, delay)
            return delay
        self._failures.pop(key, None)
        return again
