"""The operator on the real control plane (pods played by KWOK): outcomes,
cancel, delete, slots, and the restricted Pod Security Standard.

Neighbours: conftest.py (the operator process, kubectl helpers),
test_operator_restart.py (kill -9), test_semantic_corpus.py (bad input).
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import datetime
from typing import Any

import pytest

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.status import SimJobStatus
from simjob_operator.core.settings import DEFAULT as SETTINGS
from tests.integration.conftest import Kube, OperatorProcess, simjob, wait_for

pytestmark = pytest.mark.integration

LONG = 600  # seconds a "long" pod keeps running (KWOK delay)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found = [cond for cond in status.get("conditions", []) if cond["type"] == type_]
    assert len(found) == 1, status
    return found[0]


def job_of(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    body = kube.get("jobs.batch", f"sj-{name}", namespace=namespace)
    return dict(body) if body else None


def pods_of(kube: Kube, namespace: str, uid: str) -> list[dict[str, Any]]:
    return kube.items("pods", namespace=namespace, selector=f"{c.LABEL_UID}={uid}")


def events_about(kube: Kube, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.items("events", namespace=namespace)
        if e["involvedObject"]["kind"] == kind and e["involvedObject"]["name"] == name
    ]


def test_succeeded(kube: Kube, namespace: str) -> None:
    kube.apply(simjob("ok", tier="it-one", owner="alice"), namespace=namespace)
    # kubectl wait works on the Finished condition.
    kube.run("wait", "--for=condition=Finished", "sj/ok", "-n", namespace, "--timeout=90s")
    body = kube.simjob(namespace, "ok")
    status = body["status"]
    assert status["phase"] == "Succeeded"
    assert status["reason"] == Reason.COMPLETED
    assert status["exitCode"] == 0
    assert condition(status, "Finished")["reason"] == "Succeeded"
    assert condition(status, "Admitted")["status"] == "True"
    assert condition(status, "Running")["status"] == "False"
    assert all(cond["observedGeneration"] == 1 for cond in status["conditions"])
    assert status["observedGeneration"] == 1
    assert status["resources"] == {"cpu": "500m", "memory": "256Mi", "gpu": 0}
    assert status["effectiveMaxRuntimeSeconds"] == 600
    assert status["grant"] == {
        "cpu": "500m",
        "memory": "256Mi",
        "gpu": 0,
        "maxRuntimeSeconds": 600,
        "maxPendingSeconds": 600,  # the default
        "progressIntervalSeconds": 10,  # the default
        "nodeSelector": {},
        "tolerations": [],
    }
    assert status["backendRef"] == {"kind": "Job", "name": "sj-ok"}
    start, end = ts(status["startTime"]), ts(status["completionTime"])
    assert ts(status["queuedTime"]) <= start <= end
    wall = (end - start).total_seconds()
    assert status["usage"]["wallSeconds"] == pytest.approx(wall)
    assert status["usage"]["cpuSeconds"] == pytest.approx(wall * 0.5)
    # kopf keeps its bookkeeping out of status: every key is a field of our model.
    model_keys = {f.alias or n for n, f in SimJobStatus.model_fields.items()}
    assert "kopf" not in model_keys
    assert set(status) <= model_keys, set(status) - model_keys
    assert status["accountedIn"]  # counted in the usage ledger (docs/accounting.md)
    assert status["owner"] == "alice"  # the effective owner, for the OWNER column
    assert body["metadata"]["finalizers"] == [c.FINALIZER]

    job = job_of(kube, namespace, "ok")
    assert job is not None
    uid = body["metadata"]["uid"]
    assert job["metadata"]["labels"] == {
        c.LABEL_NAME: "ok",
        c.LABEL_OWNER: "alice",
        c.LABEL_TIER: "it-one",
        c.LABEL_UID: uid,
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
    }
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("SimJob", uid, True)
    # A backstop: the runtime (600) + the default maxPendingSeconds (600); the operator
    # times the run itself from its start.
    assert job["spec"]["activeDeadlineSeconds"] == 1200
    assert job["spec"]["backoffLimit"] == 0
    pods = pods_of(kube, namespace, uid)
    assert len(pods) == 1
    resources = pods[0]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "500m", "memory": "256Mi"}

    # Events are paid by the API server: a run that went its normal way gets one, at
    # its end (admission and start are in status, not in Events).
    events = events_about(kube, namespace, "SimJob", "ok")
    assert [(e["reason"], e["type"]) for e in events] == [(Reason.COMPLETED, "Normal")]


def test_failed_with_exit_code(kube: Kube, namespace: str) -> None:
    kube.apply(simjob("bad", fail_exit_code=3, fail_reason="Error"), namespace=namespace)
    status = kube.wait_phase(namespace, "bad", {"Failed", "Succeeded"})
    assert status["phase"] == "Failed"
    assert status["exitCode"] == 3
    assert status["reason"] == "Error"
    assert condition(status, "Finished")["reason"] == "Failed"
    assert "container failed" in status["message"]


def test_oom_killed(kube: Kube, namespace: str) -> None:
    kube.apply(simjob("oom", fail_exit_code=137, fail_reason="OOMKilled"), namespace=namespace)
    status = kube.wait_phase(namespace, "oom", {"Failed", "Succeeded"})
    assert status["phase"] == "Failed"
    assert status["exitCode"] == 137
    assert status["reason"] == "OOMKilled"
    reasons = {e["reason"]: e["type"] for e in events_about(kube, namespace, "SimJob", "oom")}
    assert reasons.get("OOMKilled") == "Warning"


@pytest.mark.parametrize("limit", ["tier", "spec"])
def test_timed_out(kube: Kube, namespace: str, limit: str) -> None:
    manifest = (
        simjob("slow", tier="it-short", run_seconds=LONG)
        if limit == "tier"
        else simjob("slow", tier="it-wide", run_seconds=LONG, maxRuntimeSeconds=3)
    )
    seconds = 4 if limit == "tier" else 3
    kube.apply(manifest, namespace=namespace)
    kube.wait_phase(namespace, "slow", "Running", timeout=60)
    status = kube.wait_phase(namespace, "slow", {"TimedOut", "Failed", "Succeeded"}, timeout=90)
    assert status["phase"] == "TimedOut"
    assert status["reason"] == Reason.DEADLINE_EXCEEDED
    assert f"{seconds} s" in status["message"]
    assert condition(status, "Finished")["reason"] == "TimedOut"
    assert status["effectiveMaxRuntimeSeconds"] == seconds


def test_cancel_while_queued_never_creates_a_job(kube: Kube, namespace: str) -> None:
    kube.apply(simjob("first", tier="it-one", run_seconds=LONG), namespace=namespace)
    kube.wait_phase(namespace, "first", "Running", timeout=60)
    kube.apply(simjob("second", tier="it-one"), namespace=namespace)
    status = kube.wait_phase(namespace, "second", "Queued")
    wait_for(
        lambda: kube.status(namespace, "second").get("reason") == Reason.WAITING_FOR_SLOT,
        timeout=30,
        what="second to wait for a slot",
    )
    status = kube.status(namespace, "second")
    assert status["queuePosition"] == 1
    assert condition(status, "Admitted")["status"] == "False"

    kube.patch_simjob(namespace, "second", {"spec": {"cancel": True}})
    status = kube.wait_phase(namespace, "second", {"Cancelled", "Running", "Succeeded"})
    assert status["phase"] == "Cancelled"
    assert status["reason"] == Reason.CANCEL_REQUESTED
    assert "startTime" not in status
    # Never a Job: none now, and the Job controller never reported one.
    assert job_of(kube, namespace, "second") is None
    assert events_about(kube, namespace, "Job", "sj-second") == []
    # The first one was not disturbed.
    assert kube.status(namespace, "first")["phase"] == "Running"


def test_cancel_while_running(kube: Kube, namespace: str) -> None:
    kube.apply(simjob("long", run_seconds=LONG), namespace=namespace)
    kube.wait_phase(namespace, "long", "Running", timeout=60)
    uid = kube.simjob(namespace, "long")["metadata"]["uid"]
    assert pods_of(kube, namespace, uid)
    kube.patch_simjob(namespace, "long", {"spec": {"cancel": True}})
    status = kube.wait_phase(namespace, "long", {"Cancelled", "Failed", "Succeeded"})
    assert status["phase"] == "Cancelled"
    assert status["reason"] == Reason.CANCEL_REQUESTED
    # Cancelled is reported only once the Job and its pods are gone.
    assert job_of(kube, namespace, "long") is None
    assert pods_of(kube, namespace, uid) == []
    assert status["usage"]["wallSeconds"] >= 0


def test_cancel_on_finished_changes_nothing(kube: Kube, namespace: str) -> None:
    kube.apply(simjob("done"), namespace=namespace)
    ended = kube.wait_phase(namespace, "done", {"Succeeded", "Failed"})
    assert ended["phase"] == "Succeeded"
    # The end's last write is the usage ledger's marker (status.accountedIn, written
    # right after the phase): from then on nothing may move.
    before = wait_for(
        lambda: (s := kube.status(namespace, "done")).get("accountedIn") and s,
        timeout=30,
        what="the finished SimJob to be counted in the usage ledger",
    )
    kube.patch_simjob(namespace, "done", {"spec": {"cancel": True}})
    generation = kube.simjob(namespace, "done")["metadata"]["generation"]
    assert generation == 2
    # Give the operator a full resync to (wrongly) act on it, then check nothing moved.
    deadline = time.monotonic() + SETTINGS.timings.resync_tick + 2
    while time.monotonic() < deadline:
        assert kube.status(namespace, "done") == before
        time.sleep(0.5)
    assert job_of(kube, namespace, "done") is not None


def test_delete_while_running(kube: Kube, namespace: str) -> None:
    kube.apply(simjob("doomed", run_seconds=LONG), namespace=namespace)
    kube.wait_phase(namespace, "doomed", "Running", timeout=60)
    uid = kube.simjob(namespace, "doomed")["metadata"]["uid"]
    kube.run("delete", "simjobs.simjob.io", "doomed", "-n", namespace, "--timeout=60s")
    assert kube.get("simjobs.simjob.io", "doomed", namespace=namespace) is None
    assert job_of(kube, namespace, "doomed") is None
    assert pods_of(kube, namespace, uid) == []


def test_slots_start_in_strict_order(kube: Kube, namespace: str) -> None:
    names = ["slot-a", "slot-b", "slot-c"]
    overlap: list[list[str]] = []
    stop = threading.Event()

    def sample() -> None:  # at no moment may two hold the one slot
        while not stop.is_set():
            items = kube.items("simjobs.simjob.io", namespace=namespace)
            holders = [
                i["metadata"]["name"]
                for i in items
                if i.get("status", {}).get("phase")
                not in {"Succeeded", "Failed", "Cancelled", "TimedOut"}
                and any(
                    cond["type"] == "Admitted" and cond["status"] == "True"
                    for cond in i.get("status", {}).get("conditions", [])
                )
            ]
            if len(holders) > 1:
                overlap.append(holders)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for name in names:  # created in this order (same second: then by name)
            kube.apply(simjob(name, tier="it-one", run_seconds=2), namespace=namespace)
        statuses = [
            kube.wait_phase(namespace, name, {"Succeeded", "Failed"}, timeout=120) for name in names
        ]
    finally:
        stop.set()
        sampler.join(timeout=30)
    assert [s["phase"] for s in statuses] == ["Succeeded"] * 3
    assert overlap == []
    for earlier, later in itertools.pairwise(statuses):
        assert ts(earlier["completionTime"]) <= ts(later["startTime"])
    admitted = [ts(condition(s, "Admitted")["lastTransitionTime"]) for s in statuses]
    assert admitted == sorted(admitted)


def test_restricted_namespace(kube: Kube, namespace: str) -> None:
    kube.run(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    # The namespace really enforces: a bare root pod is refused...
    refused = kube.run(
        "run", "root-pod", "-n", namespace, "--image=busybox:1.36", "--restart=Never", check=False
    )
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr
    # ...while a SimJob's pod is admitted and runs.
    kube.apply(simjob("secure"), namespace=namespace)
    status = kube.wait_phase(namespace, "secure", {"Succeeded", "Failed"}, timeout=90)
    assert status["phase"] == "Succeeded"
    warnings = [
        e
        for e in events_about(kube, namespace, "Job", "sj-secure")
        if e["reason"] == "FailedCreate"
    ]
    assert warnings == []


def test_operator_log_names_the_simjob(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.apply(simjob("logged"), namespace=namespace)
    kube.wait_phase(namespace, "logged", "Succeeded")
    uid = kube.simjob(namespace, "logged")["metadata"]["uid"]
    lines = [line for line in operator.all_logs().splitlines() if uid in line]
    assert lines
    assert all(f"[{namespace}/logged uid={uid} phase=" in line for line in lines)
    assert any("phase Running -> Succeeded" in line for line in lines)


def test_ttl_deletes_finished_simjobs(kube: Kube, namespace: str) -> None:
    kube.apply(simjob("brief", tier="it-ttl"), namespace=namespace)
    status = kube.wait_phase(namespace, "brief", {"Succeeded", "Failed"})
    assert status["phase"] == "Succeeded"
    wait_for(
        lambda: kube.get("simjobs.simjob.io", "brief", namespace=namespace) is None,
        timeout=30,
        what="the finished SimJob to be deleted after its TTL",
    )
    # Its Job goes with it (owner reference).
    wait_for(
        lambda: job_of(kube, namespace, "brief") is None,
        timeout=60,
        what="the Job to be garbage-collected",
    )


def test_the_tier_priority_class_reaches_the_pod_through_the_grant(
    kube: Kube, namespace: str
) -> None:
    """docs/operator.md promises the tier's priorityClassName on the pod: it is copied into
    status.grant at admission and the Job is built from the grant, never from the tier."""
    priority_class = f"sim-high-{namespace}"[:63]
    tier = f"it-prio-{namespace}"[:63]
    kube.apply(
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": priority_class},
            "value": 1000,
            "description": "SimJob test: a premium tier's pods",
        },
        {
            "apiVersion": "simjob.io/v1alpha1",
            "kind": "SimTier",
            "metadata": {"name": tier},
            "spec": {
                "cpu": "250m",
                "memory": "128Mi",
                "maxRuntimeSeconds": 600,
                "maxConcurrentPerOwner": 2,
                "priorityClassName": priority_class,
            },
        },
    )
    try:
        kube.apply(simjob("prio", tier=tier, run_seconds=LONG), namespace=namespace)
        status = kube.wait_phase(namespace, "prio", "Running")
        assert status["grant"]["priorityClassName"] == priority_class
        assert status["grant"]["cpu"] == "250m"
        job = job_of(kube, namespace, "prio")
        assert job is not None
        assert job["spec"]["template"]["spec"]["priorityClassName"] == priority_class
        uid = kube.simjob(namespace, "prio")["metadata"]["uid"]
        (pod,) = pods_of(kube, namespace, uid)
        assert pod["spec"]["priorityClassName"] == priority_class
        assert pod["spec"]["priority"] == 1000  # resolved by the API server's admission
        # A tier edited after admission changes nothing for the admitted SimJob.
        kube.run(
            "patch", "simtier", tier, "--type=merge", "-p", '{"spec":{"priorityClassName":null}}'
        )
        kube.patch_simjob(namespace, "prio", {"spec": {"cancel": True}})
        status = kube.wait_phase(namespace, "prio", "Cancelled")
        assert status["grant"]["priorityClassName"] == priority_class
    finally:
        kube.run("delete", "simtier", tier, "--wait=false", check=False)
        kube.run("delete", "priorityclass", priority_class, "--wait=false", check=False)
