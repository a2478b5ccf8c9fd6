"""The operator's Prometheus metrics (simjob_operator.metrics, controller.exporter),
without a cluster: API requests are counted by RBAC verb and resource, transitions
written by the recorder are observed once (admission, Running, the end with its
CPU-seconds), the gauges are computed from the caches at scrape time, Slurm polls are
timed and their failures counted, and ``/metrics`` serves all of it over HTTP.

The metric objects are process-global, so every check compares before and after.
Neighbours: tests/integration/test_metrics.py (the same on the real control plane).
"""

from __future__ import annotations

import asyncio
import re
import socket
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from simjob_operator import metrics
from simjob_operator.api import names as c
from simjob_operator.api.simjob import SimJobStatus
from simjob_operator.backends.base import BackendUnavailable
from simjob_operator.backends.slurm.jobs import marker
from simjob_operator.controller.exporter import (
    ENV_PORT,
    Exporter,
    RuntimeSource,
    configured_port,
)
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.runtime import Runtime
from simjob_operator.core.logs import simjob_logger
from simjob_operator.core.phases import Phase, Verdict
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import Conflict, Unavailable
from simjob_operator.main import metrics_port
from tests.support.bodies import simjob_body
from tests.support.fake_kube import FakeKube
from tests.support.fake_slurm import T0
from tests.unit.test_slurm_backend import Harness, run

REPO = Path(__file__).resolve().parents[2]
CREATED = "2025-01-01T12:00:00Z"
ADMITTED = {"type": c.COND_ADMITTED, "status": "True", "reason": "SlotAvailable"}


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


# --------------------------------------------------------------------------- API requests


@pytest.mark.parametrize(
    ("what", "labels"),
    [
        ("GET SimJob lab/a", ("get", "simjobs")),
        ("LIST SimJobs in lab", ("list", "simjobs")),
        ("LIST SimJobs", ("list", "simjobs")),
        ("PATCH SimJob lab/a status", ("patch", "simjobs/status")),
        ("PATCH SimJob lab/a spec.cancel", ("patch", "simjobs")),
        ("DELETE SimJob lab/a", ("delete", "simjobs")),
        ("GET SimTier basic", ("get", "simtiers")),
        ("CREATE Job lab/sj-a", ("create", "jobs")),
        ("DELETE Job lab/sj-a", ("delete", "jobs")),
        ("LIST pods in lab", ("list", "pods")),
        ("DELETE pods in lab", ("deletecollection", "pods")),
        ("GET log of pod lab/p", ("get", "pods/log")),
        ("GET SlurmCluster hpc", ("get", "slurmclusters")),
        ("LIST SlurmClusters", ("list", "slurmclusters")),
        ("PATCH SlurmCluster hpc status", ("patch", "slurmclusters/status")),
        ("GET Secret ns/key", ("get", "secrets")),
        ("CREATE Event in lab", ("create", "events")),
    ],
)
def test_requests_are_labelled_as_rbac_names_them(what: str, labels: tuple[str, str]) -> None:
    assert metrics.request_labels(what) == labels


def test_every_request_of_the_client_has_a_known_verb_and_resource() -> None:
    """The descriptions kube/client.py gives its calls all map to RBAC names (a new call
    with an unforeseen description would make a label nobody documented)."""
    source = (REPO / "operator" / "simjob_operator" / "kube" / "client.py").read_text()
    whats = re.findall(r'f?"((?:GET|LIST|PATCH|CREATE|DELETE) [^"]*)"', source)
    assert len(whats) >= 15
    verbs = {"get", "list", "patch", "create", "delete", "deletecollection"}
    for what in whats:
        verb, resource = metrics.request_labels(what)
        assert verb in verbs, what
        assert re.fullmatch(r"[a-z]+s(/[a-z]+)?", resource), (what, resource)


def test_api_requests_and_their_errors_are_counted() -> None:
    before = value("simjob_api_requests_total", verb="patch", resource="simjobs/status")
    errors = value(
        "simjob_api_request_errors_total", verb="patch", resource="simjobs/status", error="Conflict"
    )
    timed = value("simjob_api_request_duration_seconds_count", verb="patch")
    with metrics.api_request("PATCH SimJob lab/a status"):
        pass
    with pytest.raises(Conflict), metrics.api_request("PATCH SimJob lab/a status"):
        raise Conflict("PATCH SimJob lab/a status: the object has been modified", status=409)
    assert value("simjob_api_requests_total", verb="patch", resource="simjobs/status") == before + 2
    assert (
        value(
            "simjob_api_request_errors_total",
            verb="patch",
            resource="simjobs/status",
            error="Conflict",
        )
        == errors + 1
    )
    assert value("simjob_api_request_duration_seconds_count", verb="patch") == timed + 2


def test_the_kube_client_reports_every_request() -> None:
    """``kube.client.Kube`` counts through ``api_request`` (429 retries count again)."""
    from kubernetes.client.api_client import ApiClient
    from kubernetes.client.exceptions import ApiException

    from simjob_operator.kube.client import Kube

    kube = Kube(ApiClient())
    answers: list[Any] = [ApiException(status=503, reason="down"), {"kind": "SimTier"}]

    def send(*_args: Any, **_kwargs: Any) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    before = value("simjob_api_requests_total", verb="get", resource="simtiers")
    failed = value(
        "simjob_api_request_errors_total", verb="get", resource="simtiers", error="Unavailable"
    )
    with pytest.raises(Unavailable):
        asyncio.run(kube.call("GET SimTier basic", send))
    assert asyncio.run(kube.call("GET SimTier basic", send)) == {"kind": "SimTier"}
    assert value("simjob_api_requests_total", verb="get", resource="simtiers") == before + 2
    assert (
        value(
            "simjob_api_request_errors_total", verb="get", resource="simtiers", error="Unavailable"
        )
        == failed + 1
    )


# --------------------------------------------------------------------------- transitions


def at(
    phase: str | None,
    *,
    admitted: bool = False,
    usage: dict[str, float] | None = None,
    tier: str = "small",
    owner: str | None = None,
) -> SimJobRecord:
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if admitted:
        status["conditions"] = [ADMITTED]
    if usage is not None:
        status["usage"] = usage
    spec: dict[str, Any] = {"tier": tier}
    if owner is not None:
        spec["owner"] = owner
    return SimJobRecord.from_body(simjob_body(created=CREATED, status=status or None, **spec))


def test_admission_start_and_end_are_observed_once_each() -> None:
    now = datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC)  # 30 s after creation
    tier = "t-transitions"

    def counts() -> tuple[float, float, float, float, float, float]:
        return (
            value("simjob_admission_wait_seconds_count", tier=tier),
            value("simjob_admission_wait_seconds_sum", tier=tier),
            value("simjob_time_to_running_seconds_count", tier=tier, backend="kubernetes"),
            value("simjob_time_to_running_seconds_sum", tier=tier, backend="kubernetes"),
            value("simjob_finished_total", phase="Succeeded", tier=tier),
            value("simjob_cpu_seconds_total", owner="physics", tier=tier),
        )

    before = counts()
    pending = at(None, tier=tier, owner="physics")
    waiting = at("Queued", tier=tier, owner="physics")
    admitted = at("Queued", admitted=True, tier=tier, owner="physics")
    running = at("Running", admitted=True, tier=tier, owner="physics")
    done = at("Succeeded", admitted=True, usage={"cpuSeconds": 12.5}, tier=tier, owner="physics")
    for old, new in [
        (pending, waiting),  # queued: nothing yet
        (waiting, admitted),  # admission: 30 s
        (admitted, admitted),  # a queue-position write: nothing
        (admitted, running),  # start: 30 s
        (running, running),  # progress: nothing
        (running, done),  # the end: 12.5 CPU-seconds
        (done, done),  # terminal stays: nothing more
    ]:
        metrics.recorded(old, new, now=now)
    after = counts()
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 30, 1, 30, 1, 12.5]


def test_owner_defaults_to_the_namespace_and_a_direct_end_counts() -> None:
    tier = "t-direct"
    before = value("simjob_cpu_seconds_total", owner="lab", tier=tier)
    failed = value("simjob_finished_total", phase="Failed", tier=tier)
    metrics.recorded(
        at("Queued", admitted=True, tier=tier),
        at("Failed", admitted=True, usage={"cpuSeconds": 3.0}, tier=tier),
    )
    assert value("simjob_cpu_seconds_total", owner="lab", tier=tier) == before + 3.0
    assert value("simjob_finished_total", phase="Failed", tier=tier) == failed + 1


def test_the_recorder_reports_what_it_wrote() -> None:
    kube = FakeKube()
    body = kube.add_simjob(simjob_body("rec", tier="t-recorder", status={"phase": "Queued"}))
    record = SimJobRecord.from_body(body)
    status = SimJobStatus.model_validate(
        {"phase": "Running", "conditions": [ADMITTED], "startTime": CREATED}
    )
    verdict = Verdict(Phase.RUNNING, None, None)
    before = value("simjob_time_to_running_seconds_count", tier="t-recorder", backend="kubernetes")
    admitted = value("simjob_admission_wait_seconds_count", tier="t-recorder")
    stored = asyncio.run(Recorder(kube).record(record, status, verdict, simjob_logger(record)))
    assert stored.phase == Phase.RUNNING
    after = value("simjob_time_to_running_seconds_count", tier="t-recorder", backend="kubernetes")
    assert after == before + 1
    assert value("simjob_admission_wait_seconds_count", tier="t-recorder") == admitted + 1
    # nothing to write: nothing observed
    asyncio.run(Recorder(kube).record(stored, stored.status, verdict, simjob_logger(stored)))
    after_noop = value(
        "simjob_time_to_running_seconds_count", tier="t-recorder", backend="kubernetes"
    )
    assert after_noop == after


# --------------------------------------------------------------------------- reconciles


def test_reconciles_are_timed_and_their_errors_counted() -> None:
    async def fine(_key: tuple[str, str], _item: None) -> float | None:
        return 1.0

    async def broken(_key: tuple[str, str], _item: None) -> float | None:
        raise RuntimeError("boom")

    count = value("simjob_reconcile_duration_seconds_count")
    errors = value("simjob_reconcile_errors_total")

    async def through(process: Any) -> float | None:
        result: float | None = await metrics.timed_reconcile(process)(("lab", "a"), None)
        return result

    assert asyncio.run(through(fine)) == 1.0
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(through(broken))
    assert value("simjob_reconcile_duration_seconds_count") == count + 2
    assert value("simjob_reconcile_errors_total") == errors + 1


# --------------------------------------------------------------------------- scrape time


class FakeSource:
    def __init__(self, records: list[SimJobRecord], depth: int, reachable: dict[str, bool]):
        self.records, self.depth, self.clusters = records, depth, reachable

    def simjobs(self) -> list[SimJobRecord]:
        return self.records

    def queue_depth(self) -> int:
        return self.depth

    def reachable(self) -> dict[str, bool]:
        return self.clusters


def test_gauges_are_computed_from_the_source_at_scrape_time() -> None:
    records = [at(None), at("Queued"), at("Queued"), at("Running", admitted=True),
               at("Succeeded", admitted=True, tier="big")]  # fmt: skip
    collector = metrics.StateCollector()
    collector.bind(FakeSource(records, 4, {"hpc": True, "down": False}))
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in collector.collect()
        for sample in family.samples
    }
    assert samples == {
        ("simjob_simjobs", (("phase", "Pending"), ("tier", "small"))): 1,
        ("simjob_simjobs", (("phase", "Queued"), ("tier", "small"))): 2,
        ("simjob_simjobs", (("phase", "Running"), ("tier", "small"))): 1,
        ("simjob_simjobs", (("phase", "Succeeded"), ("tier", "big"))): 1,
        ("simjob_workqueue_depth", ()): 4,
        ("simjob_slurmcluster_reachable", (("cluster", "down"),)): 0,
        ("simjob_slurmcluster_reachable", (("cluster", "hpc"),)): 1,
    }
    collector.bind(None)
    assert [list(family.samples) for family in collector.collect()] == [[], [], []]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return bytes(answer.read()).decode()


def test_the_exporter_serves_the_runtime_over_http() -> None:
    kube = FakeKube()

    async def main() -> str:
        runtime = Runtime(kube)
        for name, phase in (("a", "Queued"), ("b", "Queued"), ("c", "Running")):
            runtime.cache.observe(simjob_body(name, tier="t-http", status={"phase": phase}))
        runtime.queue.add(("lab", "a"))
        exporter = Exporter(runtime, free_port(), "127.0.0.1")
        await exporter.start()
        try:
            return await asyncio.to_thread(scrape, exporter.port)
        finally:
            await exporter.stop()

    text = asyncio.run(main())
    assert 'simjob_simjobs{phase="Queued",tier="t-http"} 2.0' in text
    assert 'simjob_simjobs{phase="Running",tier="t-http"} 1.0' in text
    assert "simjob_workqueue_depth 1.0" in text
    assert "# TYPE simjob_api_requests_total counter" in text
    assert "# TYPE simjob_admission_wait_seconds histogram" in text
    assert "process_cpu_seconds_total" in text
    assert metrics.STATE._source is None  # unbound when stopped


def test_a_port_in_use_fails_the_start() -> None:
    async def main() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            exporter = Exporter(Runtime(FakeKube()), taken.getsockname()[1], "127.0.0.1")
            with pytest.raises(OSError, match="address already in use"):
                await exporter.start()

    asyncio.run(main())


def test_the_port_comes_from_the_environment_or_the_command_line() -> None:
    assert configured_port({}) is None
    assert configured_port({ENV_PORT: ""}) is None
    assert configured_port({ENV_PORT: "8081"}) == 8081
    for bad in ("0", "70000", "http"):
        with pytest.raises(ValueError):  # noqa: PT011 - int() and the range give different texts
            configured_port({ENV_PORT: bad})
    assert metrics_port(["-A", "--metrics-port", "9000", "--verbose"]) == (
        ["-A", "--verbose"],
        "9000",
    )
    assert metrics_port(["--metrics-port=9001", "-n", "lab"]) == (["-n", "lab"], "9001")
    assert metrics_port(["-A"]) == (["-A"], None)


# --------------------------------------------------------------------------- Slurm


def test_slurm_polls_are_timed_failures_counted_and_reachable_shown() -> None:
    """A poll round of a SlurmCluster (the real poller over FakeSlurm) is timed; an
    unreachable Slurm counts a failed poll and shows as reachable 0 at scrape time."""
    polls = value("simjob_slurm_poll_duration_seconds_count", cluster="hpc")
    failures = value("simjob_slurm_poll_failures_total", cluster="hpc")
    reachable: list[dict[str, bool]] = []

    async def scenario(h: Harness) -> None:
        record = h.simjob("polled", job_id="900")
        h.slurm.add("900", marker(record.uid), "RUNNING", start_time=T0)
        await h.backend.observe(record)
        source = RuntimeSource(cast(Runtime, SimpleNamespace(slurm=h.backend)))
        reachable.append(dict(source.reachable()))
        h.slurm.unreachable = "squeue: error: Unable to contact slurm controller"
        with pytest.raises(BackendUnavailable):
            await h.backend.observe(h.simjob("other", job_id="901"))
        reachable.append(dict(source.reachable()))

    run(scenario)
    assert value("simjob_slurm_poll_duration_seconds_count", cluster="hpc") >= polls + 2
    assert value("simjob_slurm_poll_failures_total", cluster="hpc") >= failures + 1
    assert reachable == [{"hpc": True}, {"hpc": False}]
