"""The batched poller of one SlurmCluster, and its ``Reachable`` condition.

One ``ClusterPoller`` per SlurmCluster (an asyncio task of ``slurm_backend``). Every
``spec.pollIntervalSeconds`` it asks Slurm for the states of ALL the jobs it tracks
with one ``SlurmClient.query`` per login (one ``squeue``, plus one ``sacct`` for the jobs
that left squeue) — never one call per job — keeps the answers in a cache and puts
every SimJob whose job changed into the reconcile queue (``enqueue``). ``observe``
reads that cache; a job id the cache does not know yet (just submitted, adopted, or
after a restart) is polled early (``SLURM_EARLY_POLL_DELAY_SECONDS``, so the ids that
arrive together share one call) and ``state`` waits for that answer. Finished jobs are
no longer queried (their state is final); their cached state is kept a while for the
reconcile that records it. With nothing to track, ``scontrol ping`` tells whether
slurmctld answers.

Every answer or failure (polls, and the backend's submits and cancels through
``report``) sets the wanted ``Reachable`` condition; the poller task writes it to the
SlurmCluster's status when it changes (``lastTransitionTime`` moves with its status).
Neighbours: ``slurm_sites`` (clients), ``slurm_api`` (status writes), ``slurm_backend``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.slurmcluster import SlurmClusterCondition
from simjob_operator.backends.slurm.api import SlurmApi
from simjob_operator.backends.slurm.sites import DEFAULT_LOGIN, Login, Site, SiteError, Sites
from simjob_operator.controller.workqueue import Key
from simjob_operator.core.records import format_time
from simjob_operator.core.settings import DEFAULT as SETTINGS
from slurm_bridge import CliSlurmClient, JobState, SlurmError, SlurmUnavailable

logger = logging.getLogger("simjob_operator.slurm")
# Finished states stay cached this long after they were read (the reconcile that
# records them comes within seconds; a miss is answered by a poll anyway).
FINISHED_STATE_TTL_SECONDS = 600.0
MESSAGE_LIMIT = 1024
WAIT_TIMEOUT_SECONDS = 2 * SETTINGS.slurm.command_timeout + 5.0
_POLL, _SOON, _STATUS = "poll", "soon", "status"


def _changed(old: JobState | None, new: JobState) -> bool:
    if old is None:
        return True
    fields = ("kind", "state", "reason", "exit_code", "signal", "start_time", "end_time")
    return any(getattr(old, name) != getattr(new, name) for name in fields)


def reachable_condition(
    ok: bool, message: str, *, previous: dict[str, object] | None, now: datetime, generation: int
) -> dict[str, object]:
    """The Reachable condition; its lastTransitionTime moves only with its status. Pure."""
    status = "True" if ok else "False"
    if previous is not None and previous.get("status") == status:
        transition = str(previous.get("lastTransitionTime") or format_time(now))
    else:
        transition = format_time(now)
    if ok:
        reason = Reason.SLURM_REACHABLE
    elif message.startswith(f"{Reason.SLURM_CONFIG}: "):
        reason, message = Reason.SLURM_CONFIG, message.removeprefix(f"{Reason.SLURM_CONFIG}: ")
    else:
        reason = Reason.SLURM_UNREACHABLE
    return SlurmClusterCondition(
        type=c.COND_REACHABLE,
        status=status,
        reason=reason,
        message=message[:MESSAGE_LIMIT],
        last_transition_time=transition,
        observed_generation=generation,
    ).to_api()


class ClusterPoller:
    """Tracks the Slurm jobs of one SlurmCluster and reads them all at once."""

    def __init__(
        self,
        name: str,
        *,
        sites: Sites,
        api: SlurmApi,
        enqueue: Callable[[Key], None],
        interval: float,
    ) -> None:
        self.name = name
        self._sites = sites
        self._api = api
        self._enqueue = enqueue
        self.interval = interval
        self._active: dict[Login, dict[str, Key]] = {}  # unfinished job ids, by login
        self._states: dict[str, tuple[JobState, float]] = {}
        self._waiters: dict[str, list[asyncio.Future[JobState]]] = {}
        self._wake: asyncio.Queue[str | None] = asyncio.Queue()
        self._soon_queued = False
        self._wanted: tuple[bool, str] | None = None
        self._written: tuple[bool, str, int] | None = None
        # Counters (logs, tests): poll rounds and the queries they sent.
        self.rounds = 0
        self.queries = 0

    # ------------------------------------------------------------------ tracking

    def tracked(self) -> int:
        return sum(len(ids) for ids in self._active.values())

    def track(self, login: Login, job_id: str, key: Key) -> None:
        """Poll ``job_id`` (of the SimJob ``key``) until it has finished."""
        cached = self._states.get(job_id)
        if cached is not None and cached[0].finished:
            return
        self._active.setdefault(login, {})[job_id] = key

    def cached(self, job_id: str) -> JobState | None:
        entry = self._states.get(job_id)
        return entry[0] if entry is not None else None

    def record(self, job_id: str, state: JobState) -> None:
        """A state learnt outside the poll (e.g. a confirmed cancel)."""
        self._states[job_id] = (state, time.monotonic())
        if state.finished:
            for ids in self._active.values():
                ids.pop(job_id, None)

    def forget(self, job_id: str) -> None:
        for ids in self._active.values():
            ids.pop(job_id, None)
        self._states.pop(job_id, None)

    async def state(self, login: Login, job_id: str, key: Key) -> JobState:
        """The job's state: cached, or from the next (early, shared) poll."""
        cached = self.cached(job_id)
        if cached is not None:
            self.track(login, job_id, key)
            return cached
        self.track(login, job_id, key)
        future: asyncio.Future[JobState] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(future)
        self.poll_soon()
        return await asyncio.wait_for(future, WAIT_TIMEOUT_SECONDS)

    def poll_soon(self) -> None:
        if not self._soon_queued:
            self._soon_queued = True
            self._wake.put_nowait(_SOON)

    def report(self, ok: bool, message: str) -> None:
        """What the last call to Slurm says about reachability (written by the task)."""
        wanted = (ok, message if not ok else "Slurm answered")
        if wanted != self._wanted:
            self._wanted = wanted
            self._wake.put_nowait(_STATUS)

    def stop(self) -> None:
        self._wake.put_nowait(None)

    # ------------------------------------------------------------------ the task

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        while True:
            try:
                item = await asyncio.wait_for(self._wake.get(), max(0.0, next_poll - loop.time()))
            except TimeoutError:
                item = _POLL
            if item is None:
                self._fail_waiters(None, SlurmUnavailable("the operator is stopping"))
                return
            if item == _SOON:
                self._soon_queued = False
                next_poll = min(next_poll, loop.time() + SETTINGS.slurm.early_poll_delay)
                continue
            if item == _POLL:
                try:
                    await self._round()
                except Exception as exc:
                    logger.exception("[SlurmCluster %s] poll failed", self.name)
                    self._fail_waiters(None, SlurmUnavailable(f"poll failed: {exc}"))
                next_poll = loop.time() + self.interval
            try:
                await self._write_status()
            except Exception:  # e.g. the API server unreachable: the poller must live on
                logger.exception("[SlurmCluster %s] status write failed", self.name)

    async def _round(self) -> None:
        self.rounds += 1
        self._expire()
        site = await self._sites.get(self.name)
        if site is None:
            self._fail_waiters(None, SiteError(Reason.UNKNOWN_SLURM_CLUSTER, self.name))
            return
        groups = {login: dict(ids) for login, ids in self._active.items() if ids}
        if not groups:
            await self._probe(site)
            return
        for login, ids in groups.items():
            await self._query(site, login, ids)

    async def _query(self, site: Site, login: Login, ids: dict[str, Key]) -> None:
        try:
            client = await self._sites.client(site, login)
        except SiteError as exc:
            logger.warning("[SlurmCluster %s] %s: %s", self.name, login, exc.message)
            if login == DEFAULT_LOGIN:
                self.report(False, f"{Reason.SLURM_CONFIG}: {exc.message}")
            self._fail_waiters(ids, exc)
            return
        except ApiException as exc:
            logger.warning("[SlurmCluster %s] reading %s failed: %s", self.name, login, exc)
            self._fail_waiters(ids, SlurmUnavailable(f"reading credentials failed: {exc}"))
            return
        self.queries += 1
        try:
            states = await client.query(list(ids))
        except SlurmError as exc:
            logger.warning(
                "[SlurmCluster %s] query of %d jobs failed: %s", self.name, len(ids), exc.message
            )
            self.report(False, exc.message)
            self._fail_waiters(ids, exc)
            return
        self.report(True, "")
        now = time.monotonic()
        for job_id, state in states.items():
            old = self.cached(job_id)
            self._states[job_id] = (state, now)
            key = ids.get(job_id)
            if state.finished:
                self._active.get(login, {}).pop(job_id, None)
            if key is not None and _changed(old, state):
                self._enqueue(key)
            for future in self._waiters.pop(job_id, []):
                if not future.done():
                    future.set_result(state)
        logger.debug("[SlurmCluster %s] polled %d jobs (%s)", self.name, len(ids), login)

    async def _probe(self, site: Site) -> None:
        try:
            client = await self._sites.client(site, DEFAULT_LOGIN)
        except SiteError as exc:
            self.report(False, f"{Reason.SLURM_CONFIG}: {exc.message}")
            return
        if not isinstance(client, CliSlurmClient):
            return  # pyslurm: reachability is learnt from real calls only
        try:
            result = await client.runner.run(["scontrol", "ping"], timeout_s=30.0)
        except SlurmUnavailable as exc:
            self.report(False, exc.message)
            return
        if result.ok and "is UP" in result.stdout:
            self.report(True, "")
        else:
            self.report(False, (result.stdout.strip() or result.describe()).splitlines()[0])

    def _fail_waiters(self, ids: dict[str, Key] | None, error: Exception) -> None:
        for job_id in list(self._waiters) if ids is None else list(ids):
            for future in self._waiters.pop(job_id, []):
                if not future.done():
                    future.set_exception(error)

    def _expire(self) -> None:
        cutoff = time.monotonic() - FINISHED_STATE_TTL_SECONDS
        for job_id, (state, seen) in list(self._states.items()):
            if state.finished and seen < cutoff:
                del self._states[job_id]

    async def _write_status(self) -> None:
        if self._wanted is None:
            return
        site = self._sites.cached(self.name)
        if site is None:
            return
        ok, message = self._wanted
        if self._written == (ok, message, site.generation):
            return
        previous = next(
            (
                cond
                for cond in site.status.get("conditions") or []
                if cond.get("type") == c.COND_REACHABLE
            ),
            None,
        )
        condition = reachable_condition(
            ok, message, previous=previous, now=datetime.now(UTC), generation=site.generation
        )
        status = {"conditions": [condition], "observedGeneration": site.generation}
        try:
            body = await self._api.patch_cluster_status(self.name, status)
        except ApiException as exc:
            logger.warning("[SlurmCluster %s] status write failed: %s", self.name, exc)
            return
        if body is not None:
            self._sites.update(body)
        self._written = (ok, message, site.generation)
        logger.info(
            "[SlurmCluster %s] Reachable=%s %s", self.name, condition["status"], message or ""
        )
