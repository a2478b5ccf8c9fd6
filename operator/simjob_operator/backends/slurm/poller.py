"""The batched poller of one SlurmCluster.

One ``ClusterPoller`` per SlurmCluster (an asyncio task kept by ``supervisor``).
Every ``spec.pollIntervalSeconds`` it asks Slurm for the states of ALL the jobs it
tracks with one ``SlurmClient.query`` per login (one ``squeue``, plus one ``sacct``
for the jobs that left squeue) — never one call per job — keeps the answers in a
cache and calls ``notify`` with the key of every SimJob whose job changed (the
reconcile queue). ``backend.observe`` reads that cache; a job id the cache does not
know yet (just submitted, adopted, or after a restart) is polled early
(``SlurmTimings.early_poll_delay``, so the ids that arrive together share one call)
and ``state`` waits for that answer. Finished jobs are no longer queried (their state
is final); their cached state is kept a while for the reconcile that records it.
With nothing to track, ``SlurmClient.ping`` tells whether slurmctld answers.

Reachability is not reported here: every client from ``sites.Sites`` is a
``reachability.ReportingClient``. The poller listens to its cluster's
``Reachability`` and its task writes the condition when it changes (only a
configuration problem of the cluster's own credentials, found before any call, is
reported here). Each query's outcome also goes to the cluster's
``certificates.CredentialWatch`` (``credentials``: expired SSH certificates, shown on
the cluster and its SimJobs); the jobs a poll saw end get their usage from accounting
in one more call (``measures.with_usage``). Neighbours: ``sites`` (clients),
``reachability``, ``certificates``, ``measures``, ``backend``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from simjob_operator import metrics
from simjob_operator.api.reasons import Reason
from simjob_operator.backends.slurm.certificates import CredentialWatch
from simjob_operator.backends.slurm.measures import with_usage
from simjob_operator.backends.slurm.sites import DEFAULT_LOGIN, Login, Site, SiteError, Sites
from simjob_operator.core.settings import DEFAULT as SETTINGS
from simjob_operator.core.settings import SlurmTimings
from simjob_operator.kube.seam import KubeApi, KubeError
from slurm_bridge import JobState, SlurmError, SlurmUnavailable

logger = logging.getLogger("simjob_operator.slurm")
Key = tuple[str, str]  # (namespace, name) of a SimJob
# Finished states stay cached this long after they were read (the reconcile that
# records them comes within seconds; a miss is answered by a poll anyway).
FINISHED_STATE_TTL_SECONDS = 600.0
_POLL, _SOON, _STATUS = "poll", "soon", "status"


def _changed(old: JobState | None, new: JobState) -> bool:
    if old is None:
        return True
    fields = ("kind", "state", "reason", "exit_code", "signal", "start_time", "end_time")
    return any(getattr(old, name) != getattr(new, name) for name in fields)


class ClusterPoller:
    """Tracks the Slurm jobs of one SlurmCluster and reads them all at once."""

    def __init__(
        self,
        name: str,
        *,
        sites: Sites,
        kube: KubeApi,
        notify: Callable[[Key], None],
        interval: float,
        settings: SlurmTimings = SETTINGS.slurm,
    ) -> None:
        self.name = name
        self._sites = sites
        self._kube = kube
        self._notify = notify
        self.interval = interval
        self._settings = settings
        self._active: dict[Login, dict[str, Key]] = {}  # unfinished job ids, by login
        self._states: dict[str, tuple[JobState, float]] = {}
        self._waiters: dict[str, list[asyncio.Future[JobState]]] = {}
        self._wake: asyncio.Queue[str | None] = asyncio.Queue()
        self._soon_queued = False
        self.reachability = sites.reachability(name)
        self.reachability.listen(lambda: self._wake.put_nowait(_STATUS))
        self.rounds = 0  # poll rounds (logs, tests)
        self.credentials = CredentialWatch(name, sites, notify)

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

    async def state(self, login: Login, job_id: str, key: Key) -> JobState:
        """The job's state: cached, or from the next (early, shared) poll. Raises what
        that poll met (``SlurmError``, ``SiteError``) or ``TimeoutError``."""
        cached = self.cached(job_id)
        self.track(login, job_id, key)
        if cached is not None:
            return cached
        future: asyncio.Future[JobState] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(future)
        self.poll_soon()
        timeout = 2 * self._settings.command_timeout + 5.0
        return await asyncio.wait_for(future, timeout)

    def poll_soon(self) -> None:
        if not self._soon_queued:
            self._soon_queued = True
            self._wake.put_nowait(_SOON)

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
                next_poll = min(next_poll, loop.time() + self._settings.early_poll_delay)
                continue
            if item == _POLL:
                try:
                    await self._round()
                except KubeError as exc:  # the API server is away: one line, no traceback
                    logger.warning("[SlurmCluster %s] poll failed: %s", self.name, exc.message)
                    self._fail_waiters(None, SlurmUnavailable(f"poll failed: {exc.message}"))
                except Exception as exc:
                    logger.exception("[SlurmCluster %s] poll failed", self.name)
                    self._fail_waiters(None, SlurmUnavailable(f"poll failed: {exc}"))
                next_poll = loop.time() + self.interval
            try:
                await self._write_status()
            except KubeError as exc:  # e.g. the API server unreachable: one line
                logger.warning("[SlurmCluster %s] status write failed: %s", self.name, exc.message)
            except Exception:  # the poller must live on
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
                self.reachability.misconfigured(exc.message)
            self._fail_waiters(ids, exc)
            return
        except KubeError as exc:
            logger.warning("[SlurmCluster %s] reading %s failed: %s", self.name, login, exc)
            self._fail_waiters(ids, SlurmUnavailable(f"reading credentials failed: {exc}"))
            return
        try:
            with metrics.slurm_poll(self.name):
                states = await client.query(list(ids))
        except SlurmError as exc:
            logger.warning(
                "[SlurmCluster %s] query of %d jobs failed: %s", self.name, len(ids), exc.message
            )
            self.credentials.failed(login, exc, ids.values())
            self._fail_waiters(ids, exc)
            return
        self.credentials.answered(login, ids.values())
        states = await with_usage(client, states, {job_id: self.cached(job_id) for job_id in ids})
        now = time.monotonic()
        for job_id, state in states.items():
            old = self.cached(job_id)
            self._states[job_id] = (state, now)
            key = ids.get(job_id)
            if state.finished:
                self._active.get(login, {}).pop(job_id, None)
            if key is not None and _changed(old, state):
                self._notify(key)
            for future in self._waiters.pop(job_id, []):
                if not future.done():
                    future.set_result(state)
        logger.debug("[SlurmCluster %s] polled %d jobs (%s)", self.name, len(ids), login)

    async def _probe(self, site: Site) -> None:
        """Nothing to query: does slurmctld answer? (The client reports the outcome.)"""
        try:
            client = await self._sites.client(site, DEFAULT_LOGIN)
        except SiteError as exc:
            self.reachability.misconfigured(exc.message)
            return
        except KubeError as exc:
            logger.warning("[SlurmCluster %s] reading credentials failed: %s", self.name, exc)
            return
        try:
            await client.ping()
        except SlurmUnavailable as exc:
            self.credentials.failed(DEFAULT_LOGIN, exc, ())
            logger.debug("[SlurmCluster %s] ping: %s", self.name, exc.message)
        else:
            self.credentials.answered(DEFAULT_LOGIN, ())

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
        site = self._sites.cached(self.name)
        if site is None:
            return
        self.credentials.show(self.reachability)
        body = await self.reachability.write(
            self._kube, generation=site.generation, status=site.status, now=datetime.now(UTC)
        )
        if body is not None:
            self._sites.update(body)
