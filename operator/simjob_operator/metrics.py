"""The operator's Prometheus metrics: every metric object, in one registry (``REGISTRY``).

A layer of its own between ``kube`` and ``core`` (pyproject's import contracts):
``kube``, ``backends`` and ``controller`` report here through the small helpers below,
and ``core`` and ``api`` stay pure (they may not import it, nor ``prometheus_client``).
Nothing is served from here: ``controller.exporter`` serves ``REGISTRY`` on
``/metrics`` and binds the running ``controller.runtime.Runtime`` as the ``Source`` that
``STATE`` reads at scrape time.

What reports where (docs/helm.md lists every metric with its labels):

* ``api_request`` wraps every call of the operator's own API client (``kube.client``);
  kopf's watches and finalizer patches go through kopf's client and are not counted.
* ``recorded`` is called by ``controller.recorder`` after each status write that this
  process made: admission (Admitted=True written), start (phase Running written) and
  the end (a terminal phase written) are observed exactly when this process wrote
  them. The write carries a resourceVersion precondition, so each transition is
  written once; a restarted operator never observes a transition again (it only
  observes what it writes itself). A crash between the write and the observation loses
  that one observation (an undercount, never a double count).
* ``timed_reconcile`` wraps the reconcile function of the work queue.
* ``slurm_poll`` wraps the one batched query of a SlurmCluster's poller.
* ``StateCollector`` (``STATE``): SimJobs by phase and tier, the work-queue depth and
  ``Reachable`` per SlurmCluster, computed from the operator's caches at scrape time
  (no per-event bookkeeping).
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from simjob_operator.core.phases import Phase, is_terminal
from simjob_operator.core.times import parse_time
from simjob_operator.core.view import Key, SimJobRecord

REGISTRY = CollectorRegistry(auto_describe=True)
for _default in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_default)  # process_cpu_seconds_total, python_info, python_gc_*

NO_TIER = ""  # the tier label of a SimJob whose spec names none (unparseable spec)
# Seconds from creation to admission / to Running: a queue can hold a SimJob for hours.
WAIT_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
# One reconcile or one API request: milliseconds, up to an API server's 30 s timeout.
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# One squeue/sacct round of a SlurmCluster (local or over SSH).
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

ADMISSION_WAIT = Histogram(
    "simjob_admission_wait_seconds",
    "Seconds from a SimJob's creation to its admission (Admitted=True written).",
    ["tier"],
    buckets=WAIT_BUCKETS,
    registry=REGISTRY,
)
TIME_TO_RUNNING = Histogram(
    "simjob_time_to_running_seconds",
    "Seconds from a SimJob's creation to phase Running (written by this process).",
    ["tier", "backend"],
    buckets=WAIT_BUCKETS,
    registry=REGISTRY,
)
FINISHED = Counter(
    "simjob_finished",
    "SimJobs that reached a terminal phase (written by this process).",
    ["phase", "tier"],
    registry=REGISTRY,
)
CPU_SECONDS = Counter(
    "simjob_cpu_seconds",
    "CPU-seconds granted to finished SimJobs (status.usage.cpuSeconds: wall time x the "
    "tier's CPUs), counted when this process wrote the end.",
    ["owner", "tier"],
    registry=REGISTRY,
)
RECONCILE = Histogram(
    "simjob_reconcile_duration_seconds",
    "Seconds one reconcile of one SimJob took (the work queue's process call).",
    buckets=CALL_BUCKETS,
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "simjob_reconcile_errors",
    "Reconciles that ended with an exception (retried with backoff).",
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "simjob_api_requests",
    "Requests of the operator's API client (429 retries count again), by verb and resource.",
    ["verb", "resource"],
    registry=REGISTRY,
)
API_ERRORS = Counter(
    "simjob_api_request_errors",
    "Failed requests of the operator's API client, by verb, resource and kube.seam error "
    "(Conflict, AlreadyExists, Gone, Refused, Unavailable).",
    ["verb", "resource", "error"],
    registry=REGISTRY,
)
API_LATENCY = Histogram(
    "simjob_api_request_duration_seconds",
    "Seconds one request of the operator's API client took (the rate-limit wait excluded).",
    ["verb"],
    buckets=CALL_BUCKETS,
    registry=REGISTRY,
)
SLURM_POLL = Histogram(
    "simjob_slurm_poll_duration_seconds",
    "Seconds one batched state query (squeue, then sacct) of a SlurmCluster took.",
    ["cluster"],
    buckets=POLL_BUCKETS,
    registry=REGISTRY,
)
SLURM_POLL_FAILURES = Counter(
    "simjob_slurm_poll_failures",
    "Batched state queries of a SlurmCluster that failed (Slurm unreachable or refusing).",
    ["cluster"],
    registry=REGISTRY,
)

# ---------------------------------------------------------------------- API requests

_VERBS = {"GET": "get", "LIST": "list", "PATCH": "patch", "CREATE": "create", "DELETE": "delete"}
_RESOURCES = {
    "simjob": "simjobs",
    "simtier": "simtiers",
    "job": "jobs",
    "pod": "pods",
    "slurmcluster": "slurmclusters",
    "secret": "secrets",
    "event": "events",
    "configmap": "configmaps",
}


def request_labels(what: str) -> tuple[str, str]:
    """(verb, resource) of a ``kube.client`` call from its description, as RBAC names
    them: ``"PATCH SimJob lab/a status"`` is (patch, simjobs/status), ``"DELETE pods in
    lab"`` is (deletecollection, pods), ``"GET log of pod lab/p"`` is (get, pods/log).
    Pure."""
    words = what.split()
    verb = _VERBS.get(words[0], words[0].lower()) if words else "unknown"
    rest = [word.lower() for word in words[1:]]
    if rest[:2] == ["log", "of"]:
        return verb, "pods/log"
    singular = (rest[0] if rest else "unknown").removesuffix("s")
    resource = _RESOURCES.get(singular, f"{singular}s")
    if verb == "delete" and rest[1:2] == ["in"]:
        verb = "deletecollection"
    if verb == "list" or rest[-1:] != ["status"]:
        return verb, resource
    return verb, f"{resource}/status"


@contextmanager
def api_request(what: str) -> Iterator[None]:
    """Count and time one API request; a ``kube.seam`` error (raised inside, by
    ``kube.translate.judged``) is counted by its class name and goes on."""
    verb, resource = request_labels(what)
    API_REQUESTS.labels(verb, resource).inc()
    started = time.monotonic()
    try:
        yield
    except Exception as exc:
        API_ERRORS.labels(verb, resource, type(exc).__name__).inc()
        raise
    finally:
        API_LATENCY.labels(verb).observe(time.monotonic() - started)


# ---------------------------------------------------------------------- reconciles

T = TypeVar("T")
Process = Callable[[Key, T | None], Awaitable[float | None]]


def timed_reconcile(process: Process[T]) -> Process[T]:
    """``process`` (the work queue's reconcile function), timed and its errors counted."""

    async def timed(key: Key, item: T | None) -> float | None:
        started = time.monotonic()
        try:
            return await process(key, item)
        except Exception:
            RECONCILE_ERRORS.inc()
            raise
        finally:
            RECONCILE.observe(time.monotonic() - started)

    return timed


# ---------------------------------------------------------------------- transitions


def _tier(record: SimJobRecord) -> str:
    return record.tier_name or NO_TIER


def _since_creation(record: SimJobRecord, now: datetime) -> float | None:
    created = parse_time(record.creation_timestamp or None)
    return None if created is None else max(0.0, (now - created).total_seconds())


def recorded(old: SimJobRecord, new: SimJobRecord, *, now: datetime | None = None) -> None:
    """A status write of this process took ``old`` to ``new`` (``controller.recorder``):
    observe what it changed: admission, the start, the end (module docstring)."""
    moment = now if now is not None else datetime.now(UTC)
    tier = _tier(new)
    if new.admitted and not old.admitted:
        waited = _since_creation(new, moment)
        if waited is not None:
            ADMISSION_WAIT.labels(tier).observe(waited)
    if new.phase == Phase.RUNNING and old.phase != Phase.RUNNING:
        waited = _since_creation(new, moment)
        if waited is not None:
            backend = new.spec.backend if new.spec is not None else ""
            TIME_TO_RUNNING.labels(tier, backend).observe(waited)
    if new.phase is not None and is_terminal(new.phase):
        if old.phase is not None and is_terminal(old.phase):
            return
        FINISHED.labels(new.phase.value, tier).inc()
        usage = new.status.usage
        if usage is not None and usage.cpu_seconds > 0:
            CPU_SECONDS.labels(new.owner, tier).inc(usage.cpu_seconds)


# ---------------------------------------------------------------------- Slurm


@contextmanager
def slurm_poll(cluster: str) -> Iterator[None]:
    """Time one batched query of ``cluster``; an exception counts as a failed poll."""
    started = time.monotonic()
    try:
        yield
    except Exception:
        SLURM_POLL_FAILURES.labels(cluster).inc()
        raise
    finally:
        SLURM_POLL.labels(cluster).observe(time.monotonic() - started)


# ---------------------------------------------------------------------- at scrape time


class Source(Protocol):
    """What ``STATE`` reads at scrape time (``controller.exporter`` adapts the runtime)."""

    def simjobs(self) -> Iterable[SimJobRecord]: ...

    def queue_depth(self) -> int: ...

    def reachable(self) -> Mapping[str, bool]: ...


def simjob_counts(records: Iterable[SimJobRecord]) -> Tally[tuple[str, str]]:
    """How many SimJobs per (phase, tier); a SimJob without a phase yet is Pending. Pure."""
    pending = Phase.PENDING.value  # status.phase is the enum's value: no enum is built
    return Tally((record.status.phase or pending, _tier(record)) for record in records)


class StateCollector(Collector):
    """Gauges computed from a ``Source`` at every scrape; nothing while none is bound."""

    def __init__(self) -> None:
        self._source: Source | None = None

    def bind(self, source: Source | None) -> None:
        self._source = source

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        simjobs, depth, reachable = self._families()
        source = self._source
        if source is not None:
            for (phase, tier), count in sorted(simjob_counts(source.simjobs()).items()):
                simjobs.add_metric([phase, tier], count)
            depth.add_metric([], source.queue_depth())
            for cluster, ok in sorted(source.reachable().items()):
                reachable.add_metric([cluster], 1.0 if ok else 0.0)
        return [simjobs, depth, reachable]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "simjob_simjobs",
                "SimJobs the operator serves, by phase and tier (from its cache).",
                labels=["phase", "tier"],
            ),
            GaugeMetricFamily(
                "simjob_workqueue_depth",
                "SimJob keys waiting in the reconcile queue (or due again after the "
                "running reconcile).",
            ),
            GaugeMetricFamily(
                "simjob_slurmcluster_reachable",
                "Whether a SlurmCluster's Slurm answered its last call (its Reachable "
                "condition: 1 True, 0 False); absent until it is known.",
                labels=["cluster"],
            ),
        )


STATE = StateCollector()
REGISTRY.register(STATE)
