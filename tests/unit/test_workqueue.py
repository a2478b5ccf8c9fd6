"""The keyed work queue (simjob_operator.controller.workqueue): coalescing, one worker per
key at a time, re-runs for keys added while processing, retries with backoff.
Runs an asyncio loop; no cluster.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from simjob_operator.controller import workqueue
from simjob_operator.controller.workqueue import Key, WorkQueue
from simjob_operator.core.logs import prefix

LOG = logging.getLogger("test")


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def test_coalesces_waiting_keys_and_keeps_the_newest_body() -> None:
    seen: list[tuple[Key, Any]] = []
    both = asyncio.Event()

    async def process(key: Key, body: Mapping[str, Any] | None) -> float | None:
        seen.append((key, body))
        if len(seen) == 2:
            both.set()
        return None

    async def main() -> None:
        queue = WorkQueue(process, workers=2, logger=LOG)
        queue.add(("ns", "a"), {"v": 1})
        queue.add(("ns", "a"), {"v": 2})
        queue.add(("ns", "a"))  # no body: keeps the newest known one
        queue.add(("ns", "b"))
        runner = asyncio.create_task(queue.run())
        await both.wait()
        queue.stop()
        await runner

    run(main())
    assert sorted(seen, key=str) == [(("ns", "a"), {"v": 2}), (("ns", "b"), None)]


def test_one_worker_per_key_and_a_rerun_when_added_meanwhile() -> None:
    active: set[Key] = set()
    overlaps: list[Key] = []
    calls: list[Any] = []
    second_done = asyncio.Event()

    async def process(key: Key, body: Mapping[str, Any] | None) -> float | None:
        if key in active:
            overlaps.append(key)
        active.add(key)
        calls.append(body)
        await asyncio.sleep(0.05)
        active.discard(key)
        if len(calls) == 2:
            second_done.set()
        return None

    async def main() -> None:
        queue = WorkQueue(process, workers=4, logger=LOG)
        runner = asyncio.create_task(queue.run())
        queue.add(("ns", "a"), {"v": 1})
        await asyncio.sleep(0.01)  # now being processed
        for version in range(2, 6):
            queue.add(("ns", "a"), {"v": version})
        await second_done.wait()
        await asyncio.sleep(0.1)  # room for a (wrong) third call
        queue.stop()
        await runner

    run(main())
    assert overlaps == []
    assert calls == [{"v": 1}, {"v": 5}]


def test_failures_are_logged_and_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(workqueue, "BACKOFF_BASE", 0.01)
    attempts: list[int] = []
    succeeded = asyncio.Event()

    async def process(key: Key, body: Mapping[str, Any] | None) -> float | None:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("boom")
        succeeded.set()
        return None

    async def main() -> None:
        queue = WorkQueue(process, workers=1, logger=LOG)
        runner = asyncio.create_task(queue.run())
        queue.add(("ns", "flaky"))
        await succeeded.wait()
        queue.stop()
        await runner

    with caplog.at_level(logging.INFO):
        run(main())
    assert len(attempts) == 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    # The identity is in the record (the formatter prints it as [ns/flaky uid=...]).
    refs = [getattr(r, "object_ref", {}) for r in errors]
    assert all(r.exc_info for r in errors)
    assert all(
        (ref["namespace"], ref["name"], ref["kind"]) == ("ns", "flaky", "SimJob") for ref in refs
    )
    assert all(prefix(r) is not None and prefix(r).startswith("[ns/flaky uid=") for r in errors)


def test_requeue_after() -> None:
    times: list[float] = []
    again = asyncio.Event()

    async def process(key: Key, body: Mapping[str, Any] | None) -> float | None:
        times.append(asyncio.get_running_loop().time())
        if len(times) == 2:
            again.set()
        return 0.1 if len(times) < 2 else None

    async def main() -> None:
        queue = WorkQueue(process, workers=1, logger=LOG)
        runner = asyncio.create_task(queue.run())
        queue.add(("ns", "later"))
        await again.wait()
        queue.stop()
        await runner

    run(main())
    assert times[1] - times[0] >= 0.09
