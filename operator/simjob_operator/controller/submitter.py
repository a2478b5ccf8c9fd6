"""After a submit: recording the backend reference, or cancelling an orphan.

``record_reference`` writes ``status.backendRef`` (and the workspace, when only the
submit learnt it) with the usual resourceVersion precondition, re-reading on a
conflict. When the SimJob was deleted, replaced (another uid) or ended while its
backend object was being created, nobody else would ever track or stop that object:
it is cancelled here, with a few attempts while the backend does not answer, and
logged with its id when it cannot be. ``legacy_grant`` rebuilds the grant of a SimJob
admitted before grants were recorded. Used by ``controller.reconciler``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from simjob_operator.api.simjob import Grant
from simjob_operator.backends.base import Backend, BackendUnavailable, Submitted
from simjob_operator.core.logs import ObjectLogger
from simjob_operator.core.phases import is_terminal
from simjob_operator.core.view import Key, SimJobRecord
from simjob_operator.kube.seam import Conflict, Gone, Unavailable

TEMPORARY = (Unavailable, BackendUnavailable)
WriteReference = Callable[[SimJobRecord, Submitted, ObjectLogger], Awaitable[None]]
Read = Callable[[Key, ObjectLogger | None], Awaitable[SimJobRecord | None]]


def legacy_grant(record: SimJobRecord) -> Grant | None:
    """The grant of a SimJob admitted before grants were recorded (status.resources
    and effectiveMaxRuntimeSeconds are what it was admitted with)."""
    status = record.status
    if status.resources is None or status.effective_max_runtime_seconds is None:
        return None
    return Grant(
        cpu=status.resources.cpu,
        memory=status.resources.memory,
        gpu=status.resources.gpu,
        max_runtime_seconds=status.effective_max_runtime_seconds,
    )


async def record_reference(
    record: SimJobRecord,
    backend: Backend,
    result: Submitted,
    log: ObjectLogger,
    *,
    write: WriteReference,
    read: Read,
    attempts: int,
    cancel_attempts: int,
    backoff: float,
) -> None:
    current = record
    for _ in range(attempts):
        known = result.workspace is None or current.status.workspace == result.workspace
        if current.status.backend_ref == result.ref and known:
            return
        try:
            await write(current, result, log)
            return
        except Gone:
            break
        except Conflict:
            fresh = await read(record.key, log)
            if fresh is None or fresh.uid != record.uid or is_terminal(fresh.phase):
                break
            current = fresh
    else:
        log.warning("could not record %s (conflicts); the next pass adopts it", result.ref)
        return
    orphan = record.with_status(record.status.model_copy(update={"backend_ref": result.ref}))
    await cancel_orphan(orphan, backend, log, attempts=cancel_attempts, backoff=backoff)


async def cancel_orphan(
    record: SimJobRecord, backend: Backend, log: ObjectLogger, *, attempts: int, backoff: float
) -> None:
    for attempt in range(1, attempts + 1):
        try:
            gone = await backend.cancel(record)
        except TEMPORARY as exc:
            gone = False
            log.warning("cancelling %s failed: %s", backend.backend_id(record), exc)
        if gone:
            log.warning(
                "the SimJob went away while it was submitted; cancelled its %s",
                backend.backend_id(record),
            )
            return
        if attempt < attempts:
            await asyncio.sleep(backoff * 2 ** (attempt - 1))
    log.error(
        "%s outlived its SimJob and could not be cancelled after %d attempts; cancel it by hand",
        backend.backend_id(record),
        attempts,
    )
