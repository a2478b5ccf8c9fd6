"""The phase state machine (simjob_operator.core.phases): every transition, terminal
stickiness, and the cancel/complete races. Pure; no cluster.

Neighbours: test_statuses.py (what a verdict writes), test_admission.py.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.core.phases import (
    ALLOWED_TRANSITIONS,
    TERMINAL_PHASES,
    Action,
    Admission,
    AdmissionState,
    Observation,
    ObservedState,
    Phase,
    Rejection,
    Verdict,
    can_transition,
    is_terminal,
    next_phase,
)

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2025, 1, 1, 12, 0, 7, tzinfo=UTC)

ABSENT = Observation(ObservedState.ABSENT)
PENDING = Observation(ObservedState.PENDING, reason="Unschedulable", message="0/3 nodes")
RUNNING = Observation(ObservedState.RUNNING, start_time=T0)
SUCCEEDED = Observation(ObservedState.SUCCEEDED, exit_code=0, start_time=T0, finish_time=T1)
FAILED = Observation(ObservedState.FAILED, exit_code=3, reason="Error", start_time=T0)
OOM = Observation(ObservedState.FAILED, exit_code=137, reason="OOMKilled")
DEADLINE = Observation(ObservedState.DEADLINE_EXCEEDED, reason="DeadlineExceeded")
ALL_OBSERVATIONS = [None, ABSENT, PENDING, RUNNING, SUCCEEDED, FAILED, OOM, DEADLINE]
NON_TERMINAL = [None, Phase.PENDING, Phase.QUEUED, Phase.RUNNING]
ADMITTED = Admission(AdmissionState.ADMITTED, message="admitted")
WAITING = Admission(AdmissionState.WAITING, position=2, message="waiting for a slot")
REJECTED = Rejection(Reason.UNKNOWN_TIER, "SimTier 'x' does not exist")


def conditions(verdict: Verdict) -> dict[str, tuple[str, str]]:
    return {change.type: (change.status, change.reason) for change in verdict.conditions}


# ----------------------------------------------------------------------- the table


def test_terminal_set() -> None:
    assert {p.value for p in TERMINAL_PHASES} == {"Succeeded", "Failed", "Cancelled", "TimedOut"}
    assert all(is_terminal(p) for p in TERMINAL_PHASES)
    assert not any(is_terminal(p) for p in (Phase.PENDING, Phase.QUEUED, Phase.RUNNING, None))


def test_phase_values_match_the_api_model() -> None:
    from simjob_operator.api.simjob import SimJobStatus

    literal = SimJobStatus.model_fields["phase"].annotation
    assert {p.value for p in Phase} == set(literal.__args__[0].__args__)  # type: ignore[union-attr]


@pytest.mark.parametrize(("old", "new"), list(itertools.product(Phase, Phase)))
def test_transition_table_is_forward_only(old: Phase, new: Phase) -> None:
    order = {Phase.PENDING: 0, Phase.QUEUED: 1, Phase.RUNNING: 2}
    expected = old == new or (old not in TERMINAL_PHASES and order.get(new, 3) > order[old])
    assert can_transition(old, new) is expected
    assert (new in ALLOWED_TRANSITIONS[old]) is (expected and old != new)


# ------------------------------------------------------- exhaustive invariants


COMBINATIONS = list(
    itertools.product(
        [*NON_TERMINAL, *sorted(TERMINAL_PHASES)],
        ALL_OBSERVATIONS,
        [False, True],
        [False, True],
        [None, ADMITTED, WAITING],
        [None, REJECTED],
        [None, Reason.CANCEL_REQUESTED],
    )
)


def test_every_verdict_keeps_the_invariants() -> None:
    """All 3,072 combinations of inputs (8 phases x 8 observations x flags)."""
    assert len(COMBINATIONS) == 3072
    for combination in COMBINATIONS:
        check_invariants(*combination)


def check_invariants(
    phase: Phase | None,
    observation: Observation | None,
    cancel: bool,
    admitted: bool,
    admission: Admission | None,
    rejection: Rejection | None,
    reason: str | None,
) -> None:
    verdict = next_phase(
        phase,
        reason=reason,
        cancel=cancel,
        admitted=admitted,
        rejection=rejection,
        admission=admission,
        observation=observation,
        max_runtime_seconds=60,
    )
    current = phase or Phase.PENDING
    assert can_transition(current, verdict.phase)
    if current in TERMINAL_PHASES:
        # Terminal is forever: nothing changes, nothing is done.
        assert verdict.phase == current
        assert verdict.action == Action.NONE
        assert verdict.conditions == ()
    if verdict.terminal and verdict.phase != current:
        assert verdict.action == Action.NONE
        assert conditions(verdict)[c.COND_FINISHED] == ("True", verdict.phase.value)
        assert conditions(verdict)[c.COND_RUNNING] == ("False", verdict.phase.value)
    # A job never gets submitted once cancel is requested.
    if cancel:
        assert verdict.action != Action.SUBMIT
    # Cancelled is reported only when nothing can live on the backend.
    if verdict.phase == Phase.CANCELLED and current != Phase.CANCELLED and admitted:
        assert observation is not None
        assert observation.state == ObservedState.ABSENT or (
            reason == Reason.CANCEL_REQUESTED and observation.state == ObservedState.FAILED
        )
    # A finished observation is never hidden behind a cancel (except our own stop).
    our_stop = cancel and reason == Reason.CANCEL_REQUESTED
    if (
        current not in TERMINAL_PHASES
        and observation is not None
        and observation.finished
        and not (our_stop and observation.state == ObservedState.FAILED)
    ):
        assert verdict.phase in {Phase.SUCCEEDED, Phase.FAILED, Phase.TIMED_OUT}


# ----------------------------------------------------------- individual paths


def test_new_simjob_asks_for_admission_without_writing() -> None:
    verdict = next_phase(None)
    assert verdict.phase == Phase.PENDING
    assert verdict.action == Action.ADMIT
    assert verdict.conditions == ()


def test_waiting_for_slot_is_queued_with_position() -> None:
    verdict = next_phase(Phase.PENDING, admission=WAITING)
    assert verdict.phase == Phase.QUEUED
    assert verdict.reason == Reason.WAITING_FOR_SLOT
    assert verdict.queue_position == 2
    assert "position 2" in (verdict.message or "")
    assert conditions(verdict)[c.COND_ADMITTED] == ("False", Reason.WAITING_FOR_SLOT)
    assert verdict.action == Action.NONE


def test_admission_grants_the_slot_and_submits() -> None:
    verdict = next_phase(Phase.QUEUED, admission=ADMITTED)
    assert verdict.phase == Phase.QUEUED
    assert verdict.admitted_now
    assert verdict.action == Action.SUBMIT
    assert conditions(verdict)[c.COND_ADMITTED] == ("True", Reason.ADMITTED)
    assert verdict.queue_position is None


def test_rejection_fails_before_admission() -> None:
    verdict = next_phase(Phase.PENDING, rejection=REJECTED)
    assert verdict.phase == Phase.FAILED
    assert verdict.reason == Reason.UNKNOWN_TIER
    assert verdict.message == REJECTED.message
    assert conditions(verdict)[c.COND_ADMITTED] == ("False", Reason.UNKNOWN_TIER)
    assert conditions(verdict)[c.COND_FINISHED] == ("True", "Failed")


def test_rejection_is_ignored_once_admitted() -> None:
    # A tier deleted while its SimJob runs must not fail the running simulation.
    verdict = next_phase(Phase.RUNNING, admitted=True, rejection=REJECTED, observation=RUNNING)
    assert verdict.phase == Phase.RUNNING


def test_admitted_and_absent_submits() -> None:
    verdict = next_phase(Phase.QUEUED, admitted=True, observation=ABSENT, reason=Reason.ADMITTED)
    assert verdict.action == Action.SUBMIT
    assert verdict.phase == Phase.QUEUED


def test_admitted_and_pending_stays_queued_with_backend_reason() -> None:
    verdict = next_phase(Phase.QUEUED, admitted=True, observation=PENDING)
    assert verdict.phase == Phase.QUEUED
    assert verdict.reason == "Unschedulable"
    assert verdict.message == "0/3 nodes"
    assert verdict.action == Action.NONE


def test_running_follows_the_backend() -> None:
    verdict = next_phase(Phase.QUEUED, admitted=True, observation=RUNNING)
    assert verdict.phase == Phase.RUNNING
    assert verdict.reason == Reason.STARTED
    assert conditions(verdict)[c.COND_RUNNING] == ("True", Reason.STARTED)
    assert conditions(verdict)[c.COND_FINISHED] == ("False", "Running")


def test_routine_pending_writes_nothing() -> None:
    starting = Observation(ObservedState.PENDING, reason="ContainerCreating")
    verdict = next_phase(Phase.QUEUED, admitted=True, reason=Reason.ADMITTED, observation=starting)
    assert verdict.phase == Phase.QUEUED
    assert verdict.conditions == ()
    assert verdict.action == Action.NONE


def test_phases_never_go_back() -> None:
    verdict = next_phase(Phase.RUNNING, admitted=True, observation=PENDING)
    assert verdict.phase == Phase.RUNNING


def test_running_job_that_vanished_is_failed_as_lost() -> None:
    verdict = next_phase(Phase.RUNNING, admitted=True, observation=ABSENT)
    assert verdict.phase == Phase.FAILED
    assert verdict.reason == Reason.BACKEND_LOST


@pytest.mark.parametrize("phase", [Phase.QUEUED, Phase.RUNNING])
def test_success(phase: Phase) -> None:
    verdict = next_phase(phase, admitted=True, observation=SUCCEEDED)
    assert verdict.phase == Phase.SUCCEEDED
    assert verdict.reason == Reason.COMPLETED
    assert verdict.exit_code == 0


def test_failure_carries_exit_code() -> None:
    verdict = next_phase(Phase.RUNNING, admitted=True, observation=FAILED)
    assert verdict.phase == Phase.FAILED
    assert verdict.exit_code == 3
    assert verdict.reason == "Error"
    assert "code 3" in (verdict.message or "")


def test_oom_killed() -> None:
    verdict = next_phase(Phase.RUNNING, admitted=True, observation=OOM)
    assert verdict.phase == Phase.FAILED
    assert verdict.reason == Reason.OOM_KILLED
    assert verdict.exit_code == 137
    assert "memory" in (verdict.message or "")


def test_deadline_is_timed_out_with_the_runtime() -> None:
    verdict = next_phase(Phase.RUNNING, admitted=True, observation=DEADLINE, max_runtime_seconds=42)
    assert verdict.phase == Phase.TIMED_OUT
    assert verdict.reason == Reason.DEADLINE_EXCEEDED
    assert "42 s" in (verdict.message or "")
    assert conditions(verdict)[c.COND_FINISHED] == ("True", "TimedOut")


# ------------------------------------------------------------------- cancel


@pytest.mark.parametrize("phase", [None, Phase.PENDING, Phase.QUEUED])
def test_cancel_while_waiting_never_submits(phase: Phase | None) -> None:
    for admission in (None, WAITING, ADMITTED):
        verdict = next_phase(phase, cancel=True, admission=admission)
        assert verdict.phase == Phase.CANCELLED
        assert verdict.reason == Reason.CANCEL_REQUESTED
        assert verdict.action == Action.NONE
        assert "before it started" in (verdict.message or "")


@pytest.mark.parametrize("observation", [PENDING, RUNNING])
def test_cancel_while_running_stops_first(observation: Observation) -> None:
    verdict = next_phase(Phase.RUNNING, cancel=True, admitted=True, observation=observation)
    assert verdict.phase == Phase.RUNNING  # not Cancelled while pods may live
    assert verdict.reason == Reason.CANCEL_REQUESTED
    assert verdict.action == Action.STOP


def test_cancel_becomes_cancelled_once_gone() -> None:
    verdict = next_phase(
        Phase.RUNNING,
        reason=Reason.CANCEL_REQUESTED,
        cancel=True,
        admitted=True,
        observation=ABSENT,
    )
    assert verdict.phase == Phase.CANCELLED
    assert verdict.reason == Reason.CANCEL_REQUESTED
    assert "stopped" in (verdict.message or "")


def test_a_replaced_run_stops_and_ends_with_reason_replaced() -> None:
    stop = next_phase(
        Phase.RUNNING, cancel=True, replaced_by="newer", admitted=True, observation=RUNNING
    )
    assert (stop.phase, stop.reason, stop.action) == (Phase.RUNNING, Reason.REPLACED, Action.STOP)
    assert "replaced by the newer run newer of its runKey" in (stop.message or "")
    gone = next_phase(
        Phase.RUNNING,
        reason=stop.reason,
        cancel=True,
        replaced_by="newer",
        admitted=True,
        observation=ABSENT,
    )
    assert (gone.phase, gone.reason) == (Phase.CANCELLED, Reason.REPLACED)
    assert (
        gone.message == "replaced by the newer run newer of its runKey; the simulation was stopped"
    )
    # A run that fails because we stopped it is still the replaced one.
    failed = next_phase(
        Phase.RUNNING, reason=Reason.REPLACED, cancel=True, replaced_by="newer", admitted=True,
        observation=FAILED,
    )  # fmt: skip
    assert (failed.phase, failed.reason) == (Phase.CANCELLED, Reason.REPLACED)
    waiting = next_phase(Phase.QUEUED, cancel=True, replaced_by="newer")
    assert (waiting.phase, waiting.reason) == (Phase.CANCELLED, Reason.REPLACED)
    assert "before it started" in (waiting.message or "")


def test_cancel_of_admitted_job_needs_an_observation() -> None:
    verdict = next_phase(Phase.QUEUED, cancel=True, admitted=True, observation=None)
    assert verdict.phase == Phase.QUEUED
    assert verdict.action == Action.NONE


@pytest.mark.parametrize("terminal", sorted(TERMINAL_PHASES))
def test_cancel_on_a_finished_job_changes_nothing(terminal: Phase) -> None:
    for observation in ALL_OBSERVATIONS:
        verdict = next_phase(terminal, cancel=True, admitted=True, observation=observation)
        assert verdict.phase == terminal
        assert verdict.action == Action.NONE


def test_completion_before_cancel_was_observed_stays_succeeded() -> None:
    # The anchors' worst bug: a completed run shown as cancelled.
    verdict = next_phase(Phase.RUNNING, cancel=True, admitted=True, observation=SUCCEEDED)
    assert verdict.phase == Phase.SUCCEEDED
    # ...even when the stop had already been requested.
    verdict = next_phase(
        Phase.RUNNING,
        reason=Reason.CANCEL_REQUESTED,
        cancel=True,
        admitted=True,
        observation=SUCCEEDED,
    )
    assert verdict.phase == Phase.SUCCEEDED


def test_failure_before_cancel_stays_failed() -> None:
    verdict = next_phase(Phase.RUNNING, cancel=True, admitted=True, observation=FAILED)
    assert verdict.phase == Phase.FAILED
    assert verdict.exit_code == 3


def test_failure_caused_by_our_stop_is_cancelled() -> None:
    verdict = next_phase(
        Phase.RUNNING,
        reason=Reason.CANCEL_REQUESTED,
        cancel=True,
        admitted=True,
        observation=FAILED,
    )
    assert verdict.phase == Phase.CANCELLED


def test_deadline_before_cancel_stays_timed_out() -> None:
    verdict = next_phase(
        Phase.RUNNING,
        reason=Reason.CANCEL_REQUESTED,
        cancel=True,
        admitted=True,
        observation=DEADLINE,
    )
    assert verdict.phase == Phase.TIMED_OUT


def test_finished_observation_wins_over_missing_admission() -> None:
    # After a restart the Job may have finished before we looked again.
    verdict = next_phase(Phase.QUEUED, admitted=True, observation=SUCCEEDED)
    assert verdict.phase == Phase.SUCCEEDED


def test_pending_past_max_pending_seconds_fails_unschedulable_and_stops() -> None:
    waiting = Observation(ObservedState.PENDING, reason="Unschedulable", message="0/3 nodes")
    kwargs: dict[str, Any] = {"admitted": True, "observation": waiting, "max_pending_seconds": 60}
    within = next_phase(Phase.QUEUED, pending_seconds=59.0, **kwargs)
    assert (within.phase, within.reason, within.action) == (
        Phase.QUEUED,
        "Unschedulable",
        Action.NONE,
    )
    past = next_phase(Phase.QUEUED, pending_seconds=61.0, **kwargs)
    assert (past.phase, past.reason, past.action) == (
        Phase.FAILED,
        Reason.UNSCHEDULABLE,
        Action.STOP,
    )
    assert past.message is not None
    assert "0/3 nodes" in past.message
    # Once running, a pending-looking pod is no reason to fail it.
    running = next_phase(Phase.RUNNING, pending_seconds=600.0, **kwargs)
    assert running.phase == Phase.RUNNING
    # A cancel still wins: it stops the object the usual way.
    cancelled = next_phase(Phase.QUEUED, pending_seconds=61.0, cancel=True, **kwargs)
    assert cancelled.reason == Reason.CANCEL_REQUESTED


def test_a_timeout_decided_by_the_operator_stops_the_object() -> None:
    over = Observation(ObservedState.DEADLINE_EXCEEDED, still_running=True)
    verdict = next_phase(Phase.RUNNING, admitted=True, observation=over, max_runtime_seconds=60)
    assert (verdict.phase, verdict.action) == (Phase.TIMED_OUT, Action.STOP)
    by_backend = Observation(ObservedState.DEADLINE_EXCEEDED)
    verdict = next_phase(Phase.RUNNING, admitted=True, observation=by_backend)
    assert (verdict.phase, verdict.action) == (Phase.TIMED_OUT, Action.NONE)
