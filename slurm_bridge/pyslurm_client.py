"""``PyslurmClient``: the ``SlurmClient`` protocol over pyslurm's API (local mode only).

pyslurm links against libslurm and pins one Slurm release: pyslurm 25.11.x needs Slurm
25.11 (``pyslurm_version_mismatch`` compares major.minor). Debian 12 ships Slurm 22.05,
so this client is tested against tests/unit/fake_pyslurm.py, a fake of exactly the surface
used here, and a real test runs only where versions match. The surface:

* ``pyslurm.JobSubmitDescription(**attrs).submit() -> int`` — the same batch script as
  the CLI client (scripts.py), written to ``<workDir>/simjob-<marker>.sh`` and passed by
  path (pyslurm treats ``script`` as a path when such a file exists; a long inline
  script would trip its ``Path.is_file`` check), with ``environment="NONE"`` (sbatch's
  ``--export=NONE``: pyslurm's default is ALL, the operator's own environment) and GPUs
  as ``gpus`` or ``gres_per_node`` per the site's ``GpuRequest``;
* ``pyslurm.Jobs.load()`` — ONE RPC for all jobs, filtered here (the batched query);
* ``pyslurm.Job(id).cancel()`` (ignores already finished/purged jobs itself);
* ``pyslurm.slurmctld.ping_primary()`` (a ``PingResponse`` with ``is_responding``) for
  ``ping``;
* ``pyslurm.db.Jobs.load(pyslurm.db.JobFilter(...))`` when slurmdbd accounting exists
  (``Accounting.SACCT``); jobcomp/filetxt has no API, so ``COMPLETION`` is refused;
* ``pyslurm.RPCError`` (``errno``, ``msg``) for every failure.

All calls run in one dedicated worker thread (libslurm keeps per-process state; calls are
serialised), so the event loop never blocks.
Neighbours: clients.py (protocol), scripts.py, states.py, cli.py (the CLI twin).
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import logging
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from slurm_bridge.checks import UNAVAILABLE_PATTERNS, UNSATISFIABLE_PATTERNS, checked_ids
from slurm_bridge.clients import DEFAULT_TAIL_BYTES, DEFAULT_TAIL_LINES, Accounting
from slurm_bridge.errors import (
    InvalidJobSpec,
    SlurmRejected,
    SlurmUnavailable,
    SlurmUnsatisfiable,
)
from slurm_bridge.parsing import tail_text
from slurm_bridge.scripts import OUTPUT_PATTERN, GpuRequest, batch_script, output_path
from slurm_bridge.specs import MARKER, JobSpec, check_work_dir, time_limit_minutes
from slurm_bridge.states import FINISHED_KINDS, JobKind, JobState, map_state, normalize_state
from slurm_bridge.tails import SYMLINK_NOTE

__all__ = ["PyslurmClient", "load_pyslurm", "pyslurm_version_mismatch"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
_VERSION = re.compile(r"(\d+)\.(\d+)")


def load_pyslurm() -> ModuleType:
    """Import pyslurm, or raise ``SlurmUnavailable`` saying why it cannot be used."""
    try:
        return importlib.import_module("pyslurm")
    except ImportError as exc:
        raise SlurmUnavailable(
            f"the pyslurm client needs the `pyslurm` package built for this site's Slurm "
            f"release (pyslurm X.Y.* needs Slurm X.Y): {exc}"
        ) from exc


def pyslurm_version_mismatch(pyslurm_version: str, slurm_version: str) -> str | None:
    """Why pyslurm ``pyslurm_version`` cannot drive Slurm ``slurm_version``; None if it can.

    pyslurm's version starts with the Slurm major.minor it was built for (25.11.0 →
    Slurm 25.11); libslurm's RPC protocol differs between those releases.
    """
    ours = _VERSION.search(pyslurm_version)
    theirs = _VERSION.search(slurm_version)
    if ours is None or theirs is None:
        return f"cannot compare pyslurm {pyslurm_version!r} with Slurm {slurm_version!r}"
    # pyslurm drops the leading zero of the minor (22.5.x for Slurm 22.05): compare ints.
    wanted = (int(ours.group(1)), int(ours.group(2)))
    if wanted != (int(theirs.group(1)), int(theirs.group(2))):
        return (
            f"pyslurm {pyslurm_version} is built for Slurm {wanted[0]}.{wanted[1]:02d}, "
            f"but this Slurm is {slurm_version}"
        )
    return None


class PyslurmClient:
    """The Slurm client over pyslurm (``pyslurm_module`` injectable for tests)."""

    def __init__(
        self,
        *,
        work_dir: str,
        accounting: Accounting | str = Accounting.NONE,
        lookback_days: int = 7,
        cancel_confirm_timeout: float = 30.0,
        cancel_poll_interval: float = 0.5,
        pyslurm_module: ModuleType | None = None,
        gpu_request: GpuRequest | str = GpuRequest.GRES,
    ) -> None:
        self.work_dir = check_work_dir(work_dir)
        self.gpu_request = GpuRequest(gpu_request)
        mode = Accounting(accounting)
        if mode not in (Accounting.NONE, Accounting.SACCT):
            raise ValueError(
                f"the pyslurm client supports accounting 'sacct' (slurmdbd) or 'none', "
                f"not {mode.value!r} (pyslurm has no jobcomp API)"
            )
        self._accounting = mode
        self._lookback = timedelta(days=lookback_days)
        self._cancel_timeout = cancel_confirm_timeout
        self._cancel_poll = cancel_poll_interval
        self._pyslurm: Any = pyslurm_module if pyslurm_module is not None else load_pyslurm()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyslurm")

    async def _call(self, what: str, func: Callable[[], T], *, refusal: bool = False) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, func)
        except self._pyslurm.RPCError as exc:
            message = f"pyslurm {what} failed: {getattr(exc, 'msg', None) or exc}"
            lowered = message.lower()
            if refusal and not any(p in lowered for p in UNAVAILABLE_PATTERNS):
                if any(p in lowered for p in UNSATISFIABLE_PATTERNS):
                    raise SlurmUnsatisfiable(message) from exc
                raise SlurmRejected(message) from exc
            raise SlurmUnavailable(message) from exc

    # -- submit ----------------------------------------------------------------------
    async def submit(self, spec: JobSpec) -> str:
        script = batch_script(spec)
        script_path = Path(self.work_dir) / f"simjob-{spec.marker}.sh"
        attrs: dict[str, object] = {
            "name": spec.marker,
            "script": str(script_path),
            "working_directory": spec.directory or self.work_dir,
            "standard_output": f"{spec.directory or self.work_dir}/{OUTPUT_PATTERN}",
            "nodes": 1,
            "ntasks": 1,
            "cpus_per_task": spec.cpus_per_task,
            "environment": "NONE",
        }
        if spec.gpus:
            if self.gpu_request is GpuRequest.GPUS:
                attrs["gpus"] = spec.gpus
            else:
                attrs["gres_per_node"] = f"gpu:{spec.gpus}"
        if spec.memory_mib is not None:
            attrs["memory_per_node"] = spec.memory_mib
        if spec.time_limit_seconds is not None:
            attrs["time_limit"] = str(time_limit_minutes(spec.time_limit_seconds))
        if spec.partition is not None:
            attrs["partitions"] = spec.partition
        if spec.qos is not None:
            attrs["qos"] = spec.qos
        if spec.account is not None:
            attrs["account"] = spec.account
        if spec.comment is not None:
            attrs["comment"] = spec.comment
        if spec.hold:
            attrs["priority"] = 0  # pyslurm's documented equivalent of --hold

        def write_and_submit() -> int:
            script_path.parent.mkdir(parents=True, exist_ok=True)
            script_path.write_text(script, encoding="utf-8")
            return int(self._pyslurm.JobSubmitDescription(**attrs).submit())

        try:
            job_id = await self._call("submit", write_and_submit, refusal=True)
        except OSError as exc:
            raise SlurmUnavailable(f"cannot write {script_path}: {exc}") from exc
        logger.info("submitted %s as Slurm job %s (pyslurm)", spec.marker, job_id)
        return str(job_id)

    # -- query -----------------------------------------------------------------------
    async def query(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        ids = checked_ids(job_ids, plain=True)
        if not ids:
            return {}
        wanted = set(ids)
        jobs = await self._call("Jobs.load", lambda: list(self._pyslurm.Jobs.load().values()))
        states = {str(job.id): _job_state(job, "pyslurm") for job in jobs if str(job.id) in wanted}
        missing = [job_id for job_id in ids if job_id not in states]
        if missing and self._accounting is Accounting.SACCT:
            db = self._pyslurm.db
            db_filter = db.JobFilter(ids=[int(job_id) for job_id in missing])
            db_jobs = await self._call(
                "db.Jobs.load", lambda: list(db.Jobs.load(db_filter).values())
            )
            for job in db_jobs:
                if str(job.id) in missing:
                    states[str(job.id)] = _job_state(job, "pyslurm.db")
        for job_id in missing:
            states.setdefault(job_id, JobState.missing(job_id, "pyslurm"))
        return {job_id: states[job_id] for job_id in ids}

    # -- cancel ----------------------------------------------------------------------
    async def cancel(self, job_id: str) -> JobState:
        (job_id,) = checked_ids([job_id], plain=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._cancel_timeout
        while True:
            await self._call("cancel", lambda: self._pyslurm.Job(int(job_id)).cancel())
            state = (await self.query([job_id]))[job_id]
            if state.finished or state.kind is JobKind.MISSING or loop.time() >= deadline:
                return state
            await asyncio.sleep(self._cancel_poll)

    # -- find ------------------------------------------------------------------------
    async def find(self, marker: str) -> str | None:
        if not isinstance(marker, str) or not MARKER.fullmatch(marker):
            raise InvalidJobSpec(f"marker {marker!r} is not a valid marker")
        uid = os.getuid()
        jobs = await self._call("Jobs.load", lambda: list(self._pyslurm.Jobs.load().values()))
        found = sorted(int(job.id) for job in jobs if job.name == marker and job.user_id == uid)
        if not found and self._accounting is Accounting.SACCT:
            db = self._pyslurm.db
            since = datetime.now(UTC) - self._lookback
            db_filter = db.JobFilter(names=[marker], users=[uid], start_time=since)
            db_jobs = await self._call(
                "db.Jobs.load", lambda: list(db.Jobs.load(db_filter).values())
            )
            found = sorted(int(job.id) for job in db_jobs if job.name == marker)
        if len(found) > 1:
            logger.warning("marker %s names Slurm jobs %s; adopting the first", marker, found)
        return str(found[0]) if found else None

    # -- output ----------------------------------------------------------------------
    async def output_tail(
        self,
        job_id: str,
        lines: int = DEFAULT_TAIL_LINES,
        max_bytes: int = DEFAULT_TAIL_BYTES,
        *,
        directory: str | None = None,
    ) -> str:
        (job_id,) = checked_ids([job_id], plain=True)
        if lines <= 0 or max_bytes <= 0:
            return ""
        path = Path(output_path(directory or self.work_dir, job_id))

        def read_tail() -> tuple[bytes, bool]:
            try:  # O_NOFOLLOW: a symlink the job planted there is never read through
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                with os.fdopen(fd, "rb") as handle:
                    size = handle.seek(0, os.SEEK_END)
                    handle.seek(max(0, size - max_bytes))
                    return handle.read(max_bytes), size > max_bytes
            except FileNotFoundError:
                return b"", False
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return SYMLINK_NOTE.encode(), False
                raise

        try:
            data, truncated = await asyncio.to_thread(read_tail)
        except OSError as exc:
            raise SlurmUnavailable(f"cannot read {path}: {exc}") from exc
        return tail_text(data, lines, max_bytes, truncated=truncated)

    # -- ping ------------------------------------------------------------------------
    async def ping(self) -> None:
        response = await self._call("ping", lambda: self._pyslurm.slurmctld.ping_primary())
        if not getattr(response, "is_responding", False):
            host = getattr(response, "hostname", "?")
            raise SlurmUnavailable(f"pyslurm ping: slurmctld on {host} is not responding")

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _job_state(job: Any, source: str) -> JobState:
    """A ``JobState`` from a pyslurm ``Job`` or ``db.Job`` (epoch times, None when unset)."""
    state = normalize_state(str(job.state or ""))
    kind = map_state(state)
    finished = kind in FINISHED_KINDS
    reason = job.state_reason
    return JobState(
        job_id=str(job.id),
        state=state,
        kind=kind,
        exit_code=_int_or_none(job.exit_code) if finished else None,
        signal=_int_or_none(job.exit_code_signal) if finished else None,
        reason=None if reason in (None, "", "None") else str(reason),
        start_time=_time(job.start_time) if kind is not JobKind.QUEUED else None,
        end_time=_time(job.end_time) if finished else None,
        source=source,
        elapsed_seconds=_int_or_none(getattr(job, "elapsed_time", None)),
        alloc_cpus=_int_or_none(getattr(job, "cpus", None)),
    )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: object) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, tz=UTC)
    return None
