"""``AsyncSimJobClient``: the same SDK for asyncio gateways (FastAPI, aiohttp).

The same models and the same calls as ``simjob_sdk.client.SimJobClient``, which it
wraps: each call runs in a worker thread (``asyncio.to_thread``) so the event loop never
blocks on the API server; ``watch`` is an async iterator fed from a worker thread's
watch (``simjob_sdk.watching``) through an ``asyncio.Queue``, stopped when the
iteration ends. ``wait``'s ``on_change`` may be a plain function (called in the
worker thread) or a coroutine function (run on the caller's loop). Used by
examples/gateway.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from kubernetes.client.api_client import ApiClient

from simjob_operator.api.simjob import SimJobSpec
from simjob_sdk.client import SimJobClient
from simjob_sdk.objects import Outputs, SimJobObject, WatchEvent
from simjob_sdk.slurm import SlurmAccess
from simjob_sdk.usage import UsageReport

AsyncOnChange = Callable[[SimJobObject], None] | Callable[[SimJobObject], Awaitable[None]]
_END = object()
WATCH_ROUND_SECONDS = 5  # how soon a watch thread notices its consumer is gone


class AsyncSimJobClient:
    """Asynchronous client; same arguments as ``SimJobClient`` (or wrap one: ``sync=``)."""

    def __init__(
        self,
        namespace: str | None = None,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        api_client: ApiClient | None = None,
        retries: int = 3,
        slurm: SlurmAccess | None = None,
        sync: SimJobClient | None = None,
    ) -> None:
        self.sync = sync or SimJobClient(
            namespace,
            kubeconfig=kubeconfig,
            context=context,
            api_client=api_client,
            retries=retries,
            slurm=slurm,
        )

    @property
    def namespace(self) -> str:
        return self.sync.namespace

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncSimJobClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def submit(
        self, spec: SimJobSpec | Mapping[str, Any], *, name: str, **kwargs: Any
    ) -> SimJobObject:
        return await asyncio.to_thread(lambda: self.sync.submit(spec, name=name, **kwargs))

    async def get(self, name: str, *, namespace: str | None = None) -> SimJobObject:
        return await asyncio.to_thread(self.sync.get, name, namespace=namespace)

    async def list(self, **kwargs: Any) -> builtins.list[SimJobObject]:
        return await asyncio.to_thread(lambda: self.sync.list(**kwargs))

    async def cancel(self, name: str, *, namespace: str | None = None) -> SimJobObject:
        return await asyncio.to_thread(self.sync.cancel, name, namespace=namespace)

    async def delete(
        self, name: str, *, namespace: str | None = None, missing_ok: bool = False
    ) -> None:
        await asyncio.to_thread(self.sync.delete, name, namespace=namespace, missing_ok=missing_ok)

    async def rerun(self, name: str, **kwargs: Any) -> SimJobObject:
        return await asyncio.to_thread(lambda: self.sync.rerun(name, **kwargs))

    async def queue_position(self, name: str, *, namespace: str | None = None) -> int | None:
        return await asyncio.to_thread(self.sync.queue_position, name, namespace=namespace)

    async def outputs(self, name: str, *, namespace: str | None = None) -> Outputs:
        return await asyncio.to_thread(self.sync.outputs, name, namespace=namespace)

    async def download(
        self, name: str, path: str | os.PathLike[str], *, namespace: str | None = None
    ) -> builtins.list[Path]:
        return await asyncio.to_thread(self.sync.download, name, path, namespace=namespace)

    async def usage(
        self,
        *,
        owner: str | None = None,
        since: datetime | date | None = None,
        until: datetime | date | None = None,
        namespace: str | None = None,
    ) -> UsageReport:
        return await asyncio.to_thread(
            self.sync.usage, owner=owner, since=since, until=until, namespace=namespace
        )

    async def wait(
        self,
        name: str,
        *,
        namespace: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the deadline of the watch thread)
        on_change: AsyncOnChange | None = None,
    ) -> SimJobObject:
        """As ``SimJobClient.wait``; the watch runs in a worker thread."""
        loop = asyncio.get_running_loop()
        callback: Callable[[SimJobObject], None] | None = None
        if on_change is not None:
            user = on_change

            def callback(job: SimJobObject) -> None:
                result = user(job)
                if inspect.isawaitable(result):
                    asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()

        return await asyncio.to_thread(
            self.sync.wait, name, namespace=namespace, timeout=timeout, on_change=callback
        )

    async def watch(
        self,
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        label_selector: str | None = None,
        name: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """The matching SimJobs (as ADDED), then every change; ends when the caller stops
        iterating (the worker thread ends within one watch round, at most 5 s)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        events: Iterator[WatchEvent] = self.sync.watch(
            namespace=namespace,
            all_namespaces=all_namespaces,
            label_selector=label_selector,
            name=name,
            stop=stop,
            round_seconds=WATCH_ROUND_SECONDS,
        )

        def hand(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody listens any more
                stop.set()

        def pump() -> None:
            try:
                for event in events:
                    if stop.is_set():
                        return
                    hand(event)
            except BaseException as exc:  # noqa: BLE001 (handed to the consumer, raised there)
                hand(exc)
            else:
                hand(_END)

        # A daemon thread, not the loop's executor: the loop's shutdown never waits for it.
        threading.Thread(target=pump, name=f"simjob-watch-{name or '*'}", daemon=True).start()
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, WatchEvent)
                yield item
        finally:
            stop.set()


async def _awaited(result: Awaitable[None]) -> None:
    await result
