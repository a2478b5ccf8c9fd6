"""The end of a SimJob: counted once in the usage ledger, then deleted after its TTL.

``Accounting.account`` folds a finished SimJob into the SimUsage of its owner, tier
and day (``core.ledger``) exactly once, across kill -9 at any line, conflicts and
restarts, by a two-step protocol whose every write carries a resourceVersion
precondition:

1. read the ledger (create it empty if missing), THEN read the SimJob;
   the SimJob is gone -> nothing to do (it was counted before its finalizer went);
   it carries its marker (``status.accountedIn``) -> done;
2. its uid is not in the ledger's ``pending`` -> fold: totals += its usage and its uid
   into ``pending``, one status PATCH of the ledger (409 -> start again at 1);
3. write the marker into the SimJob's status (409 -> start again at 1);
4. remove the uid from ``pending`` (best effort: what a crash leaves there is swept by
   a later fold once ``pending`` holds ``SWEEP_AT`` entries).

Why it is exact: a fold happens only when the uid is neither pending nor marked, as
seen by reads made after the ledger version the fold is conditioned on; the marker is
written only after the fold is stored and is never removed, and a uid leaves
``pending`` only once its marker is stored (or its SimJob is gone). A crash before 2's
write -> folded later; between 2 and 3 -> the uid is pending: only the marker is
written; after 3 -> done. ``finished`` is what the reconciler calls for a finished
SimJob: account it, then hand it to ``controller.retention`` (outputs, the TTL purge),
so the purge never removes an uncounted SimJob; nor does the on.delete handler, which
calls ``account`` before it lets the finalizer go. docs/accounting.md.
Neighbours: ``core.ledger`` (pure), ``kube.usage`` (the calls), ``controller.reconciler``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from simjob_operator.api.simusage import MAX_PENDING, SimUsageSpec, SimUsageStatus
from simjob_operator.core.ledger import (
    charge_of,
    fold,
    is_pending,
    ledger_body,
    ledger_name,
    matches,
    unpend,
)
from simjob_operator.core.logs import ObjectLogger
from simjob_operator.core.phases import is_terminal
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import AlreadyExists, Body, Conflict, KubeApi, Refused

SWEEP_AT = 32  # pending entries left by crashes are looked up once there are this many
# A test seam: called with "folded" / "marked" after that step's write, where a crash
# matters (tests/support/crash_hooks.py). Never set in production.
AfterStep = Callable[[str, SimJobRecord], None]
Then = Callable[[SimJobRecord, ObjectLogger], Awaitable[float | None]]


@dataclasses.dataclass
class Turn:
    """The SimJobs of one ledger taking turns in this process (``Accounting._turn``)."""

    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    users: int = 0  # holding or waiting for the lock
    ledger: Body | None = None  # as the last write stored it (None: read it)
    marked: set[str] = dataclasses.field(default_factory=set)  # marked, still pending


class Accounting:
    def __init__(
        self,
        *,
        kube: KubeApi,
        now: Callable[[], datetime],
        then: Then,
        on_stored: Callable[[dict[str, Any]], object] | None = None,
        attempts: int = 5,
    ) -> None:
        self._kube = kube
        self._now = now
        self._then = then
        self._on_stored = on_stored
        self._attempts = attempts
        self.after_step: AfterStep | None = None
        self._turns: dict[tuple[str, str], Turn] = {}

    async def finished(self, record: SimJobRecord, log: ObjectLogger) -> float | None:
        """A finished SimJob: count it, then hand it on (``controller.retention``: the
        TTL purge). Returns seconds until it must be looked at again."""
        accounted = await self.account(record, log)
        if accounted is None:
            return None  # gone meanwhile
        if accounted.status.accounted_in is None:
            return 1.0  # lost every race this time: again soon, never purged uncounted
        return await self._then(accounted, log)

    # ------------------------------------------------------------------ the ledger

    async def account(self, record: SimJobRecord, log: ObjectLogger) -> SimJobRecord | None:
        """Count a finished SimJob once. Returns it as stored with its marker (or without
        one after ``attempts`` lost races), None if it is gone."""
        if record.status.accounted_in is not None or not is_terminal(record.phase):
            return record
        charge = charge_of(record)
        name = ledger_name(charge.owner, charge.tier, charge.period)
        async with self._turn((record.namespace, name)) as turn:
            result: SimJobRecord | None = record
            for _ in range(self._attempts):
                try:
                    result = await self._account_once(record, name, log, turn)
                    break
                except Conflict:
                    turn.ledger = None  # read it again
                    log.debug("ledger %s or the SimJob changed meanwhile; again", name)
            if turn.users == 1 and turn.marked:  # nobody waits to fold them away: now
                await self._unpend(record.namespace, name, turn, log)
            return result

    @contextlib.asynccontextmanager
    async def _turn(self, key: tuple[str, str]) -> AsyncIterator[Turn]:
        """One SimJob at a time per ledger in this process: SimJobs finishing together
        would otherwise mostly lose 409 races on the one object (the preconditions, not
        this lock, make it correct). Taking turns also lets each fold reuse the ledger
        as the previous one stored it and drop the uids it marked from ``pending``."""
        turn = self._turns.setdefault(key, Turn())
        turn.users += 1
        try:
            async with turn.lock:
                yield turn
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[key]

    async def _account_once(
        self, record: SimJobRecord, name: str, log: ObjectLogger, turn: Turn
    ) -> SimJobRecord | None:
        ledger = turn.ledger or await self._ledger(record, name)
        turn.ledger = ledger
        body = await self._kube.get_simjob(record.namespace, record.name)  # after the ledger
        if body is None or (body.get("metadata") or {}).get("uid") != record.uid:
            return None  # gone: it was counted before its finalizer was removed
        fresh = SimJobRecord.from_plain(body)
        if fresh.status.accounted_in is not None:
            return fresh
        charge = charge_of(fresh)
        status = SimUsageStatus.model_validate(ledger.get("status") or {})
        if not is_pending(status, charge.uid):
            drop = set(turn.marked)  # marked by the turns before this one
            if len(status.pending) - len(drop) >= SWEEP_AT:
                drop |= await self._sweep(record.namespace, status)
            if len(status.pending) - len(drop) >= MAX_PENDING:
                raise Conflict(f"SimUsage {name}: {MAX_PENDING} SimJobs pending; again later")
            new = fold(status, charge, now=self._now(), drop=drop)
            turn.ledger = await self._kube.patch_simusage_status(
                record.namespace,
                name,
                new.to_api(),
                resource_version=str(ledger["metadata"]["resourceVersion"]),
            )
            turn.marked -= drop
            log.info(
                "counted in SimUsage %s (%s, %s CPU-s)", name, charge.outcome, charge.cpu_seconds
            )
            self._step("folded", fresh)
        marked = await self._kube.patch_simjob_status(
            record.namespace,
            record.name,
            {"accountedIn": name},
            resource_version=fresh.resource_version,
        )
        if self._on_stored is not None:
            self._on_stored(marked)
        stored = SimJobRecord.from_plain(marked)
        turn.marked.add(record.uid)  # unpended by the next fold, or at the end of the turns
        self._step("marked", stored)
        return stored

    async def _ledger(self, record: SimJobRecord, name: str) -> Body:
        """The ledger object of ``record``'s charge, created empty when missing."""
        body = await self._kube.get_simusage(record.namespace, name)
        if body is None:
            try:
                body = await self._kube.create_simusage(
                    record.namespace, ledger_body(record.namespace, charge_of(record))
                )
            except AlreadyExists:
                body = await self._kube.get_simusage(record.namespace, name)
                if body is None:
                    raise Conflict(f"SimUsage {name} came and went") from None
        spec = SimUsageSpec.model_validate(body.get("spec") or {})
        if not matches(spec, charge_of(record)):
            raise Refused(f"SimUsage {name} belongs to {spec.owner}/{spec.tier}/{spec.period}")
        return body

    async def _unpend(self, namespace: str, name: str, turn: Turn, log: ObjectLogger) -> None:
        """Take the uids marked in these turns out of ``pending`` in one write; a lost race
        re-reads; what a crash leaves is swept by a later fold."""
        for _ in range(self._attempts):
            ledger = turn.ledger or await self._kube.get_simusage(namespace, name)
            if ledger is None:
                break
            status = SimUsageStatus.model_validate(ledger.get("status") or {})
            uids = {uid for uid in turn.marked if is_pending(status, uid)}
            if not uids:
                break
            try:
                turn.ledger = await self._kube.patch_simusage_status(
                    namespace,
                    name,
                    unpend(status, uids).to_api(),
                    resource_version=str(ledger["metadata"]["resourceVersion"]),
                )
                break
            except Conflict:
                turn.ledger = None
        else:
            log.info("SimUsage %s: %d marked uid(s) stay pending until a later fold sweeps them",
                     name, len(turn.marked))  # fmt: skip
        turn.marked.clear()

    async def _sweep(self, namespace: str, status: SimUsageStatus) -> set[str]:
        """Pending uids whose SimJob is marked or gone (safe to drop: never folded again)."""
        drop: set[str] = set()
        for entry in status.pending:
            body = await self._kube.get_simjob(namespace, entry.name)
            gone = body is None or (body.get("metadata") or {}).get("uid") != entry.uid
            if gone or (body or {}).get("status", {}).get("accountedIn"):
                drop.add(entry.uid)
        return drop

    def _step(self, step: str, record: SimJobRecord) -> None:
        if self.after_step is not None:
            self.after_step(step, record)
