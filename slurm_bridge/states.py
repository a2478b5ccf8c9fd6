"""Job states: what Slurm says about a job, and what that means for a SimJob.

``map_state`` is the one place where Slurm's job states (``squeue``/``sacct``/pyslurm
spelling) become a ``JobKind`` — the SimJob phase family the operator shows. It is pure and
total: every string maps to a kind, unknown ones to ``JobKind.UNKNOWN`` (never to a guess).
``JobState`` is the immutable record returned by ``SlurmClient.query``/``cancel``.
Neighbours: parsing.py builds ``JobState`` from command output, pyslurm_client.py from
pyslurm objects; clients.py declares the protocol that returns them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "FINISHED_KINDS",
    "JobKind",
    "JobState",
    "ListedJob",
    "map_state",
    "normalize_state",
]


class JobKind(enum.StrEnum):
    """What a Slurm job state means for a SimJob (the operator maps it to a phase)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    # Slurm reported a state this bridge does not know (a newer Slurm, a site plugin).
    UNKNOWN = "unknown"
    # Slurm knows nothing about the job: not in squeue, not in accounting/completion logs.
    MISSING = "missing"


FINISHED_KINDS = frozenset(
    {JobKind.SUCCEEDED, JobKind.FAILED, JobKind.TIMED_OUT, JobKind.CANCELLED}
)

# Slurm's base job states (slurm.h job_states + the flag names squeue prints as a state).
_STATE_KINDS: dict[str, JobKind] = {
    "PENDING": JobKind.QUEUED,
    "CONFIGURING": JobKind.QUEUED,
    # Requeued or preempted jobs go back to the queue (PREEMPTED with requeue; without
    # requeue Slurm ends them CANCELLED/PREEMPTED and they show as such in accounting).
    "PREEMPTED": JobKind.QUEUED,
    "REQUEUED": JobKind.QUEUED,
    "REQUEUE_HOLD": JobKind.QUEUED,
    "REQUEUE_FED": JobKind.QUEUED,
    "SPECIAL_EXIT": JobKind.QUEUED,
    "RESV_DEL_HOLD": JobKind.QUEUED,
    "POWER_UP_NODE": JobKind.QUEUED,
    "RUNNING": JobKind.RUNNING,
    "COMPLETING": JobKind.RUNNING,
    # Still holding its allocation, processes alive but stopped.
    "SUSPENDED": JobKind.RUNNING,
    "STOPPED": JobKind.RUNNING,
    "SIGNALING": JobKind.RUNNING,
    "STAGE_OUT": JobKind.RUNNING,
    "RESIZING": JobKind.RUNNING,
    "UPDATE_DB": JobKind.RUNNING,
    "COMPLETED": JobKind.SUCCEEDED,
    "FAILED": JobKind.FAILED,
    "OUT_OF_MEMORY": JobKind.FAILED,
    "NODE_FAIL": JobKind.FAILED,
    "BOOT_FAIL": JobKind.FAILED,
    "RECONFIG_FAIL": JobKind.FAILED,
    "TIMEOUT": JobKind.TIMED_OUT,
    "DEADLINE": JobKind.TIMED_OUT,
    "CANCELLED": JobKind.CANCELLED,
    # Federation: the job runs on a sibling cluster; this one will never run it.
    "REVOKED": JobKind.CANCELLED,
}

# Abbreviations squeue prints with %t (accepted so that any squeue format maps).
_SHORT_STATES: dict[str, str] = {
    "PD": "PENDING",
    "CF": "CONFIGURING",
    "R": "RUNNING",
    "CG": "COMPLETING",
    "CD": "COMPLETED",
    "F": "FAILED",
    "OOM": "OUT_OF_MEMORY",
    "NF": "NODE_FAIL",
    "BF": "BOOT_FAIL",
    "TO": "TIMEOUT",
    "DL": "DEADLINE",
    "CA": "CANCELLED",
    "PR": "PREEMPTED",
    "RQ": "REQUEUED",
    "RH": "REQUEUE_HOLD",
    "RF": "REQUEUE_FED",
    "RD": "RESV_DEL_HOLD",
    "RV": "REVOKED",
    "RS": "RESIZING",
    "SE": "SPECIAL_EXIT",
    "SI": "SIGNALING",
    "SO": "STAGE_OUT",
    "ST": "STOPPED",
    "S": "SUSPENDED",
}


def normalize_state(slurm_state: str) -> str:
    """Slurm's state as one upper-case word.

    ``sacct`` writes ``CANCELLED by 1000``, some tools append ``+`` or flags
    (``COMPLETING,REQUEUED``); squeue's ``%t`` abbreviations are expanded.
    An empty string stays empty.
    """
    words = slurm_state.strip().upper().split()
    if not words:
        return ""
    state = words[0].split(",")[0].rstrip("+*")
    return _SHORT_STATES.get(state, state)


def map_state(slurm_state: str) -> JobKind:
    """The ``JobKind`` of a Slurm job state string; ``UNKNOWN`` when not recognised."""
    return _STATE_KINDS.get(normalize_state(slurm_state), JobKind.UNKNOWN)


@dataclass(frozen=True, slots=True)
class JobState:
    """What Slurm reports about one job at one moment.

    ``state`` is Slurm's own (normalised) word, ``kind`` its meaning (``map_state``).
    ``exit_code``/``signal`` are set once the job has finished (``None`` before);
    ``reason`` is Slurm's reason (``JobHeldUser``, ``NonZeroExitCode``, …) or ``None``.
    Times are timezone-aware (UTC); ``start_time`` only once the job started and
    ``end_time`` only once it finished (squeue's forecasts are dropped). ``source`` names
    the command or API that answered (``squeue``, ``sacct``, ``sacct --completion``,
    ``pyslurm``, ``none``).

    Usage, set when accounting reported it (``sacct``: ``ElapsedRaw``, ``AllocCPUS``,
    ``AllocTRES``, ``MaxRSS``; squeue reports none of it, ``None`` means unknown):
    ``elapsed_seconds`` (wall seconds Slurm counted), ``alloc_cpus``, ``alloc_tres``
    (Slurm's ``cpu=2,mem=1G,node=1,billing=2,gres/gpu=1`` text) and ``max_rss_bytes``
    (the largest step's peak resident memory; only from ``SlurmClient``s' ``usage``,
    which reads the job's steps).
    """

    job_id: str
    state: str
    kind: JobKind
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    source: str = ""
    elapsed_seconds: int | None = None
    alloc_cpus: int | None = None
    alloc_tres: str | None = None
    max_rss_bytes: int | None = None

    @property
    def cpu_seconds(self) -> int | None:
        """Allocated CPUs times elapsed seconds, when accounting reported both."""
        if self.elapsed_seconds is None or self.alloc_cpus is None:
            return None
        return self.elapsed_seconds * self.alloc_cpus

    @property
    def finished(self) -> bool:
        """The job has ended for good (succeeded, failed, timed out or cancelled)."""
        return self.kind in FINISHED_KINDS

    @property
    def runtime_seconds(self) -> float | None:
        """Seconds between start and end, when both are known."""
        if self.start_time is None or self.end_time is None:
            return None
        return max(0.0, (self.end_time - self.start_time).total_seconds())

    @classmethod
    def missing(cls, job_id: str, source: str) -> JobState:
        """The state of a job that no Slurm source knows."""
        return cls(job_id=job_id, state="NOT_FOUND", kind=JobKind.MISSING, source=source)


@dataclass(frozen=True, slots=True)
class ListedJob:
    """One line of a job listing (``listing.list_jobs``): id, name, comment and
    Slurm's state word (``(null)`` comments are given as an empty string)."""

    job_id: str
    name: str
    comment: str
    state: str

    def __post_init__(self) -> None:
        if self.comment == "(null)":
            object.__setattr__(self, "comment", "")
