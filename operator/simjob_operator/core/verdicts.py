"""The vocabulary of the phase machine: phases, their order, verdicts and actions.

``Phase`` (status.phase) and the allowed transitions (forward only); ``Verdict`` (the
phase, reason and message to record, the condition changes, and the one ``Action``
the caller must take) and its builders. Pure; ``core.phases`` decides with them,
``core.statuses`` writes them down.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

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


def conditions_for(
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


def verdict(
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
        conditions=conditions_for(phase, reason, message, admitted=admitted),
        exit_code=exit_code,
        admitted_now=admitted_now,
        queue_position=queue_position,
    )


def forward(current: Phase, wanted: Phase) -> Phase:
    """Phases never go back (a Running SimJob whose pod looks pending stays Running)."""
    return wanted if can_transition(current, wanted) else current
