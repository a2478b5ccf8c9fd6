"""Run keys and result reuse on the real control plane, through the session operator.

Two concurrent submits of one runKey, each policy (Replace, Forbid), and the same with
a kill -9 of the operator between the two submits: the newer SimJob is created while no
operator runs, and the restarted one decides from the API server's state alone. Then
reuse: a hit ends Succeeded/Reused with no Job, a different inputHash runs.
The pure rules are unit-tested in tests/unit/test_runkeys.py.
Neighbours: conftest.py (fixtures), test_operator_restart.py (kill -9 with many SimJobs).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from simjob_operator.api import names as c
from tests.integration.conftest import Kube, OperatorProcess, simjob, wait_for

pytestmark = pytest.mark.integration

TERMINAL = {"Succeeded", "Failed", "Cancelled", "TimedOut"}


def keyed(name: str, key: str, policy: str, run_seconds: float, **spec: Any) -> dict[str, Any]:
    return simjob(name, run_seconds=run_seconds, runKey=key, concurrencyPolicy=policy, **spec)


def submit_together(kube: Kube, namespace: str, *docs: dict[str, Any]) -> None:
    """Create the SimJobs from threads released at once (two gateway replicas racing)."""
    barrier = threading.Barrier(len(docs))
    errors: list[BaseException] = []

    def create(doc: dict[str, Any]) -> None:
        try:
            barrier.wait(timeout=10)
            kube.apply(doc, namespace=namespace)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test thread
            errors.append(error)

    threads = [threading.Thread(target=create, args=(doc,)) for doc in docs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def final(kube: Kube, namespace: str, names: list[str]) -> dict[str, dict[str, Any]]:
    def ended() -> dict[str, dict[str, Any]] | None:
        statuses = {n: kube.status(namespace, n) for n in names}
        return statuses if all(s.get("phase") in TERMINAL for s in statuses.values()) else None

    return wait_for(
        ended,
        timeout=120,
        what=f"{names} to end",
        detail=lambda: {n: kube.status(namespace, n).get("phase") for n in names},
    )


def jobs_of(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    return {
        job["metadata"]["labels"][c.LABEL_UID]: job
        for job in kube.items("jobs.batch", namespace=namespace)
    }


class RunningSampler:
    """Counts, every 0.2 s, the SimJobs of the namespace that are Running at once."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.most = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        while not self.stop.is_set():
            items = self.kube.items("simjobs.simjob.io", namespace=self.namespace)
            running = sum(1 for i in items if i.get("status", {}).get("phase") == "Running")
            self.most = max(self.most, running)
            time.sleep(0.2)

    def __enter__(self) -> RunningSampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def test_replace_two_concurrent_submits(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    with RunningSampler(kube, namespace) as sampler:
        submit_together(
            kube,
            namespace,
            keyed("press-a", "sim-1", "Replace", 20),
            keyed("press-b", "sim-1", "Replace", 20),
        )
        ends = final(kube, namespace, ["press-a", "press-b"])
    phases = sorted((s["phase"], s.get("reason")) for s in ends.values())
    # One ran, the other (the older by creation order) was replaced: decided one way.
    assert phases[0] == ("Cancelled", "Replaced"), ends
    assert phases[1][0] == "Succeeded", ends
    # Seen in one admission pass, the older never starts: no Job, no slot.
    older = next(n for n, s in ends.items() if s["phase"] == "Cancelled")
    newer = next(n for n, s in ends.items() if s["phase"] == "Succeeded")
    assert f"replaced by the newer run {newer} of its runKey" in ends[older]["message"]
    assert kube.simjob(namespace, older)["metadata"]["uid"] not in jobs_of(kube, namespace)
    assert sampler.most <= 1, f"{sampler.most} runs of one runKey were Running at once"


def test_forbid_two_concurrent_submits(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    submit_together(
        kube,
        namespace,
        keyed("twice-a", "sim-2", "Forbid", 3),
        keyed("twice-b", "sim-2", "Forbid", 3),
    )
    ends = final(kube, namespace, ["twice-a", "twice-b"])
    outcomes = sorted((s["phase"], s.get("reason")) for s in ends.values())
    assert outcomes[0] == ("Failed", "RunInProgress"), ends
    assert outcomes[1][0] == "Succeeded", ends
    loser = next(n for n, s in ends.items() if s["phase"] == "Failed")
    assert kube.simjob(namespace, loser)["metadata"]["uid"] not in jobs_of(kube, namespace)


@pytest.mark.parametrize("policy", ["Replace", "Forbid"])
def test_run_key_decided_after_a_kill9_between_two_submits(
    kube: Kube, namespace: str, operator: OperatorProcess, policy: str
) -> None:
    kube.apply(keyed("first", "sim-3", policy, 15), namespace=namespace)
    kube.wait_phase(namespace, "first", "Running", timeout=60)
    operator.kill9()
    try:
        # The user pressed Run again while no operator runs.
        kube.apply(keyed("second", "sim-3", policy, 3), namespace=namespace)
        time.sleep(1.0)
    finally:
        operator.start()
    ends = final(kube, namespace, ["first", "second"])
    first, second = ends["first"], ends["second"]
    if policy == "Replace":
        assert (first["phase"], first.get("reason")) == ("Cancelled", "Replaced"), ends
        assert second["phase"] == "Succeeded", ends
    else:
        assert first["phase"] == "Succeeded", ends
        assert (second["phase"], second.get("reason")) == ("Failed", "RunInProgress"), ends
        assert "first" in second.get("message", ""), second
    uids = {n: kube.simjob(namespace, n)["metadata"]["uid"] for n in ("first", "second")}
    # Replace: the first run's Job was stopped (deleted), the second has the only Job;
    # Forbid: the first run's Job, adopted after the restart, is the only one.
    survivor = "second" if policy == "Replace" else "first"
    assert set(jobs_of(kube, namespace)) == {uids[survivor]}
    created = [
        e["involvedObject"]["name"]
        for e in kube.items("events", namespace=namespace)
        if e["involvedObject"]["kind"] == "Job" and e["reason"] == "SuccessfulCreate"
    ]
    assert len(created) == len(set(created)), created  # no Job made twice across the kill


def test_reuse_hit_and_miss(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    common: dict[str, Any] = {"runKey": "sim-4", "reuse": "IfSucceeded"}
    kube.apply(simjob("source", run_seconds=1, inputHash="h1", **common), namespace=namespace)
    kube.wait_phase(namespace, "source", "Succeeded", timeout=60)
    kube.apply(
        simjob("hit", run_seconds=1, inputHash="h1", **common),
        simjob("miss", run_seconds=1, inputHash="h2", **common),
        namespace=namespace,
    )
    hit = kube.wait_phase(namespace, "hit", "Succeeded", timeout=60)
    miss = kube.wait_phase(namespace, "miss", "Succeeded", timeout=60)
    assert hit.get("reason") == "Reused", hit
    assert hit["reusedFrom"]["name"] == "source", hit
    assert miss.get("reason") != "Reused", miss
    uids = {n: kube.simjob(namespace, n)["metadata"]["uid"] for n in ("source", "hit", "miss")}
    jobs = jobs_of(kube, namespace)
    assert uids["hit"] not in jobs  # no compute, no slot
    assert {uids["source"], uids["miss"]} <= set(jobs)
