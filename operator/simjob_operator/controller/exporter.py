"""Serving the operator's Prometheus metrics: ``GET /metrics`` on the event loop.

``Exporter`` runs a small aiohttp server (aiohttp comes with kopf) on the loop the
operator runs on, so a scrape reads the runtime's caches between two coroutine steps,
never concurrently with them (no thread, no lock). It binds ``RuntimeSource`` (the
SimJob cache, the work queue, the Slurm pollers' ``Reachable``) to
``simjob_operator.metrics.STATE`` while it runs, and serves ``metrics.REGISTRY``.

The port comes from ``$SIMJOB_METRICS_PORT`` (``simjob-operator --metrics-port``,
the chart sets it), the address from ``$SIMJOB_METRICS_ADDRESS`` (default all
interfaces); unset, nothing is served (``kopf run`` in tests, several operators on one
machine). A port that cannot be bound stops the operator at start: a configuration
error, never a silently missing endpoint. Started and stopped by
``controller.handlers``; the metrics themselves: ``simjob_operator.metrics``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from simjob_operator import metrics
from simjob_operator.controller.runtime import Runtime
from simjob_operator.core.view import SimJobRecord

ENV_PORT = "SIMJOB_METRICS_PORT"
ENV_ADDRESS = "SIMJOB_METRICS_ADDRESS"
DEFAULT_ADDRESS = "0.0.0.0"  # a pod's port, reached through its Service


class RuntimeSource:
    """The runtime as ``metrics.Source``: what a scrape reads."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def simjobs(self) -> Iterable[SimJobRecord]:
        return self.runtime.cache.records()

    def queue_depth(self) -> int:
        return len(self.runtime.queue)

    def reachable(self) -> Mapping[str, bool]:
        pollers = self.runtime.slurm.pollers
        wanted = {name: poller.reachability.wanted for name, poller in pollers.items()}
        return {name: state[0] for name, state in wanted.items() if state is not None}


def configured_port(environ: Mapping[str, str] = os.environ) -> int | None:
    """The metrics port asked for, or None (not served). Raises ValueError for a value
    that is not a port."""
    text = environ.get(ENV_PORT, "").strip()
    if not text:
        return None
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(f"${ENV_PORT}={text} is not a TCP port (1-65535)")
    return port


async def _metrics(request: web.Request) -> web.Response:
    """The registry in the format the scraper asks for (Prometheus text, or OpenMetrics)."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encode(metrics.REGISTRY), headers={"Content-Type": content_type})


class Exporter:
    def __init__(self, runtime: Runtime, port: int, address: str = DEFAULT_ADDRESS) -> None:
        self.port = port
        self.address = address
        self._source = RuntimeSource(runtime)
        app = web.Application()
        app.router.add_get("/metrics", _metrics)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address, self.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        metrics.STATE.bind(self._source)

    async def stop(self) -> None:
        metrics.STATE.bind(None)
        await self._runner.cleanup()


async def start_exporter(runtime: Runtime) -> Exporter | None:
    """The exporter the environment asks for, started; None when no port is set."""
    port = configured_port()
    if port is None:
        return None
    exporter = Exporter(runtime, port, os.environ.get(ENV_ADDRESS) or DEFAULT_ADDRESS)
    await exporter.start()
    return exporter
