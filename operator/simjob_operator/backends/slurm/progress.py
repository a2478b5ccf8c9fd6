"""Progress of running Slurm jobs: the newest ``SIMJOB_PROGRESS`` line of their output.

``SlurmProgress`` is a task of the Slurm backend. ``track`` (by ``follow``, called by
``backend.observe`` with what it observed, while a job runs) follows the batch output
file ``simjob-<jobid>.out`` in the job's run directory; ``untrack`` (the job ended, the
SimJob went away) stops. The jobs are grouped by where their files are (SlurmCluster and
login): a group's due jobs are read together with ONE command
(``slurm_bridge.tails.last_marked_lines``: one ``sh -c`` over all the files, each read
only at its tail, never through a symlink), and a group is read at most once per its
shortest progress interval (the grant's ``progressIntervalSeconds``, default 10 s). So N
running jobs on a cluster cost one command per interval, not N. A job's first read comes
one interval after it is tracked (a short run costs none), a job is read at most once
per its own interval, and one that never printed a progress line is read ever less often
(up to 32 intervals apart). A report goes to ``notify`` only when it changed; the
reconciler writes it (``core.pacing.progress_wanted``: at most one status write per
interval). Reads that fail are logged and retried next round. Neighbours: ``backend``
(track/untrack), ``rundir`` (the layout, ``place_of``), ``sites`` (the clients),
``core.progress`` (the protocol), ``controller.runtime``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from simjob_operator.backends.slurm.credentials import Login
from simjob_operator.backends.slurm.jobs import login_of
from simjob_operator.backends.slurm.rundir import place_of
from simjob_operator.backends.slurm.sites import SiteError, Sites
from simjob_operator.core.observations import Observation, ObservedState
from simjob_operator.core.progress import PREFIX, ProgressReport, parse_line
from simjob_operator.core.view import Key, SimJobRecord
from simjob_operator.kube.seam import KubeError
from slurm_bridge import InvalidJobSpec, SlurmError
from slurm_bridge.scripts import OUTPUT_PATTERN
from slurm_bridge.tails import last_marked_lines

logger = logging.getLogger("simjob_operator.progress")
SILENT_BACKOFF_STEPS = 5
Group = tuple[str, Login]  # (SlurmCluster, login)


@dataclasses.dataclass
class _Tracked:
    group: Group
    run_dir: str
    job_id: str
    interval: float
    due: float
    last: ProgressReport | None = None
    silent: int = 0  # reads in a row that found no progress line


class SlurmProgress:
    def __init__(
        self,
        sites: Sites,
        notify: Callable[[Key, ProgressReport], None],
        *,
        tick: float = 1.0,
        timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sites = sites
        self._notify = notify
        self._tick = tick
        self._timeout = timeout_s
        self._clock = clock
        self._tracked: dict[Key, _Tracked] = {}
        self._next_round: dict[Group, float] = {}
        self._stop: asyncio.Queue[bool] = asyncio.Queue()
        self.commands = 0  # commands run (tests, benchmarks: the cost of progress)

    def track(
        self, key: Key, cluster: str, login: Login, run_dir: str, job_id: str, interval: float
    ) -> None:
        entry = self._tracked.get(key)
        group = (cluster, login)
        if entry is None or (entry.job_id, entry.run_dir, entry.group) != (job_id, run_dir, group):
            due = self._clock() + interval
            self._tracked[key] = _Tracked(group, run_dir, job_id, interval, due=due)
            self._next_round.setdefault(group, due)
        else:
            entry.interval = interval

    def follow(
        self, record: SimJobRecord, cluster: str, job_id: str, run_dir: str | None, obs: Observation
    ) -> None:
        """Track the job of ``record`` while ``obs`` says it runs (with the grant's
        interval), else stop; a job without a run directory has no progress."""
        if run_dir is None or obs.state != ObservedState.RUNNING or obs.still_running:
            self.untrack(record.key)
            return
        grant = record.status.grant
        interval = float((grant.progress_interval_seconds if grant is not None else None) or 10)
        self.track(record.key, cluster, login_of(record), run_dir, job_id, interval)

    def untrack(self, key: Key) -> None:
        entry = self._tracked.pop(key, None)
        if entry is not None and not any(e.group == entry.group for e in self._tracked.values()):
            self._next_round.pop(entry.group, None)

    def tracked(self) -> int:
        return len(self._tracked)

    def stop(self) -> None:
        self._stop.put_nowait(True)

    async def run(self) -> None:
        while True:
            try:
                if await asyncio.wait_for(self._stop.get(), self._tick):
                    return
            except TimeoutError:
                await self.read_due()

    async def read_due(self) -> None:
        """One tick: read each group whose round has come (one command per group)."""
        now = self._clock()
        for group, next_round in list(self._next_round.items()):
            if next_round > now:
                continue
            entries = {k: e for k, e in self._tracked.items() if e.group == group}
            if not entries:
                self._next_round.pop(group, None)
                continue
            self._next_round[group] = now + min(e.interval for e in entries.values())
            due = {k: e for k, e in entries.items() if e.due <= now}
            if due:
                await self._read(group, due, now)

    async def _read(self, group: Group, due: dict[Key, _Tracked], now: float) -> None:
        cluster, login = group
        try:
            site = await self._sites.get(cluster)
            if site is None:
                return
            runner, _work_dir = place_of(await self._sites.client(site, login))
            files = [(e.run_dir, OUTPUT_PATTERN.replace("%j", e.job_id)) for e in due.values()]
            self.commands += 1
            lines = await last_marked_lines(runner, files, PREFIX, timeout_s=self._timeout)
        except (SlurmError, SiteError, KubeError, InvalidJobSpec) as exc:
            logger.info("[SlurmCluster %s] reading progress of %d jobs failed: %s",
                        cluster, len(due), getattr(exc, "message", exc))  # fmt: skip
            return
        for (key, entry), line in zip(due.items(), lines, strict=True):
            if self._tracked.get(key) is not entry:
                continue  # untracked meanwhile
            report = parse_line(line) if line is not None else None
            # A job that never printed a progress line is read less and less often.
            entry.silent = entry.silent + 1 if report is None and entry.last is None else 0
            entry.due = now + entry.interval * 2 ** min(entry.silent, SILENT_BACKOFF_STEPS)
            if report is not None and report != entry.last:
                entry.last = report
                self._notify(key, report)
