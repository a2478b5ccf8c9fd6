"""The reconciler (simjob_operator.controller.reconciler) against the one fake API
server (tests/support/fake_kube.py) and the real Kubernetes backend: submit uses the
Grant recorded at admission (never the tier as it is now), the reconciler records
what the backend returns, a permanent refusal fails the SimJob with the API server's
message, a temporary outage is one log line, a job whose SimJob went away during
submit is cancelled, cancel converges, TTL comes from the grant, and one reconcile's
JSON log lines carry the SimJob's identity as fields. No cluster.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pythonjsonlogger.json import JsonFormatter

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import BackendRef
from simjob_operator.backends.base import Backend
from simjob_operator.backends.kubernetes.backend import KubernetesBackend
from simjob_operator.controller.reconciler import Reconciler
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.tiers import TierCache
from simjob_operator.controller.workqueue import AlreadyLogged
from simjob_operator.core.logs import ObjectPrefixFormatter
from simjob_operator.core.sightings import Sighting
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import Refused, Unavailable
from tests.support.bodies import simjob_body, tier_spec
from tests.support.fake_kube import FakeKube

NOW = datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC)
GRANT = {
    "cpu": "2",
    "memory": "4Gi",
    "gpu": 0,
    "maxRuntimeSeconds": 600,
    "priorityClassName": "sim-high",
    "nodeSelector": {"simjob.io/pool": "real"},
    "tolerations": [{"key": "simjob.io/pool", "operator": "Equal", "value": "real"}],
}


def admitted(phase: str = "Queued", **extra: Any) -> dict[str, Any]:
    return {
        "phase": phase,
        "reason": Reason.ADMITTED,
        "conditions": [{"type": c.COND_ADMITTED, "status": "True", "reason": Reason.ADMITTED}],
        "grant": dict(GRANT),
        "resources": {"cpu": "2", "memory": "4Gi", "gpu": 0},
        "effectiveMaxRuntimeSeconds": 600,
        "backendRef": {"kind": c.JOB_KIND, "name": "sj-sim"},
        **extra,
    }


class Harness:
    def __init__(self, status: dict[str, Any] | None = None, **spec: Any) -> None:
        self.kube = FakeKube()
        # The tier as it is NOW: edited after admission (1 CPU, no priority class).
        self.kube.add_simtier("small", tier_spec(cpu="1", memory="1Gi"))
        self.kube.add_simjob(simjob_body("sim", status=status, **spec))
        self.admission_requests = 0
        self.freed = 0
        k8s = KubernetesBackend(self.kube, now=lambda: NOW)
        backends: dict[str, Backend] = {c.BACKEND_KUBERNETES: k8s}
        self.reconciler = Reconciler(
            kube=self.kube,
            tiers=TierCache(self.kube),
            recorder=Recorder(self.kube),
            backends=backends,
            request_admission=self._admission,
            slot_freed=self._freed,
            now=lambda: NOW,
        )

    def _admission(self) -> None:
        self.admission_requests += 1

    def _freed(self) -> None:
        self.freed += 1

    def process(self) -> float | None:
        body = self.kube.simjobs[("lab", "sim")]
        return asyncio.run(self.reconciler.process(("lab", "sim"), Sighting(simjob=body)))

    def status(self) -> dict[str, Any]:
        return self.kube.status_of("lab", "sim")

    def pod_spec(self) -> dict[str, Any]:
        job = self.kube.jobs[("lab", "sj-sim")]
        spec: dict[str, Any] = job["spec"]["template"]["spec"]
        return spec


def test_a_new_simjob_asks_for_admission_and_writes_nothing() -> None:
    h = Harness()
    assert h.process() is None
    assert h.admission_requests == 1
    assert h.kube.status_patches == []
    assert h.kube.calls["create_job"] == 0


def test_submit_uses_the_grant_recorded_at_admission_not_the_tier_now() -> None:
    h = Harness(status=admitted())
    h.process()
    pod = h.pod_spec()
    resources = pod["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "2", "memory": "4Gi"}  # the tier now says 1 / 1Gi
    assert pod["priorityClassName"] == "sim-high"
    assert pod["nodeSelector"] == {"simjob.io/pool": "real"}
    assert pod["tolerations"] == [{"key": "simjob.io/pool", "operator": "Equal", "value": "real"}]
    # The runtime (600) plus the default maxPendingSeconds (600): a backstop.
    assert h.kube.jobs[("lab", "sj-sim")]["spec"]["activeDeadlineSeconds"] == 1200
    assert h.kube.calls["get_simtier"] == 0  # the tier was never read to submit


def test_a_second_submit_adopts_and_writes_nothing_new() -> None:
    h = Harness(status=admitted())
    h.process()
    patches = len(h.kube.status_patches)
    h.process()  # no Job event yet: observe finds the Job (pending): nothing to write
    assert h.kube.calls["create_job"] == 1
    assert len(h.kube.status_patches) == patches


def test_a_refusal_of_the_api_server_fails_the_simjob_with_its_message() -> None:
    h = Harness(status=admitted())
    message = 'CREATE Job lab/sj-sim: Job.batch "sj-sim" is invalid: metadata.labels: Invalid'
    h.kube.fail("create_job", Refused(message, status=422))
    h.process()
    status = h.status()
    assert (status["phase"], status["reason"]) == ("Failed", Reason.REFUSED)
    assert "is invalid" in status["message"]
    assert h.freed == 1  # its slot is released
    warnings = [e for e in h.kube.events if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == [Reason.REFUSED]


def test_an_outage_is_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(status=admitted())
    h.kube.fail("get_job", Unavailable("GET Job lab/sj-sim: connection refused"))
    with caplog.at_level(logging.INFO), pytest.raises(AlreadyLogged):
        h.process()
    lines = [r for r in caplog.records if "connection refused" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.WARNING
    assert lines[0].exc_info is None
    ref = lines[0].__dict__["object_ref"]
    assert (ref["namespace"], ref["name"], ref["uid"]) == ("lab", "sim", "uid-lab-sim")
    assert h.kube.status_patches == []  # the phase is kept


def test_a_job_whose_simjob_was_deleted_during_submit_is_cancelled() -> None:
    h = Harness(status=admitted())
    del h.kube.simjobs[("lab", "sim")]["status"]["backendRef"]
    seen: list[BackendRef] = []

    def vanish(record: SimJobRecord, ref: BackendRef) -> None:
        seen.append(ref)
        del h.kube.simjobs[("lab", "sim")]  # deleted while the Job was being created

    h.reconciler.after_submit = vanish
    body = h.kube.simjobs[("lab", "sim")]
    asyncio.run(h.reconciler.process(("lab", "sim"), Sighting(simjob=body)))
    assert seen == [BackendRef(kind=c.JOB_KIND, name="sj-sim")]
    assert ("lab", "sj-sim") not in h.kube.jobs  # nobody else would have stopped it
    assert h.kube.calls["delete_job"] == 1


def test_cancel_stops_the_job_then_records_cancelled() -> None:
    h = Harness(status=admitted("Running"), cancel=True)
    h.kube.add_job(
        "lab",
        {
            "metadata": {
                "name": "sj-sim",
                "uid": "job-uid",
                "labels": {c.LABEL_UID: "uid-lab-sim"},
            },
            "status": {"ready": 1, "active": 1},
        },
    )
    again = h.process()
    assert again == 1.0  # deleted; "gone" only once a look finds neither Job nor pod
    assert h.status()["reason"] == Reason.CANCEL_REQUESTED
    assert ("lab", "sj-sim") not in h.kube.jobs
    h.process()
    assert h.status()["phase"] == "Cancelled"
    assert h.freed == 1


def test_ttl_comes_from_the_grant() -> None:
    finished = admitted("Succeeded", completionTime="2025-01-01T12:00:00Z")
    finished["grant"]["ttlSecondsAfterFinished"] = 0
    h = Harness(status=finished)  # the tier now has no TTL
    h.process()
    assert ("lab", "sim") not in h.kube.simjobs


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ObjectPrefixFormatter(JsonFormatter()))
    root = logging.getLogger("simjob_operator")
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_json_logs_of_one_reconcile_carry_the_identity_as_fields(json_log: io.StringIO) -> None:
    h = Harness(status=admitted())
    h.process()
    records = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert records, "a reconcile that submits logs what it did"
    for record in records:
        assert record["object_ref"] == {
            "apiVersion": c.API_VERSION,
            "kind": c.SIMJOB_KIND,
            "namespace": "lab",
            "name": "sim",
            "uid": "uid-lab-sim",
        }
        assert record["phase"] == "Queued"
        assert record["backend_id"] == "sj-sim"
        assert not record["message"].startswith("[")  # the prefix is for text logs only
    assert any("created Job sj-sim" in record["message"] for record in records)


def test_text_logs_get_the_prefix_from_the_formatter() -> None:
    record = logging.LogRecord("simjob_operator", logging.INFO, __file__, 1, "hello", None, None)
    record.__dict__.update(
        object_ref={"kind": c.SIMJOB_KIND, "namespace": "lab", "name": "sim", "uid": "u1"},
        phase="Running",
        backend_id="sj-sim",
    )
    text = ObjectPrefixFormatter(logging.Formatter("%(message)s")).format(record)
    assert text == "[lab/sim uid=u1 phase=Running backend=sj-sim] hello"


def _job(status: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": "sj-sim", "uid": "job-uid", "labels": {c.LABEL_UID: "uid-lab-sim"}}
    return {"metadata": meta, "status": status}


def _unschedulable_pod() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "sj-sim-x",
            "labels": {c.POD_LABEL_CONTROLLER_UID: "job-uid", c.LABEL_UID: "uid-lab-sim"},
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient cpu.",
                }
            ],
        },
    }


def admitted_at(seconds_ago: float, **extra: Any) -> dict[str, Any]:
    status = admitted(**extra)
    moment = NOW.timestamp() - seconds_ago
    when = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status["conditions"][0]["lastTransitionTime"] = when
    status["grant"]["maxPendingSeconds"] = 60
    return status


def test_unschedulable_is_shown_and_looked_at_again_soon() -> None:
    h = Harness(status=admitted_at(4))
    h.kube.add_job("lab", _job({"active": 1}))
    h.kube.add_pod("lab", _unschedulable_pod())
    again = h.process()
    status = h.status()
    assert (status["phase"], status["reason"]) == ("Queued", "Unschedulable")
    assert "Insufficient cpu" in status["message"]
    assert again is not None
    assert again <= 2.0  # no Job event will announce the scheduler's verdict


def test_max_pending_seconds_fails_unschedulable_and_removes_the_job() -> None:
    h = Harness(status=admitted_at(61))
    h.kube.add_job("lab", _job({"active": 1}))
    h.kube.add_pod("lab", _unschedulable_pod())
    h.process()
    status = h.status()
    assert (status["phase"], status["reason"]) == ("Failed", Reason.UNSCHEDULABLE)
    assert "maxPendingSeconds (60 s)" in status["message"]
    assert "Insufficient cpu" in status["message"]
    assert ("lab", "sj-sim") not in h.kube.jobs
    assert h.freed == 1


def test_the_runtime_counts_from_the_start_not_from_the_job() -> None:
    start = datetime.fromtimestamp(NOW.timestamp() - 500, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    h = Harness(status=admitted("Running", startTime=start))
    h.kube.add_job("lab", _job({"ready": 1, "active": 1}))
    again = h.process()  # 500 s of 600 used: look again when the limit is reached
    assert again == 100.0
    assert h.status()["phase"] == "Running"
    late = datetime.fromtimestamp(NOW.timestamp() - 601, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    h.kube.simjobs[("lab", "sim")]["status"]["startTime"] = late
    h.process()
    status = h.status()
    assert (status["phase"], status["reason"]) == ("TimedOut", Reason.DEADLINE_EXCEEDED)
    assert ("lab", "sj-sim") not in h.kube.jobs  # the pod still ran: it is stopped


def test_a_refused_status_write_is_one_line_and_no_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(status=admitted())
    h.kube.add_job("lab", _job({"ready": 1, "active": 1}))
    h.kube.fail(
        "patch_simjob_status",
        Refused("PATCH SimJob lab/sim status: invalid character 'I'", status=422),
    )
    with caplog.at_level(logging.INFO):
        again = h.process()  # no exception: the work queue does not retry it
    assert again is None
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.ERROR
    assert lines[0].exc_info is None
