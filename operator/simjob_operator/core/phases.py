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
4. Before admission: a rejection fails the SimJob; otherwise it waits or starts.
5. After admission, a backend object that has not started within the grant's
   maxPendingSeconds fails the SimJob (reason Unschedulable) and is stopped.
6. After admission: the phase follows the backend, forward only.

Each rule is one function (``terminal_is_forever``, ``observed_outcome_wins``,
``cancel_converges``, ``admission_decides``, ``pending_too_long``,
``backend_leads``); ``RULES`` is the
table, and the first rule with a verdict decides. The inputs are in
``core.observations``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from simjob_operator.api import names as c
from simjob_operator.api.reasons import STOP_REASONS, Reason
from simjob_operator.core.observations import (
    FINISHED_STATES,
    ROUTINE_PENDING_REASONS,
    Admission,
    AdmissionState,
    Observation,
    ObservedState,
    Rejection,
)
from simjob_operator.core.verdicts import (
    ALLOWED_TRANSITIONS,
    TERMINAL_PHASES,
    Action,
    ConditionChange,
    Phase,
    Verdict,
    can_transition,
    is_terminal,
)
from simjob_operator.core.verdicts import (
    forward as _forward,
)
from simjob_operator.core.verdicts import (
    verdict as _verdict,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "FINISHED_STATES",
    "ROUTINE_PENDING_REASONS",
    "TERMINAL_PHASES",
    "Action",
    "Admission",
    "AdmissionState",
    "ConditionChange",
    "Observation",
    "ObservedState",
    "Phase",
    "Rejection",
    "Verdict",
    "can_transition",
    "is_terminal",
    "next_phase",
]


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


@dataclasses.dataclass(frozen=True)
class Facts:
    """Everything a rule may look at (the arguments of ``next_phase``)."""

    current: Phase
    reason: str | None
    cancel: bool
    admitted: bool
    rejection: Rejection | None
    admission: Admission | None
    observation: Observation | None
    max_runtime_seconds: int | None
    deleted: bool
    pending_seconds: float | None = None  # since admission, while the backend has not started
    max_pending_seconds: int | None = None
    reused: str | None = None  # the Succeeded SimJob of the same runKey and inputs
    replaced_by: str | None = None  # the newer run of its runKey that cancelled it

    @property
    def stopping(self) -> bool:
        """We already asked the backend to stop (status.reason says so)."""
        return self.reason in STOP_REASONS

    def unchanged(self, action: Action = Action.NONE) -> Verdict:
        return Verdict(phase=self.current, reason=self.reason, message=None, action=action)


def terminal_is_forever(f: Facts) -> Verdict | None:
    """Rule 1: a finished SimJob never changes (it ignores cancel)."""
    return f.unchanged() if f.current in TERMINAL_PHASES else None


def observed_outcome_wins(f: Facts) -> Verdict | None:
    """Rule 2: an outcome observed on the backend wins over a cancel request, except a
    failure or cancellation seen after we started stopping the run: that is our stop."""
    obs = f.observation
    if obs is None or not obs.finished:
        return None
    stopped = obs.state in (ObservedState.FAILED, ObservedState.CANCELLED)
    if (f.cancel or f.deleted) and f.stopping and stopped:
        return _verdict(
            Phase.CANCELLED,
            f.reason,
            "cancelled; the simulation was stopped",
            exit_code=obs.exit_code,
        )
    verdict = _finished_verdict(obs, f.max_runtime_seconds)
    return dataclasses.replace(verdict, action=Action.STOP) if obs.still_running else verdict


def cancel_converges(f: Facts) -> Verdict | None:
    """Rule 3: cancel (and deletion, a cancel nobody will watch end): nothing on the
    backend -> Cancelled; otherwise record the request, stop, and report Cancelled
    only once it is gone."""
    if not (f.cancel or f.deleted):
        return None
    why = Reason.CANCEL_REQUESTED if f.cancel else Reason.DELETED
    cancelled = "cancelled"
    what = "cancel requested" if f.cancel else "deleted"
    if f.cancel and f.replaced_by:
        why = Reason.REPLACED
        cancelled = what = f"replaced by the newer run {f.replaced_by} of its runKey"
    obs = f.observation
    if f.admitted and obs is None:
        return f.unchanged()  # holding a slot: a backend object may exist, look first
    if not f.admitted or (obs is not None and obs.state == ObservedState.ABSENT):
        message = (
            f"{cancelled}; the simulation was stopped"
            if f.stopping or f.current == Phase.RUNNING
            else f"{cancelled} before it started"
        )
        return _verdict(Phase.CANCELLED, why, message)
    assert obs is not None
    running = obs.state == ObservedState.RUNNING
    return _verdict(
        _forward(f.current, Phase.RUNNING if running else Phase.QUEUED),
        why,
        f"{what}; stopping the simulation",
        Action.STOP,
    )


def reuse_ends_it(f: Facts) -> Verdict | None:
    """Rule 4a: before admission, a Succeeded run of the same runKey and inputHash
    stands for this one (reuse: IfSucceeded): Succeeded at once, no compute, no slot."""
    if f.admitted or f.reused is None:
        return None
    message = f"reused the results of SimJob {f.reused} (same runKey and inputHash)"
    return _verdict(
        Phase.SUCCEEDED,
        Reason.REUSED,
        message,
        admitted=ConditionChange(c.COND_ADMITTED, "False", Reason.REUSED, message),
        exit_code=0,
    )


def admission_decides(f: Facts) -> Verdict | None:
    """Rule 4: without a slot, a rejection fails the SimJob; else it waits or starts."""
    if f.admitted:
        return None
    if f.rejection is not None:
        rejection = f.rejection
        return _verdict(
            Phase.FAILED,
            rejection.reason,
            rejection.message,
            admitted=ConditionChange(c.COND_ADMITTED, "False", rejection.reason, rejection.message),
        )
    if f.admission is None:
        return f.unchanged(Action.ADMIT)
    if f.admission.state == AdmissionState.WAITING:
        where = f" (position {f.admission.position})" if f.admission.position else ""
        message = (f.admission.message or "waiting for a free slot") + where
        return _verdict(
            _forward(f.current, Phase.QUEUED),
            Reason.WAITING_FOR_SLOT,
            message,
            admitted=ConditionChange(c.COND_ADMITTED, "False", Reason.WAITING_FOR_SLOT, message),
            queue_position=f.admission.position,
        )
    message = f.admission.message or "a slot is free; starting"
    return _verdict(
        _forward(f.current, Phase.QUEUED),
        Reason.ADMITTED,
        message,
        Action.SUBMIT,
        admitted=ConditionChange(c.COND_ADMITTED, "True", Reason.ADMITTED, message),
        admitted_now=True,
    )


def pending_too_long(f: Facts) -> Verdict | None:
    """Rule 5: admitted but not started within maxPendingSeconds (unschedulable, an image
    that cannot be pulled, a Slurm job pending for resources): fail, stop the object."""
    obs = f.observation
    if obs is None or obs.state != ObservedState.PENDING or f.current == Phase.RUNNING:
        return None
    if f.max_pending_seconds is None or f.pending_seconds is None:
        return None
    if f.pending_seconds <= f.max_pending_seconds:
        return None
    why = obs.reason or Reason.STARTING
    detail = f": {obs.message}" if obs.message else ""
    message = (
        f"did not start within maxPendingSeconds ({f.max_pending_seconds} s); "
        f"last seen waiting: {why}{detail}"
    )
    return _verdict(Phase.FAILED, Reason.UNSCHEDULABLE, message, Action.STOP)


def backend_leads(f: Facts) -> Verdict | None:
    """Rule 6: holding a slot, the phase follows the backend, forward only."""
    obs = f.observation
    if obs is None:
        return f.unchanged()
    if obs.state == ObservedState.ABSENT:
        if f.current == Phase.RUNNING:
            return _verdict(
                Phase.FAILED,
                Reason.BACKEND_LOST,
                obs.message or "the backend object disappeared while running",
            )
        return _verdict(f.current, f.reason or Reason.ADMITTED, None, Action.SUBMIT)
    if obs.state == ObservedState.PENDING:
        shown = _forward(f.current, Phase.QUEUED)
        if shown == Phase.RUNNING:
            return _verdict(shown, Reason.STARTED, None)
        if (obs.reason or Reason.STARTING) in ROUTINE_PENDING_REASONS:
            if shown == f.current:  # nothing worth a write: the pod is simply starting
                return f.unchanged()
            return _verdict(shown, f.reason or Reason.ADMITTED, None)
        detail = obs.message or "waiting for the backend to start the simulation"
        return _verdict(shown, obs.reason, detail)
    if obs.reason and obs.message:  # runs, with a caveat (e.g. CredentialsExpired)
        return _verdict(_forward(f.current, Phase.RUNNING), obs.reason, obs.message)
    return _verdict(_forward(f.current, Phase.RUNNING), Reason.STARTED, "the simulation is running")


# The rule table, in order of precedence: the first rule with a verdict decides.
RULES: tuple[Callable[[Facts], Verdict | None], ...] = (
    terminal_is_forever,
    observed_outcome_wins,
    cancel_converges,
    reuse_ends_it,
    admission_decides,
    pending_too_long,
    backend_leads,
)


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
    pending_seconds: float | None = None,
    max_pending_seconds: int | None = None,
    reused: str | None = None,
    replaced_by: str | None = None,
) -> Verdict:
    """Decide the next phase. Pure; see the module docstring for the rules.

    ``phase``/``reason``: the recorded status (None phase = never processed).
    ``admitted``: the SimJob holds a slot (condition Admitted=True).
    ``admission``: a fresh decision for a SimJob that does not hold a slot, or None.
    ``observation``: the backend's view, or None when nobody looked.
    ``deleted``: the SimJob is being deleted; handled like a cancel (reason Deleted).
    ``replaced_by``: with ``cancel``, the newer run of its runKey that asked it (reason
    Replaced instead of CancelRequested).
    """
    facts = Facts(
        current=Phase(phase) if phase is not None else Phase.PENDING,
        reason=reason,
        cancel=cancel,
        admitted=admitted,
        rejection=rejection,
        admission=admission,
        observation=observation,
        max_runtime_seconds=max_runtime_seconds,
        deleted=deleted,
        pending_seconds=pending_seconds,
        max_pending_seconds=max_pending_seconds,
        reused=reused,
        replaced_by=replaced_by,
    )
    for rule in RULES:
        verdict = rule(facts)
        if verdict is not None:
            return verdict
    raise AssertionError("backend_leads always decides")  # pragma: no cover
