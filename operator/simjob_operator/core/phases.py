"""The SimJob phase state machine: the one place where phases are decided.

``next_phase`` is pure. Given what the SimJob says (its phase and reason,
``spec.cancel``, whether it holds a slot), what ``validation`` rejected, what
``admission`` decided and what a backend observed (an ``Observation``), it
returns a ``Verdict``: the phase, reason and message to record, the condition
changes, and the one ``Action`` the caller must take. ``statuses`` turns a
verdict into a status patch (timestamps, usage, lastTransitionTime);
``reconciling`` and ``admitting`` gather the inputs and perform the action.

Rules, in order of precedence:

1. Terminal phases never change (a finished SimJob ignores cancel).
2. A terminal outcome observed on the backend wins over a cancel request: a run
   that completed before the cancel took effect is reported as it ended. The
   one exception: a failure (or a cancellation) observed *after* we started
   stopping the run (status.reason is CancelRequested) is the stop itself, hence
   Cancelled. A run cancelled on the backend by someone else (Slurm's scancel)
   ends Cancelled with the observation's reason (CancelledInSlurm).
3. Cancel: nothing on the backend -> Cancelled; otherwise stop it first and
   report Cancelled only once it is gone (never "Cancelled" while pods live).
   Deleting a SimJob is handled the same way, with reason Deleted.
4. Before admission: a rejection fails the SimJob; otherwise it waits.
5. After admission: the phase follows the backend, forward only.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import datetime

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason


class Phase(enum.StrEnum):
    """status.phase."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    TIMED_OUT = "TimedOut"


TERMINAL_PHASES: frozenset[Phase] = frozenset(
    {Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED, Phase.TIMED_OUT}
)

# Phases only move forward; a SimJob may skip steps (a pod that finished between
# two observations goes from Queued straight to Succeeded).
ALLOWED_TRANSITIONS: Mapping[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset({Phase.QUEUED, Phase.RUNNING} | TERMINAL_PHASES),
    Phase.QUEUED: frozenset({Phase.RUNNING} | TERMINAL_PHASES),
    Phase.RUNNING: TERMINAL_PHASES,
    Phase.SUCCEEDED: frozenset(),
    Phase.FAILED: frozenset(),
    Phase.CANCELLED: frozenset(),
    Phase.TIMED_OUT: frozenset(),
}


def is_terminal(phase: Phase | str | None) -> bool:
    return phase is not None and Phase(phase) in TERMINAL_PHASES


def can_transition(old: Phase, new: Phase) -> bool:
    """Whether ``old -> new`` is allowed (staying put always is)."""
    return old == new or new in ALLOWED_TRANSITIONS[old]


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


class Action(enum.StrEnum):
    """What the caller must do after recording the verdict."""

    NONE = "none"
    ADMIT = "admit"  # ask admission for a slot
    SUBMIT = "submit"  # create the backend object (idempotently)
    STOP = "stop"  # delete the backend object; re-check until it is gone


@dataclasses.dataclass(frozen=True)
class ConditionChange:
    """The wanted state of one condition (lastTransitionTime is added later)."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Verdict:
    phase: Phase
    reason: str | None
    message: str | None
    action: Action = Action.NONE
    conditions: tuple[ConditionChange, ...] = ()
    exit_code: int | None = None
    admitted_now: bool = False  # this verdict grants the slot (sets Admitted=True)
    queue_position: int | None = None

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES


def _conditions(
    phase: Phase, reason: str | None, message: str | None, *, admitted: ConditionChange | None
) -> tuple[ConditionChange, ...]:
    """Running and Finished follow the phase; Admitted only changes when given."""
    changes: list[ConditionChange] = [] if admitted is None else [admitted]
    if phase == Phase.RUNNING:
        changes.append(ConditionChange(c.COND_RUNNING, "True", Reason.STARTED, message or ""))
    else:
        changes.append(ConditionChange(c.COND_RUNNING, "False", phase.value))
    if phase in TERMINAL_PHASES:
        changes.append(ConditionChange(c.COND_FINISHED, "True", phase.value, message or ""))
    else:
        changes.append(ConditionChange(c.COND_FINISHED, "False", phase.value))
    return tuple(changes)


def _verdict(
    phase: Phase,
    reason: str | None,
    message: str | None,
    action: Action = Action.NONE,
    *,
    admitted: ConditionChange | None = None,
    exit_code: int | None = None,
    admitted_now: bool = False,
    queue_position: int | None = None,
) -> Verdict:
    return Verdict(
        phase=phase,
        reason=reason,
        message=message,
        action=action,
        conditions=_conditions(phase, reason, message, admitted=admitted),
        exit_code=exit_code,
        admitted_now=admitted_now,
        queue_position=queue_position,
    )


def _forward(current: Phase, wanted: Phase) -> Phase:
    """Phases never go back (a Running SimJob whose pod looks pending stays Running)."""
    return wanted if can_transition(current, wanted) else current


def _finished_verdict(obs: Observation, max_runtime: int | None) -> Verdict:
    if obs.state == ObservedState.SUCCEEDED:
        code = 0 if obs.exit_code is None else obs.exit_code
        return _verdict(
            Phase.SUCCEEDED,
            Reason.COMPLETED,
            obs.message or "the simulation completed",
            exit_code=code,
        )
    if obs.state == ObservedState.DEADLINE_EXCEEDED:
        limit = f"{max_runtime} s" if max_runtime is not None else "its limit"
        message = f"the simulation exceeded its maximum runtime of {limit} and was stopped"
        return _verdict(Phase.TIMED_OUT, Reason.DEADLINE_EXCEEDED, message, exit_code=obs.exit_code)
    if obs.state == ObservedState.CANCELLED:
        return _verdict(
            Phase.CANCELLED,
            obs.reason or Phase.CANCELLED.value,
            obs.message or "the simulation was cancelled on the backend",
            exit_code=obs.exit_code,
        )
    reason = obs.reason or Reason.ERROR
    if obs.message:
        message = obs.message
    elif obs.exit_code is not None:
        message = f"the simulation exited with code {obs.exit_code}"
    else:
        message = "the simulation failed"
    if reason == Reason.OOM_KILLED and "memory" not in message:
        message = f"{message} (out of memory: killed at its memory limit)"
    return _verdict(Phase.FAILED, reason, message, exit_code=obs.exit_code)


def next_phase(
    phase: Phase | None,
    *,
    reason: str | None = None,
    cancel: bool = False,
    admitted: bool = False,
    rejection: Rejection | None = None,
    admission: Admission | None = None,
    observation: Observation | None = None,
    max_runtime_seconds: int | None = None,
    deleted: bool = False,
) -> Verdict:
    """Decide the next phase. Pure; see the module docstring for the rules.

    ``phase``/``reason``: the recorded status (None phase = never processed).
    ``admitted``: the SimJob holds a slot (condition Admitted=True).
    ``admission``: a fresh decision for a SimJob that does not hold a slot, or None.
    ``observation``: the backend's view, or None when nobody looked.
    ``deleted``: the SimJob is being deleted; handled like a cancel (reason Deleted).
    """
    current = Phase(phase) if phase is not None else Phase.PENDING

    # 1. Terminal is forever.
    if current in TERMINAL_PHASES:
        return Verdict(phase=current, reason=reason, message=None, action=Action.NONE)

    stopping = reason in (Reason.CANCEL_REQUESTED, Reason.DELETED)

    # 2. Observed outcomes win over cancel requests (except our own stop).
    if observation is not None and observation.finished:
        stopped = observation.state in (ObservedState.FAILED, ObservedState.CANCELLED)
        if (cancel or deleted) and stopping and stopped:
            return _verdict(
                Phase.CANCELLED,
                reason,
                "cancelled; the simulation was stopped",
                exit_code=observation.exit_code,
            )
        return _finished_verdict(observation, max_runtime_seconds)

    # 3. Cancel (deletion is a cancel that nobody will watch end).
    if cancel or deleted:
        why = Reason.CANCEL_REQUESTED if cancel else Reason.DELETED
        if admitted and observation is None:
            # Holding a slot means a backend object may exist: look before deciding.
            return Verdict(phase=current, reason=reason, message=None, action=Action.NONE)
        if not admitted or (observation is not None and observation.state == ObservedState.ABSENT):
            message = (
                "cancelled; the simulation was stopped"
                if stopping or current == Phase.RUNNING
                else "cancelled before it started"
            )
            return _verdict(Phase.CANCELLED, why, message)
        # Something lives on the backend: record the request first, then stop it.
        assert observation is not None
        running = observation.state == ObservedState.RUNNING
        return _verdict(
            _forward(current, Phase.RUNNING if running else Phase.QUEUED),
            why,
            "cancel requested; stopping the simulation"
            if cancel
            else "deleted; stopping the simulation",
            Action.STOP,
        )

    # 4. Not holding a slot yet.
    if not admitted:
        if rejection is not None:
            return _verdict(
                Phase.FAILED,
                rejection.reason,
                rejection.message,
                admitted=ConditionChange(
                    c.COND_ADMITTED, "False", rejection.reason, rejection.message
                ),
            )
        if admission is None:
            return Verdict(phase=current, reason=reason, message=None, action=Action.ADMIT)
        if admission.state == AdmissionState.WAITING:
            where = f" (position {admission.position})" if admission.position else ""
            message = (admission.message or "waiting for a free slot") + where
            return _verdict(
                _forward(current, Phase.QUEUED),
                Reason.WAITING_FOR_SLOT,
                message,
                admitted=ConditionChange(
                    c.COND_ADMITTED, "False", Reason.WAITING_FOR_SLOT, message
                ),
                queue_position=admission.position,
            )
        message = admission.message or "a slot is free; starting"
        return _verdict(
            _forward(current, Phase.QUEUED),
            Reason.ADMITTED,
            message,
            Action.SUBMIT,
            admitted=ConditionChange(c.COND_ADMITTED, "True", Reason.ADMITTED, message),
            admitted_now=True,
        )

    # 5. Holding a slot: follow the backend.
    if observation is None:
        return Verdict(phase=current, reason=reason, message=None, action=Action.NONE)
    if observation.state == ObservedState.ABSENT:
        if current == Phase.RUNNING:
            return _verdict(
                Phase.FAILED,
                Reason.BACKEND_LOST,
                observation.message or "the backend object disappeared while running",
            )
        return _verdict(current, reason or Reason.ADMITTED, None, Action.SUBMIT)
    if observation.state == ObservedState.PENDING:
        shown = _forward(current, Phase.QUEUED)
        if shown == Phase.RUNNING:
            return _verdict(shown, Reason.STARTED, None)
        if (observation.reason or Reason.STARTING) in ROUTINE_PENDING_REASONS:
            if shown == current:  # nothing worth a write: the pod is simply starting
                return Verdict(phase=current, reason=reason, message=None)
            return _verdict(shown, reason or Reason.ADMITTED, None)
        detail = observation.message or "waiting for the backend to start the simulation"
        return _verdict(shown, observation.reason, detail)
    # RUNNING
    return _verdict(_forward(current, Phase.RUNNING), Reason.STARTED, "the simulation is running")
