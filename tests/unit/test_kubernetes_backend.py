"""How a Job and its pods map to an Observation (kubernetes_backend.interpret),
when the Job alone is enough (needs_pods), which reads ``observe`` makes with and
without the Job from a watch event (a fake client), plus the command line of the
``simjob-operator`` script. No cluster.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.backends.kubernetes.backend import (
    KubernetesBackend,
    interpret,
    leftover_observation,
    needs_pods,
)
from simjob_operator.core.phases import Observation, ObservedState
from simjob_operator.core.sightings import Seen
from simjob_operator.core.view import SimJobRecord
from simjob_operator.main import kopf_arguments
from tests.support.bodies import simjob_body
from tests.support.fake_kube import FakeKube


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
    assert interpret(job(), []).reason == Reason.STARTING
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


# ----------------------------------------------------------------------------- the Job alone


def test_the_job_alone_says_running_completed_or_timed_out() -> None:
    criteria_met = job(("SuccessCriteriaMet", "CompletionsReached"))
    criteria_met["status"]["succeeded"] = 1
    for alone in (
        job(ready=1),
        job(("Complete", "")),
        job(("Failed", "DeadlineExceeded")),
        criteria_met,
        job(("FailureTarget", "DeadlineExceeded"), ready=1),
        job(),  # no pod yet: the Job controller has not created it
    ):
        assert not needs_pods(alone), alone
    assert interpret(job(ready=1), []).state == ObservedState.RUNNING
    ran = job()
    ran["status"]["uncountedTerminatedPods"] = {"succeeded": ["pod-uid"]}
    assert not needs_pods(ran)
    assert interpret(ran, []).state == ObservedState.RUNNING  # Complete comes a moment later
    done = interpret(job(("Complete", "")), [])
    assert (done.state, done.exit_code) == (ObservedState.SUCCEEDED, 0)
    assert done.start_time is not None  # the Job's startTime


def test_the_pods_tell_why_a_job_failed_or_a_pod_waits() -> None:
    assert needs_pods(job(("Failed", "BackoffLimitExceeded")))  # exit code and reason
    waiting = job()
    waiting["status"]["active"] = 1  # a pod exists, not ready: Unschedulable? pulling?
    assert needs_pods(waiting)
    failed_pod = job()
    failed_pod["status"]["failed"] = 1  # the Failed condition is not there yet
    assert needs_pods(failed_pod)


def fake_kube(job: dict[str, Any] | None, pods: list[dict[str, Any]]) -> FakeKube:
    """The one fake API server, holding the SimJob's Job (if any) and pods that every
    selector of ``observe`` finds (labelled with the Job's and the SimJob's uid)."""
    kube = FakeKube()
    if job is not None:
        kube.add_job("lab", job)
    for index, body in enumerate(pods):
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})["name"] = f"pod-{index}"
        body["metadata"]["labels"] = {
            c.POD_LABEL_CONTROLLER_UID: "job-uid",
            c.LABEL_UID: "uid-lab-sim",
        }
        kube.add_pod("lab", body)
    return kube


def observe(kube: FakeKube, seen: Seen | None, **status: Any) -> Observation:
    record = SimJobRecord.from_body(simjob_body(status=status or None))
    backend = KubernetesBackend(kube)
    return asyncio.run(backend.observe(record, seen))


def ours(*conditions: tuple[str, str], **status: Any) -> dict[str, Any]:
    body = job(*conditions)
    body["status"].update(status)
    body["metadata"] = {"name": "sj-sim", "uid": "job-uid", "labels": {c.LABEL_UID: "uid-lab-sim"}}
    return body


def test_observe_takes_the_job_from_the_event() -> None:
    kube = fake_kube(job=None, pods=[])
    running = Seen.of("MODIFIED", ours(ready=1))
    assert observe(kube, running).state == ObservedState.RUNNING
    assert kube.log == []  # neither the Job nor its pods were read
    assert observe(kube, Seen.of("MODIFIED", ours(("Complete", "")))).state == (
        ObservedState.SUCCEEDED
    )
    assert kube.log == []


def test_observe_reads_the_pod_of_a_failed_job() -> None:
    oom = pod("Failed", {"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    kube = fake_kube(job=None, pods=[oom])
    seen = observe(kube, Seen.of("MODIFIED", ours(("Failed", "BackoffLimitExceeded"))))
    assert (seen.state, seen.exit_code, seen.reason) == (ObservedState.FAILED, 137, "OOMKilled")
    assert kube.log == [f"list {c.POD_LABEL_CONTROLLER_UID}=job-uid"]


def test_observe_looks_up_a_deleted_or_foreign_job() -> None:
    kube = fake_kube(job=None, pods=[])
    assert observe(kube, Seen(None)).state == ObservedState.ABSENT
    assert kube.log == ["get sj-sim", f"list {c.LABEL_UID}=uid-lab-sim"]
    foreign = ours(ready=1)
    foreign["metadata"]["labels"][c.LABEL_UID] = "someone-else"
    kube = fake_kube(job=ours(ready=1), pods=[])
    assert observe(kube, Seen.of("MODIFIED", foreign)).state == ObservedState.RUNNING
    assert kube.log == ["get sj-sim"]  # the real one, then no pods needed
    kube = fake_kube(job=ours(active=1), pods=[pod("Pending")])
    assert observe(kube, None).state == ObservedState.PENDING
    assert kube.log == ["get sj-sim", f"list {c.POD_LABEL_CONTROLLER_UID}=job-uid"]


def test_observe_trusts_admission_only_for_the_simjob_it_admitted() -> None:
    kube = fake_kube(job=ours(ready=1), pods=[])
    # simjob_body's resourceVersion is "100": the version the admission wrote
    assert observe(kube, Seen.nothing_yet("100")).state == ObservedState.ABSENT
    assert kube.log == []
    # the SimJob changed since (e.g. another reconcile created the Job): look
    assert observe(kube, Seen.nothing_yet("99")).state == ObservedState.RUNNING
    assert kube.log == ["get sj-sim"]


def test_a_failed_run_says_its_exit_code_and_last_lines() -> None:
    tail = "step 9 of 10\nTraceback (most recent call last):\nValueError: diverged\n"
    failed = pod("Failed", {"terminated": {"exitCode": 3, "reason": "Error", "message": tail}})
    seen = interpret(job(("Failed", "BackoffLimitExceeded")), [failed])
    assert (seen.state, seen.exit_code) == (ObservedState.FAILED, 3)
    assert seen.message is not None
    assert seen.message.startswith("the simulation exited with code 3; the last lines")
    assert seen.message.endswith("ValueError: diverged")
    quiet = pod("Failed", {"terminated": {"exitCode": 1, "reason": "Error"}})
    assert interpret(job(("Failed", "BackoffLimitExceeded")), [quiet]).message is None


def test_the_container_reports_its_last_lines_on_failure() -> None:
    record = SimJobRecord.from_body(simjob_body())
    assert record.spec is not None
    from simjob_operator.api.simjob import Grant
    from simjob_operator.backends.kubernetes.manifests import build_job_manifest

    manifest = build_job_manifest(
        namespace="lab",
        name="sim",
        uid="u",
        spec=record.spec,
        owner="lab",
        grant=Grant(cpu="1", memory="1Gi", max_runtime_seconds=60),
    )
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
