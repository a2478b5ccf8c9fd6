"""Parsing what Slurm's commands print into ``JobState``s and settings (pure functions).

The CLI client asks for machine-readable output and parses it here:

* ``squeue --noheader --states=all --Format=JobID:|,State:|,exit_code:|,StartTime:|,
  EndTime:|,Reason:`` with ``SLURM_TIME_FORMAT=%s`` (epoch seconds, no time-zone
  guessing). ``exit_code`` is the raw wait status (``768`` = exit 3, ``15`` = SIGTERM).
  The only free-text field (Reason) comes last, so a ``|`` in it cannot shift columns.
* ``sacct --parsable2 --noheader`` (slurmdbd, or ``--completion`` for jobcomp/filetxt)
  with ``ExitCode`` as ``code:signal``; a job listed several times keeps its last record.
  The usage columns (``ElapsedRaw``, ``AllocCPUS``, ``AllocTRES``, ``MaxRSS``) follow the
  state ones and may be empty or absent; ``MaxRSS`` lives on step records (``123.batch``),
  whose largest value is folded into the job's record.
* ``scontrol show config`` (``Name = value`` lines) to detect what accounting exists.
* the tail of an output file, bounded in lines and bytes.

Neighbours: states.py (``map_state``/``JobState``), cli.py (runs the commands).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from slurm_bridge.states import (
    FINISHED_KINDS,
    JobKind,
    JobState,
    ListedJob,
    map_state,
    normalize_state,
)

__all__ = [
    "JOB_ID",
    "SACCT_FIELDS",
    "SQUEUE_FORMAT",
    "parse_config",
    "parse_elapsed",
    "parse_exit_code",
    "parse_listed",
    "parse_named_jobs",
    "parse_sacct",
    "parse_size_bytes",
    "parse_slurm_time",
    "parse_squeue",
    "parse_wait_status",
    "tail_text",
]

# A plain job id or an array task (123_4); never an option-like or comma-carrying string.
JOB_ID = re.compile(r"[0-9]{1,12}(?:_[0-9]{1,9})?")
SQUEUE_FORMAT = "JobID:|,State:|,exit_code:|,StartTime:|,EndTime:|,Reason:"
SACCT_FIELDS = (
    "JobID",
    "State",
    "ExitCode",
    "Start",
    "End",
    "ElapsedRaw",
    "AllocCPUS",
    "AllocTRES",
    "MaxRSS",
)
_STATE_FIELDS = 5  # JobID..End: what every record must have
STEP_ID = re.compile(r"(?P<job>[0-9]{1,12}(?:_[0-9]{1,9})?)\.[A-Za-z0-9_+-]+")
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_ELAPSED = re.compile(r"(?:(?P<d>\d+)-)?(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+)(?:\.\d+)?")
_NO_TIME = frozenset({"", "N/A", "NONE", "UNKNOWN", "0", "(NULL)"})
_NO_REASON = frozenset({"", "NONE", "(NULL)", "N/A"})


def parse_slurm_time(text: str) -> datetime | None:
    """A Slurm time (epoch seconds with SLURM_TIME_FORMAT=%s, or ISO) as UTC; or None."""
    value = text.strip()
    if value.upper() in _NO_TIME:
        return None
    if value.isdigit():
        return datetime.fromtimestamp(int(value), tz=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Slurm prints local time without an offset; without SLURM_TIME_FORMAT=%s we can
    # only assume the site runs on UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_wait_status(text: str) -> tuple[int | None, int | None]:
    """squeue's raw ``exit_code`` (a wait status) as (exit code, signal)."""
    value = text.strip()
    if not value.isdigit():
        return None, None
    status = int(value)
    signal = status & 0x7F
    if signal:
        return None, signal
    return (status >> 8) & 0xFF, 0


def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """sacct's ``ExitCode`` (``code:signal``) as (exit code, signal)."""
    code, _, signal = text.strip().partition(":")
    if not code.isdigit():
        return None, None
    return int(code), int(signal) if signal.isdigit() else 0


def _state(
    job_id: str,
    raw_state: str,
    exit_signal: tuple[int | None, int | None],
    start: str,
    end: str,
    reason: str,
    source: str,
) -> JobState:
    state = normalize_state(raw_state)
    kind = map_state(state)
    finished = kind in FINISHED_KINDS
    exit_code, signal = exit_signal if finished else (None, None)
    start_time = parse_slurm_time(start) if kind is not JobKind.QUEUED else None
    clean_reason = reason.strip()
    return JobState(
        job_id=job_id,
        state=state,
        kind=kind,
        exit_code=exit_code,
        signal=signal,
        reason=None if clean_reason.upper() in _NO_REASON else clean_reason,
        start_time=start_time,
        end_time=parse_slurm_time(end) if finished else None,
        source=source,
    )


def parse_squeue(output: str) -> dict[str, JobState]:
    """States from ``squeue --Format=SQUEUE_FORMAT`` output, by job id."""
    states: dict[str, JobState] = {}
    for line in output.splitlines():
        fields = line.split("|", 5)
        if len(fields) != 6 or not JOB_ID.fullmatch(fields[0].strip()):
            continue
        job_id, state, status, start, end, reason = (f.strip() for f in fields)
        states[job_id] = _state(
            job_id, state, parse_wait_status(status), start, end, reason, "squeue"
        )
    return states


def parse_elapsed(text: str) -> int | None:
    """Seconds from sacct's ``ElapsedRaw`` (digits) or ``Elapsed`` (``[D-][HH:]MM:SS``)."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    match = _ELAPSED.fullmatch(value)
    if match is None:
        return None
    days, hours = int(match["d"] or 0), int(match["h"] or 0)
    return ((days * 24 + hours) * 60 + int(match["m"])) * 60 + int(match["s"])


def parse_size_bytes(text: str) -> int | None:
    """Bytes from a Slurm size such as ``MaxRSS`` (``1234K``, ``12.5M``, ``0``; 1024-based)."""
    value = text.strip().upper()
    if not value:
        return None
    unit = value[-1] if value[-1] in _SIZE_UNITS else ""
    number = value[: len(value) - len(unit)]
    try:
        amount = float(number)
    except ValueError:
        return None
    if amount < 0 or amount != amount:  # negative or NaN
        return None
    return int(amount * _SIZE_UNITS[unit])


def _count(text: str) -> int | None:
    value = text.strip()
    return int(value) if value.isdigit() else None


def parse_sacct(output: str, source: str = "sacct") -> dict[str, JobState]:
    """States (and usage) from ``sacct --parsable2 --noheader --format=<SACCT_FIELDS>``.

    The last record of a job id wins (a requeued job appears once per run). Step records
    (``123.batch``, ``123.0``) carry no state of the job; their largest ``MaxRSS`` becomes
    the job's ``max_rss_bytes``. Lines with only the first five fields are accepted.
    """
    states: dict[str, JobState] = {}
    max_rss: dict[str, int] = {}
    for line in output.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < _STATE_FIELDS:
            continue
        fields += [""] * (len(SACCT_FIELDS) - len(fields))
        job_id, state, exit_code, start, end, elapsed, cpus, tres, rss = fields[: len(SACCT_FIELDS)]
        step = STEP_ID.fullmatch(job_id)
        if step is not None:
            size = parse_size_bytes(rss)
            if size is not None:
                max_rss[step["job"]] = max(size, max_rss.get(step["job"], 0))
            continue
        if not JOB_ID.fullmatch(job_id) or not state:
            continue  # not a job, or a jobcomp/filetxt record it could not parse
        base = _state(job_id, state, parse_exit_code(exit_code), start, end, "", source)
        states[job_id] = dataclasses.replace(
            base,
            elapsed_seconds=parse_elapsed(elapsed),
            alloc_cpus=_count(cpus),
            alloc_tres=tres or None,
            max_rss_bytes=parse_size_bytes(rss),
        )
    for job_id, size in max_rss.items():
        if job_id in states:
            known = states[job_id].max_rss_bytes or 0
            states[job_id] = dataclasses.replace(states[job_id], max_rss_bytes=max(known, size))
    return states


def parse_named_jobs(output: str, name: str) -> list[str]:
    """Job ids from ``JobID|Name`` lines whose name is exactly ``name`` (sorted, unique)."""
    found = set()
    for line in output.splitlines():
        job_id, sep, job_name = line.partition("|")
        job_id = job_id.strip()
        if sep and JOB_ID.fullmatch(job_id) and job_name.strip().rstrip("|") == name:
            found.add(job_id)
    return sorted(found, key=_job_id_key)


def parse_listed(output: str, name_prefix: str) -> list[ListedJob]:
    """Jobs from ``JobID|Name|State|Comment`` lines whose name starts with ``name_prefix``."""
    listed = []
    for line in output.splitlines():
        fields = line.split("|", 3)
        if len(fields) != 4 or not JOB_ID.fullmatch(fields[0].strip()):
            continue
        job_id, name, state, comment = (field.strip() for field in fields)
        if name.startswith(name_prefix):
            listed.append(ListedJob(job_id, name, comment, state))
    return listed


def _job_id_key(job_id: str) -> tuple[int, int]:
    base, _, task = job_id.partition("_")
    return int(base), int(task) if task else -1


def parse_config(output: str) -> dict[str, str]:
    """``scontrol show config`` as a dict (``Name = value`` lines)."""
    config: dict[str, str] = {}
    for line in output.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and " " not in name.strip():
            config[name.strip()] = value.strip()
    return config


def tail_text(data: bytes, lines: int, max_bytes: int, *, truncated: bool) -> str:
    """The last ``lines`` lines of ``data`` within ``max_bytes``, decoded leniently.

    ``truncated`` says that ``data`` starts in the middle of the file: its first,
    possibly partial, line is dropped when there is a complete line after it.
    """
    if lines <= 0 or max_bytes <= 0:
        return ""
    chunk = data[-max_bytes:]
    cut = truncated or len(data) > len(chunk)
    if cut and b"\n" in chunk.rstrip(b"\n"):
        chunk = chunk.split(b"\n", 1)[1]
    text = chunk.decode("utf-8", errors="replace")
    kept: Iterable[str] = text.splitlines()[-lines:]
    return "\n".join(kept)
