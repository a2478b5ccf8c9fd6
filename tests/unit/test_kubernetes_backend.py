"""How a Job and its pods map to an Observation (kubernetes_backend.interpret),
plus the command line of the ``simjob-operator`` script. Pure; no cluster.
"""

from __future__ import annotations

from typing import Any

from simjob_operator import constants as c
from simjob_operator.backends.kubernetes_backend import interpret, leftover_observation
from simjob_operator.main import kopf_arguments
from simjob_operator.phases import ObservedState


def job(*conditions: tuple[str, str], ready: int = 0) -> dict[str, Any]:
    return {
        "status": {
            "startTime": "2025-01-01T12:00:00Z",
            "ready": ready,
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": r,
                    "lastTransitionTime": "2025-01-01T12:01:00Z",
                }
                for t, r in conditions
            ],
        }
    }


def pod(phase: str, state: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    container = {"name": c.CONTAINER_NAME, "state": state or {}}
    return {
        "metadata": {"creationTimestamp": "2025-01-01T12:00:01Z"},
        "status": {"phase": phase, "containerStatuses": [container], **status},
    }


def test_absent() -> None:
    assert interpret(None, []).state == ObservedState.ABSENT
    assert leftover_observation([]).state == ObservedState.ABSENT


def test_terminating_pods_are_not_absent() -> None:
    seen = leftover_observation([pod("Running")])
    assert seen.state == ObservedState.RUNNING
    assert seen.reason == "Terminating"


def test_pending_reasons() -> None:
    assert interpret(job(), []).reason == c.REASON_STARTING
    unschedulable = pod(
        "Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available",
            }
        ],
    )
    seen = interpret(job(), [unschedulable])
    assert (seen.state, seen.reason, seen.message) == (
        ObservedState.PENDING,
        "Unschedulable",
        "0/3 nodes are available",
    )
    pulling = pod("Pending", {"waiting": {"reason": "ImagePullBackOff", "message": "nope"}})
    assert interpret(job(), [pulling]).reason == "ImagePullBackOff"


def test_running() -> None:
    seen = interpret(
        job(ready=1), [pod("Running", {"running": {"startedAt": "2025-01-01T12:00:02Z"}})]
    )
    assert seen.state == ObservedState.RUNNING
    assert seen.start_time is not None
    assert seen.start_time.second == 2


def test_succeeded_needs_the_jobs_final_condition() -> None:
    done = pod(
        "Succeeded",
        {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": "2025-01-01T12:00:02Z",
                "finishedAt": "2025-01-01T12:00:09Z",
            }
        },
    )
    assert interpret(job(), [done]).state == ObservedState.RUNNING  # not final yet
    seen = interpret(job(("Complete", "")), [done])
    assert seen.state == ObservedState.SUCCEEDED
    assert seen.exit_code == 0
    assert seen.finish_time is not None
    assert seen.start_time is not None
    assert (seen.finish_time - seen.start_time).total_seconds() == 7


def test_failed_with_exit_code_and_reason() -> None:
    oom = pod("Failed", {"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    seen = interpret(job(("Failed", "BackoffLimitExceeded")), [oom])
    assert (seen.state, seen.exit_code, seen.reason) == (ObservedState.FAILED, 137, "OOMKilled")


def test_failed_without_pod_details() -> None:
    seen = interpret(job(("Failed", "BackoffLimitExceeded")), [])
    assert seen.state == ObservedState.FAILED
    assert seen.reason == "BackoffLimitExceeded"
    assert seen.exit_code is None


def test_failure_target_is_not_final() -> None:
    # The Job controller sets FailureTarget first and Failed once pods are gone.
    seen = interpret(job(("FailureTarget", "DeadlineExceeded"), ready=1), [pod("Running")])
    assert seen.state == ObservedState.RUNNING


def test_deadline_exceeded() -> None:
    seen = interpret(job(("Failed", "DeadlineExceeded")), [])
    assert seen.state == ObservedState.DEADLINE_EXCEEDED
    assert seen.finish_time is not None


def test_newest_pod_wins() -> None:
    old = pod("Failed", {"terminated": {"exitCode": 1}})
    old["metadata"]["creationTimestamp"] = "2025-01-01T11:00:00Z"
    new = pod("Failed", {"terminated": {"exitCode": 2}})
    assert interpret(job(("Failed", "x")), [new, old]).exit_code == 2


def test_cli_defaults() -> None:
    assert kopf_arguments([]) == [
        "run",
        "-m",
        "simjob_operator.main",
        "--all-namespaces",
        "--standalone",
    ]
    assert kopf_arguments(["-n", "lab", "--verbose"]) == [
        "run",
        "-m",
        "simjob_operator.main",
        "--standalone",
        "-n",
        "lab",
        "--verbose",
    ]
    assert kopf_arguments(["--peering=x", "-A"]) == [
        "run",
        "-m",
        "simjob_operator.main",
        "--peering=x",
        "-A",
    ]
