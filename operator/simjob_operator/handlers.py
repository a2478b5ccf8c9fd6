"""kopf handlers: thin adapters from kopf's watches to the ``runtime.Runtime``.

SimJob create/resume/spec-update events and a resync timer put the SimJob into
the reconcile queue; batch/v1 Job events (only Jobs labelled simjob.io/uid,
filtered by the API server) enqueue the owning SimJob, so phases follow pods
within a second; SimTier events refresh the tier cache and re-run admission.
Deletion runs ``Reconciler.finalize`` until the Job and pods are gone. kopf
keeps its own bookkeeping in annotations under ``kopf.simjob.io`` (never in
status, which the operator writes itself) and uses ``simjob.io/cleanup`` as
its finalizer. Imported by ``main``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from . import constants as c
from .kube import Kube
from .phases import is_terminal
from .runtime import Runtime

SIMJOBS = (c.GROUP, c.VERSION, c.SIMJOB_PLURAL)
SIMTIERS = (c.GROUP, c.VERSION, c.SIMTIER_PLURAL)
JOBS = ("batch", "v1", "jobs")
logger = logging.getLogger("simjob_operator.handlers")


def _runtime(memo: kopf.Memo) -> Runtime:
    runtime = memo.get("runtime")
    if not isinstance(runtime, Runtime):
        raise kopf.TemporaryError("the operator runtime is not started yet", delay=1)
    return runtime


def configure(settings: kopf.OperatorSettings) -> None:
    """Operator settings (also used by tests)."""
    settings.persistence.finalizer = c.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=c.KOPF_ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=c.KOPF_ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # A watch that silently stalls is re-established (the anchors' kopf caveat).
    settings.watching.server_timeout = c.WATCH_SERVER_TIMEOUT_SECONDS
    settings.watching.client_timeout = c.WATCH_CLIENT_TIMEOUT_SECONDS
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
    runtime = Runtime(Kube.connect())
    runtime.start()
    memo["runtime"] = runtime


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.get("runtime")
    if isinstance(runtime, Runtime):
        await runtime.stop()


@kopf.on.create(*SIMJOBS, id=c.HANDLER_RECONCILE)
@kopf.on.resume(*SIMJOBS, id=c.HANDLER_RESUME)
@kopf.on.update(*SIMJOBS, field="spec", id=c.HANDLER_SPEC_CHANGED)
async def simjob_changed(
    namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    _runtime(memo).queue.add((namespace or "", name), body)


def _not_finished(status: kopf.Status, **_: Any) -> bool:
    return not is_terminal(status.get("phase"))


@kopf.timer(
    *SIMJOBS,
    id=c.HANDLER_RESYNC,
    interval=c.RESYNC_INTERVAL_SECONDS,
    idle=c.RESYNC_IDLE_SECONDS,
    when=_not_finished,
)
async def resync(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    _runtime(memo).queue.add((namespace or "", name))


@kopf.on.delete(*SIMJOBS, id=c.HANDLER_CLEANUP)
async def simjob_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # Poll here rather than raising TemporaryError: no retry bookkeeping is written
    # to the object, and the wait is bounded, so a deletion never hangs forever
    # (after the bound the Job is left to the garbage collector).
    runtime = _runtime(memo)
    deadline = asyncio.get_running_loop().time() + c.CLEANUP_TIMEOUT_SECONDS
    while not await runtime.reconciler.finalize(body):
        if asyncio.get_running_loop().time() > deadline:
            logger.error(
                "%s/%s: the Job or its pods are still there after %.0f s; releasing "
                "the SimJob (garbage collection removes the Job)",
                body.metadata.namespace,
                body.metadata.name,
                c.CLEANUP_TIMEOUT_SECONDS,
            )
            return
        await asyncio.sleep(c.STOP_POLL_SECONDS)


@kopf.on.event(*JOBS, labels={c.LABEL_UID: kopf.PRESENT}, id=c.HANDLER_JOB_EVENT)
async def job_event(namespace: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    for ref in body.metadata.get("ownerReferences") or []:
        if ref.get("kind") == c.SIMJOB_KIND and ref.get("apiVersion", "").startswith(c.GROUP):
            _runtime(memo).queue.add((namespace or "", ref["name"]))


@kopf.on.event(*SIMTIERS, id=c.HANDLER_TIER_EVENT)
async def tier_event(
    type: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    runtime = _runtime(memo)
    runtime.tiers.update(name, None if type == "DELETED" else body)
    runtime.admitter.trigger()  # a new or bigger tier may free slots
