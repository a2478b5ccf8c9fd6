"""What the phase machine is told: backend observations, admission decisions,
rejections. Pure data; ``core.phases`` decides from them, backends produce
``Observation``s, ``core.slots`` ``Admission``s, ``core.validation`` ``Rejection``s.
"""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime

from simjob_operator.api.reasons import Reason


class ObservedState(enum.StrEnum):
    """What a backend saw of the simulation."""

    ABSENT = "absent"  # no backend object (never created, or gone)
    PENDING = "pending"  # exists, not yet running (pod pending, Slurm PENDING)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEADLINE_EXCEEDED = "deadline-exceeded"
    CANCELLED = "cancelled"  # stopped on the backend by someone else (e.g. scancel)


# Pending reasons that only say "starting"; others (Unschedulable, ImagePullBackOff,
# a Slurm reason...) are shown to the user while the SimJob waits.
ROUTINE_PENDING_REASONS: frozenset[str] = frozenset(
    {Reason.STARTING, "ContainerCreating", "PodInitializing", "Pending"}
)

FINISHED_STATES: frozenset[ObservedState] = frozenset(
    {
        ObservedState.SUCCEEDED,
        ObservedState.FAILED,
        ObservedState.DEADLINE_EXCEEDED,
        ObservedState.CANCELLED,
    }
)


@dataclasses.dataclass(frozen=True)
class MeasuredUsage:
    """What the backend's own accounting measured of a finished run (e.g. Slurm's sacct:
    elapsed seconds, allocated CPUs, the largest step's MaxRSS); None: not measured."""

    source: str
    wall_seconds: float
    cpu_seconds: float | None = None
    max_rss_bytes: int | None = None


@dataclasses.dataclass(frozen=True)
class Observation:
    """One look at the backend: state plus whatever detail it offered."""

    state: ObservedState
    exit_code: int | None = None
    reason: str | None = None  # e.g. OOMKilled, Error, Unschedulable
    message: str | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None
    # Look again after this many seconds although nothing will announce a change
    # (e.g. a SlurmCluster that may be applied a moment after its SimJob).
    recheck_after: float | None = None
    # The outcome was decided by the operator (e.g. the runtime limit, counted from
    # the start) while the backend object still runs: it must be stopped.
    still_running: bool = False
    # A finished run's usage as the backend's accounting measured it (status.usage
    # takes it over the operator's own start-to-end estimate).
    usage: MeasuredUsage | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


class AdmissionState(enum.StrEnum):
    ADMITTED = "admitted"
    WAITING = "waiting"


@dataclasses.dataclass(frozen=True)
class Admission:
    """A decision of ``admission`` for one SimJob that does not hold a slot yet."""

    state: AdmissionState
    position: int | None = None  # 1-based place in the queue when waiting
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Rejection:
    """Why a SimJob cannot run at all (see ``validation``)."""

    reason: str
    message: str
