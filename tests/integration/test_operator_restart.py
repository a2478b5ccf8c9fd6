"""Restart safety: kill -9 the operator repeatedly with many SimJobs in flight.

After each restart the operator must adopt the Jobs it created, recompute slots
from the API server and finish every SimJob correctly, with no duplicate Job
and no pod run twice. Neighbours: conftest.py, test_operator.py.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from simjob_operator.api import names as c
from tests.integration.conftest import TEST_TIERS, Kube, OperatorProcess, simjob, wait_for

pytestmark = pytest.mark.integration

COUNT = 60
LONG = 10  # SimJobs that run 30 s instead of 3 s
TERMINAL = {"Succeeded", "Failed", "Cancelled", "TimedOut"}


def test_kill9_with_many_simjobs_in_flight(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    slots = TEST_TIERS["it-wide"]["maxConcurrentPerOwner"]
    names = [f"crash-{i:03d}" for i in range(COUNT)]
    over_limit: list[int] = []
    stop = threading.Event()

    def sample() -> None:  # the slot bound holds across crashes
        while not stop.is_set():
            items = kube.items("simjobs.simjob.io", namespace=namespace)
            holders = sum(
                1
                for i in items
                if i.get("status", {}).get("phase") not in TERMINAL
                and any(
                    cond["type"] == "Admitted" and cond["status"] == "True"
                    for cond in i.get("status", {}).get("conditions", [])
                )
            )
            if holders > slots:
                over_limit.append(holders)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        # Half fail with exit code 5, so "the right phase" is not just "Succeeded".
        # The last LONG ones are admitted last and run long enough that even the
        # third kill, however fast the rest went, finds work in flight.
        kube.apply(
            *(
                simjob(
                    name,
                    run_seconds=3 if i < COUNT - LONG else 30,
                    **({"fail_exit_code": 5} if i % 2 else {}),
                )
                for i, name in enumerate(names)
            ),
            namespace=namespace,
        )

        def phases() -> Counter[str]:
            items = kube.items("simjobs.simjob.io", namespace=namespace)
            return Counter(i.get("status", {}).get("phase", "Pending") for i in items)

        in_flight_at_kill = []
        for round_ in range(3):  # crash at different moments: after 12, 24, 36 finished
            target = (round_ + 1) * COUNT // 5
            wait_for(
                lambda t=target: sum(phases()[p] for p in TERMINAL) >= t,
                timeout=180,
                what=f"{target} SimJobs to finish",
                detail=phases,
            )
            operator.kill9()
            in_flight_at_kill.append(COUNT - sum(phases()[p] for p in TERMINAL))
            time.sleep(1.0)
            operator.start()
        wait_for(
            lambda: sum(phases()[p] for p in TERMINAL) == COUNT,
            timeout=240,
            what="every SimJob to finish",
            detail=phases,
        )
    finally:
        stop.set()
        sampler.join(timeout=30)

    simjobs = {
        i["metadata"]["name"]: i for i in kube.items("simjobs.simjob.io", namespace=namespace)
    }
    for index, name in enumerate(names):
        status = simjobs[name]["status"]
        expected = "Failed" if index % 2 else "Succeeded"
        assert status["phase"] == expected, (name, status)
        assert status["exitCode"] == (5 if index % 2 else 0), (name, status)

    # One Job per SimJob, labelled with its uid; one pod per Job (nothing ran twice).
    jobs = kube.items("jobs.batch", namespace=namespace)
    assert len(jobs) == COUNT
    uids = Counter(job["metadata"]["labels"][c.LABEL_UID] for job in jobs)
    assert set(uids) == {body["metadata"]["uid"] for body in simjobs.values()}
    assert max(uids.values()) == 1
    pods = kube.items("pods", namespace=namespace)
    per_job = Counter(pod["metadata"]["labels"][c.POD_LABEL_JOB_NAME] for pod in pods)
    assert len(per_job) == COUNT
    assert max(per_job.values()) == 1
    created = Counter(
        e["involvedObject"]["name"]
        for e in kube.items("events", namespace=namespace)
        if e["involvedObject"]["kind"] == "Job" and e["reason"] == "SuccessfulCreate"
    )
    assert max(created.values()) == 1
    assert over_limit == []
    assert operator.starts >= 4
    assert min(in_flight_at_kill) > 0, in_flight_at_kill
