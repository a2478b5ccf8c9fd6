"""kopf handlers: thin adapters from kopf's watches to the ``runtime.Runtime``.

SimJob watch events (the listing at start-up included) put the SimJob into the
reconcile queue with the body they carry, unless they only echo a status write
(``sightings.simjob_event_wanted``) and every body into the SimJob cache that
admission decides from; the runtime's one resync loop re-reconciles SimJobs that
nothing looked at for a while (no per-SimJob timer: an idle operator costs nothing
per SimJob); batch/v1 Job
events (only Jobs labelled simjob.io/uid, filtered by the API server) enqueue
the owning SimJob with the Job's status, so phases follow pods within a second
without reading the Job again; SimTier events refresh the tier cache and re-run
admission. Deletion runs ``Reconciler.finalize`` until the Job and pods are
gone. These handlers only enqueue and the state lives in SimJob status, so kopf
writes no diff-base (``NoDiffBase``; a restart lists every SimJob again) and no
progress: its one write is its finalizer ``simjob.io/cleanup`` (progress of the
on.delete handler would go to annotations under ``kopf.simjob.io``, never to
status). Imported by ``main``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import kopf

from simjob_operator.api import names as c
from simjob_operator.controller.exporter import Exporter, start_exporter
from simjob_operator.controller.runtime import Runtime
from simjob_operator.core.logs import install_formatter
from simjob_operator.core.settings import DEFAULT as SETTINGS
from simjob_operator.core.sightings import Seen, Sighting, owning_simjob, simjob_event_wanted
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.client import Kube

SIMJOBS = (c.GROUP, c.VERSION, c.SIMJOB_PLURAL)
SIMTIERS = (c.GROUP, c.VERSION, c.SIMTIER_PLURAL)
JOBS = ("batch", "v1", "jobs")
logger = logging.getLogger("simjob_operator.controller.handlers")


def _runtime(memo: kopf.Memo) -> Runtime:
    runtime = memo.get("runtime")
    if not isinstance(runtime, Runtime):
        raise kopf.TemporaryError("the operator runtime is not started yet", delay=1)
    return runtime


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf keeps no "last handled" copy of the spec: no handler here needs a diff
    (SimJob changes are compared with status.observedGeneration), so kopf sees
    every SimJob event as a creation with no creation handler, and writes nothing."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class EndlessBackoffs:
    """kopf's request retries, never exhausted: its default (1+1+2+...+21 s, ~54 s in
    all) runs out during a longer API server outage, and kopf then stops the operator.
    Iterable again for every request (not a one-shot generator)."""

    FIRST = (1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0)
    THEN = 30.0

    def __iter__(self) -> Iterator[float]:
        yield from self.FIRST
        while True:
            yield self.THEN


def configure(settings: kopf.OperatorSettings) -> None:
    """Operator settings (also used by tests)."""
    settings.persistence.finalizer = c.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=c.KOPF_ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = NoDiffBase()
    # A watch that silently stalls is re-established (the anchors' kopf caveat).
    settings.watching.server_timeout = SETTINGS.timings.watch_server_timeout
    settings.watching.client_timeout = SETTINGS.timings.watch_client_timeout
    # An API server outage of any length is waited out, never a reason to exit.
    settings.networking.error_backoffs = EndlessBackoffs()
    # Watch only our Jobs: the API server filters, so other Jobs cost nothing.
    settings.watching.label_selectors[JOBS] = c.LABEL_UID
    # kopf posts Events only for warnings and errors; phase Events are ours.
    settings.posting.level = logging.WARNING
    # One operator at a time (see docs/operator.md); no peering objects needed.
    settings.peering.standalone = True
    # kopf's per-handler "succeeded" lines carry no uid/phase and, for Job events,
    # no information: our own lines (logs.SimJobLogger) say what happened.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure(settings)
    install_formatter()  # the identity prefix of log lines (core.logs)
    runtime = Runtime(Kube.connect())
    try:  # /metrics when $SIMJOB_METRICS_PORT asks for it; a bad port stops the start
        memo["exporter"] = await start_exporter(runtime)
    except (OSError, ValueError) as exc:
        raise kopf.PermanentError(f"cannot serve the metrics: {exc}") from exc
    runtime.start()
    memo["runtime"] = runtime


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime, exporter = memo.get("runtime"), memo.get("exporter")
    if isinstance(exporter, Exporter):
        await exporter.stop()
    if isinstance(runtime, Runtime):
        await runtime.stop()


@kopf.on.event(*SIMJOBS, id=c.HANDLER_SIMJOB_EVENT)
async def simjob_event(
    type: str | None, namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    runtime, key = _runtime(memo), (namespace or "", name)
    if type == "DELETED":
        runtime.forget(key)
        runtime.admitter.slot_freed()  # gone, e.g. its finalizer was removed by hand
        return
    record = runtime.cache.observe(body)
    if record is not None and simjob_event_wanted(type, body):
        runtime.queue.add(key, Sighting(simjob=record.body))
    elif record is not None:
        runtime.admitter.trigger()  # e.g. kopf's finalizer arrived: it may be decided now


@kopf.on.delete(*SIMJOBS, id=c.HANDLER_CLEANUP, backoff=SETTINGS.timings.cleanup_retry)
async def simjob_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # Poll here rather than raising TemporaryError: no retry bookkeeping is written
    # to the object, and the wait is bounded, so a deletion never hangs forever
    # (after the bound the Job is left to the garbage collector).
    runtime = _runtime(memo)
    deadline = asyncio.get_running_loop().time() + SETTINGS.timings.cleanup_timeout
    while not await runtime.reconciler.finalize(SimJobRecord.from_body(body)):
        if asyncio.get_running_loop().time() > deadline:
            logger.error(
                "%s/%s: the Job or its pods are still there after %.0f s; releasing "
                "the SimJob (garbage collection removes the Job)",
                body.metadata.namespace,
                body.metadata.name,
                SETTINGS.timings.cleanup_timeout,
            )
            return
        await asyncio.sleep(SETTINGS.timings.stop_poll)


@kopf.on.event(*JOBS, labels={c.LABEL_UID: kopf.PRESENT}, id=c.HANDLER_JOB_EVENT)
async def job_event(
    type: str | None, namespace: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    owner = owning_simjob(body)
    if owner is not None:
        runtime, key = _runtime(memo), (namespace or "", owner)
        seen = Seen.of(type, body)
        runtime.jobs[key] = seen
        runtime.queue.add(key, Sighting(simjob=runtime.cache.body(key), backend=seen))


@kopf.on.event(*SIMTIERS, id=c.HANDLER_TIER_EVENT)
async def tier_event(
    type: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    runtime = _runtime(memo)
    runtime.tiers.update(name, None if type == "DELETED" else body)
    runtime.admitter.tier_changed()  # a new or bigger tier may free slots
