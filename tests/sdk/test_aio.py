"""The asyncio SDK (``AsyncSimJobClient``) against the real control plane: submit, wait
with an async ``on_change``, the async ``watch`` iterator, cancel.

Neighbours: conftest.py, simjob_sdk/aio.py, test_client.py (the sync client).
"""

from __future__ import annotations

import asyncio

import pytest

from simjob_sdk import AsyncSimJobClient, SimJobObject
from tests.sdk.conftest import spec

pytestmark = pytest.mark.integration


def test_async_submit_wait_watch_cancel(aclient: AsyncSimJobClient) -> None:
    async def scenario() -> None:
        async with aclient:
            first = await aclient.submit(spec(tier="it-one", run_seconds=4), name="a1")
            assert (await aclient.submit(spec(tier="it-one", run_seconds=4), name="a1")).uid == (
                first.uid
            )
            await aclient.submit(spec(tier="it-one", run_seconds=1), name="a2")
            seen: list[str | None] = []

            async def changed(job: SimJobObject) -> None:
                seen.append(job.phase)

            watched: list[str | None] = []

            async def follow() -> None:
                async for event in aclient.watch(name="a2"):
                    watched.append(event.object.phase)
                    if event.object.finished:
                        return

            done, _ = await asyncio.gather(
                aclient.wait("a2", timeout=90, on_change=changed), follow()
            )
            assert done.succeeded
            assert seen[-1] == "Succeeded", seen
            assert "Queued" in seen, seen
            assert "Running" in seen, seen
            assert watched[-1] == "Succeeded", watched
            assert [j.name for j in await aclient.list()] == ["a1", "a2"]

            await aclient.submit(spec(run_seconds=60), name="a3")
            await aclient.cancel("a3")
            assert (await aclient.wait("a3", timeout=60)).phase == "Cancelled"

    asyncio.run(scenario())
