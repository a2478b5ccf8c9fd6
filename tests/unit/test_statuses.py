"""Status building (simjob_operator.core.statuses): conditions with stable
lastTransitionTime and observedGeneration, timestamps, usage, merge patches.
Pure; no cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import BackendRef, SimJobStatus
from simjob_operator.api.simtier import SimTierSpec
from simjob_operator.core.phases import (
    Admission,
    AdmissionState,
    ConditionChange,
    Observation,
    ObservedState,
    Phase,
    Rejection,
    next_phase,
)
from simjob_operator.core.statuses import build_status, get_condition, set_conditions, status_patch
from simjob_operator.core.validation import Effective, resolve
from simjob_operator.core.view import SimJobRecord
from tests.support.bodies import simjob_body, tier_spec

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def effective() -> Effective:
    rec = SimJobRecord.from_body(simjob_body())
    result = resolve(
        rec.spec,
        namespace="lab",
        tier_name="small",
        tier=SimTierSpec.model_validate(tier_spec(cpu="1500m")),
    )
    assert isinstance(result, Effective)
    return result


def test_last_transition_time_moves_only_with_status() -> None:
    first = set_conditions(
        [], [ConditionChange("Running", "False", "Queued")], now=T0, generation=1
    )
    later = T0 + timedelta(seconds=30)
    same = set_conditions(
        first, [ConditionChange("Running", "False", "Other", "m")], now=later, generation=2
    )
    assert same[0].last_transition_time == "2025-01-01T12:00:00Z"
    assert (same[0].reason, same[0].message, same[0].observed_generation) == ("Other", "m", 2)
    flipped = set_conditions(
        same, [ConditionChange("Running", "True", "Started")], now=later, generation=2
    )
    assert flipped[0].last_transition_time == "2025-01-01T12:00:30Z"


def test_condition_order_is_stable() -> None:
    conds = set_conditions(
        [],
        [ConditionChange(t, "False", "x") for t in ("Finished", "Custom", "Running", "Admitted")],
        now=T0,
        generation=1,
    )
    assert [cond.type for cond in conds] == ["Admitted", "Running", "Finished", "Custom"]


def walk() -> list[SimJobStatus]:
    """Pending -> Queued (waiting) -> admitted -> Running -> Succeeded."""
    eff = effective()
    statuses = [SimJobStatus()]
    steps = [
        (next_phase(None, admission=Admission(AdmissionState.WAITING, position=1)), None),
        (next_phase(Phase.QUEUED, admission=Admission(AdmissionState.ADMITTED)), None),
        (
            next_phase(
                Phase.QUEUED,
                admitted=True,
                observation=Observation(ObservedState.RUNNING, start_time=T0),
            ),
            Observation(ObservedState.RUNNING, start_time=T0),
        ),
    ]
    done = Observation(
        ObservedState.SUCCEEDED, exit_code=0, start_time=T0, finish_time=T0 + timedelta(seconds=10)
    )
    steps.append((next_phase(Phase.RUNNING, admitted=True, observation=done), done))
    for minute, (verdict, observation) in enumerate(steps, start=1):
        statuses.append(
            build_status(
                statuses[-1],
                verdict,
                now=T0 + timedelta(minutes=minute),
                generation=1,
                observation=observation,
                grant=eff.grant,
                backend_ref=BackendRef(kind="Job", name="sj-sim"),
            )
        )
    return statuses


def test_a_full_life() -> None:
    _, queued, admitted, running, succeeded = walk()
    assert queued.phase == "Queued"
    assert queued.queue_position == 1
    assert queued.queued_time == "2025-01-01T12:01:00Z"
    assert get_condition(queued.conditions, c.COND_ADMITTED).status == "False"  # type: ignore[union-attr]
    assert admitted.queue_position is None
    assert admitted.queued_time == queued.queued_time
    assert admitted.resources is not None
    assert admitted.resources.cpu == "1500m"
    assert admitted.effective_max_runtime_seconds == 600
    assert admitted.backend_ref == BackendRef(kind="Job", name="sj-sim")
    assert running.phase == "Running"
    assert running.start_time == "2025-01-01T12:00:00Z"
    assert succeeded.phase == "Succeeded"
    assert succeeded.exit_code == 0
    assert succeeded.completion_time == "2025-01-01T12:00:10Z"
    assert succeeded.usage is not None
    assert succeeded.usage.wall_seconds == 10.0
    assert succeeded.usage.cpu_seconds == 15.0  # 10 s x 1.5 CPUs
    finished = get_condition(succeeded.conditions, c.COND_FINISHED)
    assert finished is not None
    assert (finished.status, finished.reason) == ("True", "Succeeded")
    admitted_cond = get_condition(succeeded.conditions, c.COND_ADMITTED)
    assert admitted_cond is not None
    assert admitted_cond.status == "True"
    assert admitted_cond.last_transition_time == "2025-01-01T12:02:00Z"
    assert all(cond.observed_generation == 1 for cond in succeeded.conditions)


def test_terminal_status_is_never_rewritten() -> None:
    succeeded = walk()[-1]
    cancel = next_phase(Phase.SUCCEEDED, cancel=True)
    again = build_status(succeeded, cancel, now=T0 + timedelta(hours=1), generation=2)
    assert again == succeeded
    assert status_patch(succeeded, again) == {}


def test_cancel_before_start_has_no_start_time() -> None:
    verdict = next_phase(Phase.QUEUED, cancel=True)
    status = build_status(SimJobStatus(phase="Queued"), verdict, now=T0, generation=2)
    assert status.phase == "Cancelled"
    assert status.start_time is None
    assert status.completion_time == "2025-01-01T12:00:00Z"
    assert status.usage is not None
    assert status.usage.wall_seconds == 0


def test_patch_sets_changed_keys_and_deletes_removed_ones() -> None:
    _, queued, admitted, *_ = walk()
    patch = status_patch(queued, admitted)
    assert patch["queuePosition"] is None
    assert patch["reason"] == Reason.ADMITTED
    assert "queuedTime" not in patch
    assert patch["conditions"][0]["type"] == "Admitted"
    assert status_patch(admitted, admitted) == {}


def test_status_names_the_effective_owner() -> None:
    """status.owner feeds the OWNER printer column, also for rejected SimJobs."""
    for body, expected in ((simjob_body(), "lab"), (simjob_body(owner="alice"), "alice")):
        rec = SimJobRecord.from_body(body)
        rejected = next_phase(None, rejection=Rejection(Reason.UNKNOWN_TIER, "no tier"))
        status = build_status(rec.status, rejected, now=T0, generation=1, owner=rec.owner)
        assert status.owner == expected
        assert status.phase == "Failed"
