"""A client-side rate limit toward the API server: a token bucket, as client-go's.

``TokenBucket(qps, burst)``: ``acquire()`` returns at once while tokens are left
(``burst`` of them when idle) and otherwise waits until one has been refilled (``qps``
per second), so a storm of reconciles degrades into a steady stream instead of
saturating the API server (kube-controller-manager talks to it at 20 QPS / 30 burst).
The waits are served in the order they were asked for. Used by ``kube.client``; the
clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be above 0 and burst at least 1")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()  # one waiter refills at a time: FIFO by the lock
        self.waited = 0.0  # seconds spent waiting in total (metrics, benchmarks)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now

    def delay(self) -> float:
        """Seconds until a token is free (0 when one is). Takes nothing."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.qps

    async def acquire(self) -> None:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return
        async with self._lock:
            while (wait := self.delay()) > 0:
                self.waited += wait
                await asyncio.sleep(wait)
            self._tokens -= 1.0
