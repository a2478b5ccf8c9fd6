"""A SimJob as a Slurm job and back (simjob_operator.backends.slurm.jobs): the
grant -> sbatch translation and the state -> Observation table. Pure; no Slurm.
"""

from __future__ import annotations

from typing import Any

import pytest

from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import Grant, SimJobSlurmSpec, SimJobSpec
from simjob_operator.api.simtier import SlurmTierSpec
from simjob_operator.backends.slurm.jobs import (
    failure_message,
    interpret,
    job_spec,
    marker,
    memory_mib,
)
from simjob_operator.core.phases import ObservedState, Phase, Verdict, next_phase
from slurm_bridge import InvalidJobSpec, JobKind, JobState, map_state, sbatch_options
from tests.support.fake_slurm import T0, T1

UID = "0b7c4a9e-1111-4222-8333-444455556666"


def grant(tier: SlurmTierSpec | None = None, **overrides: Any) -> Grant:
    values: dict[str, Any] = {
        "cpu": "1500m",
        "memory": "1536Mi",
        "gpu": 0,
        "max_runtime_seconds": 90,
        "priority_class_name": None,
        "ttl_seconds_after_finished": None,
        "slurm": tier,
    }
    values.update(overrides)
    return Grant(**values)


def spec_for(**fields: Any) -> tuple[SimJobSpec, SimJobSlurmSpec]:
    body: dict[str, Any] = {
        "tier": "small",
        "backend": "slurm",
        "command": ["sim", "--steps", "10"],
        "args": ["$(touch /tmp/x)", "a b"],
        "env": [{"name": "OMP_NUM_THREADS", "value": "2"}],
        "slurm": {"cluster": "hpc"},
    }
    body.update(fields)
    spec = SimJobSpec.model_validate(body)
    assert spec.slurm is not None
    return spec, spec.slurm


def build(tier: SlurmTierSpec | None = None, **fields: Any) -> Any:
    spec, slurm = spec_for(**fields)
    return job_spec(
        namespace="lab",
        name="sim",
        uid=UID,
        spec=spec,
        slurm=slurm,
        grant=grant(tier),
    )


def test_marker_is_unique_per_uid_and_a_valid_job_name() -> None:
    assert marker(UID) == f"simjob-{UID}"
    assert build().marker == marker(UID)


def test_memory_in_mib_rounded_up() -> None:
    assert memory_mib("1Gi") == 1024
    assert memory_mib("1G") == 954  # 10^9 bytes = 953.67 MiB, rounded up
    assert memory_mib("1") == 1
    assert memory_mib("1536Mi") == 1536


def test_tier_defaults_to_cpu_rounded_up_memory_and_runtime_in_minutes() -> None:
    job = build()
    assert job.argv == ("sim", "--steps", "10", "$(touch /tmp/x)", "a b")
    assert dict(job.env) == {"OMP_NUM_THREADS": "2"}
    assert job.comment == "lab/sim"
    options = sbatch_options(job, "/work")
    assert "--cpus-per-task=2" in options  # ceil(1.5)
    assert "--mem=1536M" in options
    assert "--time=2" in options  # ceil(90 s / 60)
    assert not any(o.startswith(("--partition", "--qos", "--account")) for o in options)


def test_tier_slurm_section_and_simjob_overrides() -> None:
    tier = SlurmTierSpec(
        partition="short", qos="normal", account="phys", cpus_per_task=4, memory="2Gi"
    )
    job = build(tier)
    assert (job.partition, job.qos, job.account) == ("short", "normal", "phys")
    assert (job.cpus_per_task, job.memory_mib) == (4, 2048)
    job = build(tier, slurm={"cluster": "hpc", "partition": "debug", "account": "mine"})
    assert (job.partition, job.qos, job.account) == ("debug", "normal", "mine")


def test_unsafe_values_are_refused_before_sbatch() -> None:
    with pytest.raises(InvalidJobSpec, match="control character"):
        # A newline or tab in an argument is one quoted word (slurm_bridge allows it);
        # a carriage return, like every other control character, is refused.
        build(args=["line one\r#SBATCH --uid=0"])
    with pytest.raises(InvalidJobSpec, match="must be absolute"):
        build(workingDir="relative/dir")


def state(name: str, **fields: Any) -> JobState:
    return JobState(job_id="42", state=name, kind=map_state(name), source="squeue", **fields)


@pytest.mark.parametrize(
    ("slurm_state", "expected"),
    [
        ("PENDING", ObservedState.PENDING),
        ("CONFIGURING", ObservedState.PENDING),
        ("PREEMPTED", ObservedState.PENDING),
        ("REQUEUED", ObservedState.PENDING),
        ("RUNNING", ObservedState.RUNNING),
        ("COMPLETING", ObservedState.RUNNING),
        ("COMPLETED", ObservedState.SUCCEEDED),
        ("FAILED", ObservedState.FAILED),
        ("OUT_OF_MEMORY", ObservedState.FAILED),
        ("NODE_FAIL", ObservedState.FAILED),
        ("BOOT_FAIL", ObservedState.FAILED),
        ("TIMEOUT", ObservedState.DEADLINE_EXCEEDED),
        ("DEADLINE", ObservedState.DEADLINE_EXCEEDED),
        ("CANCELLED", ObservedState.CANCELLED),
        ("NOT_FOUND", ObservedState.PENDING),  # unknown word: never guessed
    ],
)
def test_state_table(slurm_state: str, expected: ObservedState) -> None:
    assert interpret(state(slurm_state), stopping=False, cluster="hpc").state == expected


def test_failure_reasons_come_from_the_state() -> None:
    failed = interpret(state("FAILED", exit_code=3), stopping=False, cluster="hpc")
    assert (failed.reason, failed.exit_code) == (Reason.ERROR, 3)
    assert interpret(state("OUT_OF_MEMORY"), stopping=False, cluster="hpc").reason == "OOMKilled"
    assert interpret(state("NODE_FAIL"), stopping=False, cluster="hpc").reason == "NodeFail"


def test_pending_reasons_are_shown_unless_routine() -> None:
    held = interpret(state("PENDING", reason="JobHeldUser"), stopping=False, cluster="hpc")
    assert held.reason == "JobHeldUser"
    assert held.message is not None
    assert "Slurm job 42 on hpc" in held.message
    fresh = interpret(state("PENDING"), stopping=False, cluster="hpc")
    assert fresh.reason == Reason.STARTING


def test_cancelled_or_missing_while_we_stop_it_means_nothing_is_left() -> None:
    for name in ("CANCELLED", "NOT_FOUND"):
        gone = JobState(job_id="42", state=name, kind=map_state(name))
        if name == "NOT_FOUND":
            gone = JobState.missing("42", "squeue+sacct --completion")
        assert interpret(gone, stopping=True, cluster="hpc").state == ObservedState.ABSENT


def test_a_job_slurm_forgot_is_lost_not_resubmitted() -> None:
    lost = interpret(JobState.missing("42", "squeue"), stopping=False, cluster="hpc")
    assert (lost.state, lost.reason) == (ObservedState.FAILED, Reason.BACKEND_LOST)


def test_phases_from_slurm_outcomes() -> None:
    """End to end through the state machine (phases.next_phase)."""

    def verdict(
        slurm_state: str, *, cancel: bool = False, reason: str | None = None, **f: Any
    ) -> Verdict:
        obs = interpret(
            state(slurm_state, **f),
            stopping=cancel and reason == Reason.CANCEL_REQUESTED,
            cluster="hpc",
        )
        return next_phase(
            Phase.RUNNING, reason=reason, cancel=cancel, admitted=True, observation=obs,
            max_runtime_seconds=60,
        )  # fmt: skip

    done = verdict("COMPLETED", exit_code=0, start_time=T0, end_time=T1)
    assert (done.phase, done.exit_code) == (Phase.SUCCEEDED, 0)
    assert verdict("TIMEOUT").phase == Phase.TIMED_OUT
    assert verdict("TIMEOUT").reason == Reason.DEADLINE_EXCEEDED
    outside = verdict("CANCELLED")
    assert (outside.phase, outside.reason) == (Phase.CANCELLED, Reason.CANCELLED_IN_SLURM)
    ours = verdict("CANCELLED", cancel=True, reason=Reason.CANCEL_REQUESTED)
    assert (ours.phase, ours.reason) == (Phase.CANCELLED, Reason.CANCEL_REQUESTED)
    # Completed before the cancel landed: stays Succeeded (the anchors' worst bug).
    raced = verdict("COMPLETED", cancel=True, reason=Reason.CANCEL_REQUESTED, exit_code=0)
    assert raced.phase == Phase.SUCCEEDED
    # Preempted/requeued while Running: phases never go back.
    assert verdict("REQUEUED").phase == Phase.RUNNING


def test_failure_message_carries_code_and_bounded_tail() -> None:
    failed = state("FAILED", exit_code=3)
    message = failure_message(failed, "step 1\nstep 2: boom\n")
    assert message.startswith("the simulation exited with code 3 (Slurm job 42: FAILED)")
    assert message.endswith("; last output:\nstep 1\nstep 2: boom")
    signalled = JobState(job_id="7", state="FAILED", kind=JobKind.FAILED, signal=9)
    assert "killed by signal 9" in failure_message(signalled, "")
    assert "out of memory" in failure_message(state("OUT_OF_MEMORY"), "")
