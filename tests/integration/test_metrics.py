"""The operator's Prometheus metrics on the real control plane: the session operator
(tests/integration/conftest.py) serves ``/metrics`` on a local port; this test scrapes
it over HTTP while two SimJobs of a tier of its own go through Queued, Running and
Succeeded, and checks that the values move with them: the phase gauges, the admission
and start histograms (+1 per SimJob, once), the finished and CPU-seconds counters, the
API request counters, the reconcile histogram and the work-queue depth. After a kill -9
the new process observes only the transitions it writes itself (no double count), and
the Reachable gauge of a SlurmCluster agrees with its condition.

Neighbours: tests/unit/test_metrics.py (each metric without a cluster), docs/helm.md
("Metrics").
"""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Kube, OperatorProcess, simjob, wait_for

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(operator: OperatorProcess) -> Samples:
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = bytes(answer.read()).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


@pytest.fixture
def tier(kube: Kube, operator: OperatorProcess) -> Iterator[str]:
    """A SimTier only this test uses (one slot per owner), so its gauges are exact."""
    name = f"it-metrics-{uuid.uuid4().hex[:6]}"
    kube.apply(
        {
            "apiVersion": "simjob.io/v1alpha1",
            "kind": "SimTier",
            "metadata": {"name": name},
            "spec": {
                "cpu": "500m",
                "memory": "64Mi",
                "maxRuntimeSeconds": 600,
                "maxConcurrentPerOwner": 1,
            },
        }
    )
    yield name
    kube.run("delete", "simtiers.simjob.io", name, "--ignore-not-found", check=False)


def test_metrics_move_with_a_simjobs_life(
    kube: Kube, operator: OperatorProcess, namespace: str, tier: str
) -> None:
    before = scrape(operator)
    assert ("simjob_workqueue_depth", frozenset()) in before, "no work-queue depth"
    kube.apply(simjob("first", tier=tier, run_seconds=6), namespace=namespace)
    kube.wait_phase(namespace, "first", "Running")
    kube.apply(simjob("second", tier=tier, run_seconds=3), namespace=namespace)
    kube.wait_phase(namespace, "second", "Queued")

    # One slot: the first runs, the second waits; the gauges say so at once.
    during = wait_for(
        lambda: (
            s
            if get(s := scrape(operator), "simjob_simjobs", phase="Running", tier=tier) == 1
            and get(s, "simjob_simjobs", phase="Queued", tier=tier) == 1
            else None
        ),
        timeout=30,
        what="simjob_simjobs: 1 Running and 1 Queued",
        detail=lambda: {k: v for k, v in scrape(operator).items() if k[0] == "simjob_simjobs"},
    )
    assert get(during, "simjob_admission_wait_seconds_count", tier=tier) == 1
    assert get(during, "simjob_time_to_running_seconds_count", tier=tier, backend="kubernetes") == 1
    assert get(during, "simjob_finished_total", phase="Succeeded", tier=tier) == 0

    for name in ("first", "second"):
        kube.wait_phase(namespace, name, "Succeeded", timeout=120)
    after = wait_for(
        lambda: (
            s
            if get(s := scrape(operator), "simjob_simjobs", phase="Succeeded", tier=tier) == 2
            else None
        ),
        timeout=30,
        what="simjob_simjobs: 2 Succeeded",
    )
    assert get(after, "simjob_simjobs", phase="Running", tier=tier) == 0
    assert get(after, "simjob_simjobs", phase="Queued", tier=tier) == 0
    # Admission and start: exactly once per SimJob; the end counted with its CPU-seconds.
    assert get(after, "simjob_admission_wait_seconds_count", tier=tier) == 2
    assert get(after, "simjob_time_to_running_seconds_count", tier=tier, backend="kubernetes") == 2
    waited = get(after, "simjob_admission_wait_seconds_sum", tier=tier)
    assert 0 <= waited < 120
    assert get(after, "simjob_finished_total", phase="Succeeded", tier=tier) == 2
    usage = [kube.status(namespace, n).get("usage") or {} for n in ("first", "second")]
    expected_cpu = sum(float(u.get("cpuSeconds", 0)) for u in usage)
    assert expected_cpu > 0, usage
    cpu = get(after, "simjob_cpu_seconds_total", owner=namespace, tier=tier)
    assert cpu == pytest.approx(expected_cpu)
    # The API calls behind it: two Jobs created, status patches, no other owner's CPU.
    created = "simjob_api_requests_total"
    assert total(after, created, verb="create", resource="jobs") >= (
        total(before, created, verb="create", resource="jobs") + 2
    )
    assert total(after, created, verb="patch", resource="simjobs/status") >= (
        total(before, created, verb="patch", resource="simjobs/status") + 6
    )
    assert get(after, "simjob_reconcile_duration_seconds_count") > get(
        before, "simjob_reconcile_duration_seconds_count"
    )
    assert ("simjob_workqueue_depth", frozenset()) in after
    assert get(after, "process_resident_memory_bytes") > 0


def test_reachable_per_slurmcluster_follows_its_condition(
    kube: Kube, operator: OperatorProcess
) -> None:
    """``simjob_slurmcluster_reachable`` says what the SlurmCluster's Reachable condition
    says (a local-mode cluster with the operator's SLURM_CONF: True when the repo's Slurm
    runs, False when it does not; either way the two must agree)."""
    name = f"it-metrics-{uuid.uuid4().hex[:6]}"
    kube.apply(
        {
            "apiVersion": "simjob.io/v1alpha1",
            "kind": "SlurmCluster",
            "metadata": {"name": name},
            "spec": {"mode": "local", "workDir": "/tmp/simjob-slurm", "pollIntervalSeconds": 1},
        }
    )
    try:

        def condition() -> dict[str, str] | None:
            body = kube.get("slurmclusters.simjob.io", name) or {}
            conditions = (body.get("status") or {}).get("conditions") or []
            return next((c for c in conditions if c.get("type") == "Reachable"), None)

        reachable = wait_for(condition, timeout=90, what=f"SlurmCluster {name} Reachable")
        expected = 1.0 if reachable["status"] == "True" else 0.0
        gauge = ("simjob_slurmcluster_reachable", frozenset({("cluster", name)}))
        wait_for(
            lambda: scrape(operator).get(gauge) == expected,
            timeout=30,
            what=f"{gauge} == {expected}",
            detail=lambda: {k: v for k, v in scrape(operator).items() if k[0] == gauge[0]},
        )
    finally:
        kube.run("delete", "slurmclusters.simjob.io", name, "--ignore-not-found", check=False)


def test_a_restarted_operator_observes_only_what_it_writes(
    kube: Kube, operator: OperatorProcess, namespace: str, tier: str
) -> None:
    """kill -9 while a SimJob runs: the new process finds it Running and observes neither
    its admission nor its start again (the old process did); it writes the end, so the
    end and its CPU-seconds are counted, once."""
    kube.apply(simjob("survivor", tier=tier, run_seconds=8), namespace=namespace)
    kube.wait_phase(namespace, "survivor", "Running")
    operator.kill9()
    operator.start()  # a new process: its counters start at 0
    kube.wait_phase(namespace, "survivor", "Succeeded", timeout=120)
    after = wait_for(
        lambda: (
            s
            if get(s := scrape(operator), "simjob_finished_total", phase="Succeeded", tier=tier)
            else None
        ),
        timeout=30,
        what="the end counted by the new process",
    )
    assert get(after, "simjob_finished_total", phase="Succeeded", tier=tier) == 1
    assert get(after, "simjob_admission_wait_seconds_count", tier=tier) == 0
    assert get(after, "simjob_time_to_running_seconds_count", tier=tier, backend="kubernetes") == 0
    usage = kube.status(namespace, "survivor").get("usage") or {}
    cpu = get(after, "simjob_cpu_seconds_total", owner=namespace, tier=tier)
    assert cpu == pytest.approx(float(usage.get("cpuSeconds", 0)))
    assert cpu > 0
    assert get(after, "simjob_simjobs", phase="Succeeded", tier=tier) == 1
