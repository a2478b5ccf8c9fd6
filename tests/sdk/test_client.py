"""The synchronous SDK against the real control plane and the session's operator.

Submit is idempotent by name (and survives a lost answer: exactly one SimJob), wait
follows Queued -> Running -> Succeeded through a watch, queue positions match the
operator's, errors are the SDK's own, and nothing of kopf is imported.

Neighbours: conftest.py (fixtures), simjob_sdk/client.py, simjob_sdk/watching.py.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import NewConnectionError, ProtocolError

from simjob_sdk import (
    Conflict,
    NotFound,
    Rejected,
    SimJobClient,
    SimJobObject,
    TimedOut,
)
from simjob_sdk.connection import connect
from tests.integration.conftest import Kube, wait_for
from tests.sdk.conftest import spec

pytestmark = pytest.mark.integration


def test_sdk_imports_without_kopf() -> None:
    code = (
        "import sys, simjob_sdk, simjob_sdk.cli\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('kopf', 'asyncssh', 'aiohttp')\n"
        "       or m.startswith(('simjob_operator.kube', 'simjob_operator.controller',\n"
        "                        'simjob_operator.backends', 'simjob_operator.main'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_submit_get_list_cancel_delete(client: SimJobClient, kube: Kube, namespace: str) -> None:
    job = client.submit(spec(run_seconds=60), name="one", labels={"team": "physics"})
    assert (job.name, job.namespace, job.spec.tier) == ("one", namespace, "it-wide")
    again = client.submit(spec(run_seconds=60), name="one")  # a retry: the same SimJob
    assert again.uid == job.uid
    with pytest.raises(Conflict, match="different spec"):
        client.submit(spec(run_seconds=61), name="one")

    client.submit(spec(command=["true"]), name="two")
    assert [j.name for j in client.list()] == ["one", "two"]
    assert [j.name for j in client.list(label_selector="team=physics")] == ["one"]
    assert [j.name for j in client.list(owner=namespace)] == ["one", "two"]
    assert client.list(owner="somebody-else") == []
    running = wait_for(lambda: client.list(phase="Running"), timeout=60, what="a Running SimJob")
    assert "one" in [j.name for j in running]

    cancelled = client.cancel("one")
    assert cancelled.spec.cancel is True
    ended = client.wait("one", timeout=60)
    assert ended.phase == "Cancelled"
    assert not ended.succeeded

    client.delete("two")
    wait_for(lambda: kube.get("simjobs.simjob.io", "two", namespace=namespace) is None,
             timeout=60, what="two to be deleted")  # fmt: skip
    client.delete("two", missing_ok=True)
    with pytest.raises(NotFound):
        client.get("two")
    with pytest.raises(NotFound):
        client.delete("two")


def test_rejected_carries_the_api_servers_message(client: SimJobClient) -> None:
    bad = spec().model_dump()
    bad["pod_metadata"] = {"labels": {"simjob.io/x": "y"}, "annotations": {}}
    with pytest.raises(Rejected, match="reserved for the operator") as caught:
        client.submit(bad, name="bad")
    assert caught.value.status == 422
    with pytest.raises(Rejected):
        client.submit(spec(), name="Not_A_Name")


class LosesFirstAnswer:
    """Wraps a urllib3 PoolManager: the first POST is sent and processed by the API
    server, then the client sees the connection reset (the answer is lost) — or, with
    ``before=True``, the first POST fails to connect and never reaches the server."""

    def __init__(self, inner: urllib3.PoolManager, *, before: bool) -> None:
        self.inner, self.before, self.failed, self.posts = inner, before, False, 0

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method == "POST":
            self.posts += 1
            if not self.failed:
                self.failed = True
                if self.before:
                    raise NewConnectionError(None, "connection refused (forced by the test)")  # type: ignore[arg-type]
                self.inner.request(method, url, *args, **kwargs)
                raise ProtocolError("Connection aborted.", ConnectionResetError("forced"))
        return self.inner.request(method, url, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("before", [False, True], ids=["answer-lost", "never-sent"])
def test_submit_after_a_connection_error_makes_exactly_one_simjob(
    kubeconfig: Path, kube: Kube, namespace: str, before: bool
) -> None:
    apis = connect(kubeconfig)
    flaky = LosesFirstAnswer(apis.api_client.rest_client.pool_manager, before=before)
    apis.api_client.rest_client.pool_manager = flaky
    client = SimJobClient(namespace, api_client=apis.api_client)
    job = client.submit(spec(), name="retried")
    assert flaky.failed
    assert flaky.posts == 2
    items = kube.items("simjobs.simjob.io", namespace=namespace)
    assert [i["metadata"]["uid"] for i in items] == [job.uid]


def test_wait_sees_queued_running_succeeded(client: SimJobClient) -> None:
    client.submit(spec(tier="it-one", run_seconds=8), name="first")
    client.submit(spec(tier="it-one", run_seconds=1), name="second")
    wait_for(lambda: client.get("second").phase == "Queued", timeout=30, what="second Queued")
    assert client.queue_position("second") == 1
    assert client.queue_position("first") is None  # admitted: not waiting
    client.submit(spec(tier="it-one", run_seconds=1), name="third")
    wait_for(lambda: client.get("third").phase == "Queued", timeout=30, what="third Queued")
    assert client.queue_position("third") == 2

    seen: list[SimJobObject] = []
    done = client.wait("second", timeout=90, on_change=seen.append)
    phases = [j.phase for j in seen]
    assert done.succeeded
    assert done.status.exit_code in (0, None)
    assert phases[0] == "Queued", phases
    assert phases[-1] == "Succeeded", phases
    assert "Running" in phases, phases
    assert phases.index("Queued") < phases.index("Running") < phases.index("Succeeded")
    assert len(seen) == len({j.state() for j in seen}), "on_change only on changes"
    assert client.queue_position("third") in (None, 0, 1)


def test_wait_times_out_and_reports_deletion(client: SimJobClient) -> None:
    client.submit(spec(run_seconds=120), name="slow")
    with pytest.raises(TimedOut):
        client.wait("slow", timeout=2)
    outcome: list[object] = []

    def waiter() -> None:
        try:
            outcome.append(client.wait("slow", timeout=60))
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    client.delete("slow")
    thread.join(timeout=90)
    assert outcome, "wait did not end"
    # The operator stops it first (Cancelled, reason Deleted), unless the object went first.
    ended = outcome[0]
    if isinstance(ended, SimJobObject):
        assert ended.phase == "Cancelled", ended.status
    else:
        assert isinstance(ended, NotFound), ended


def test_watch_reports_changes(client: SimJobClient) -> None:
    client.submit(spec(command=["true"]), name="watched", labels={"app": "w"})
    stop = threading.Event()
    phases = []
    for event in client.watch(label_selector="app=w", stop=stop, round_seconds=5):
        phases.append(event.object.phase)
        if event.object.finished:
            stop.set()
    assert phases[-1] == "Succeeded", phases


def test_logs_need_a_pod_and_outputs_on_kubernetes(client: SimJobClient) -> None:
    client.submit(spec(tier="it-one", run_seconds=30), name="holder")
    client.submit(spec(tier="it-one"), name="waiting")
    wait_for(lambda: client.get("waiting").phase == "Queued", timeout=30, what="Queued")
    with pytest.raises(NotFound, match="no Job yet"):
        list(client.logs("waiting"))
    outputs = client.outputs("waiting")
    assert outputs.backend == "kubernetes"
    assert outputs.location is None


def test_usage_reads_the_ledger(client: SimJobClient, namespace: str) -> None:
    """Two finished SimJobs of one owner show up, counted once each, in the ledger the
    SDK reads (docs/accounting.md); another owner's and earlier days are filtered out."""
    # "alice": an owner the test namespaces allow (the owner policy, helm.md)
    client.submit(spec(run_seconds=1, owner="alice"), name="paid-1")
    client.submit(spec(run_seconds=1, fail_exit_code=3, owner="alice"), name="paid-2")
    client.submit(spec(run_seconds=1), name="other-owner")
    for name in ("paid-1", "paid-2", "other-owner"):
        client.wait(name, timeout=60)

    def counted() -> Any:
        report = client.usage(owner="alice")
        return report if report.total().sim_jobs == 2 else None

    report = wait_for(counted, timeout=30, what="both SimJobs counted")
    (record,) = report.records
    assert (record.owner, record.tier, record.namespace) == ("alice", "it-wide", namespace)
    assert record.totals.outcomes == {"Succeeded": 1, "Failed": 1}
    jobs = [client.get(name) for name in ("paid-1", "paid-2")]
    assert {job.status.accounted_in for job in jobs} == {record.name}
    wall = sum(Decimal(f"{job.status.usage.wall_seconds:.3f}") for job in jobs if job.status.usage)
    assert record.totals.wall_seconds == wall
    assert report.by_tier()["it-wide"] == record.totals
    tomorrow = record.period + timedelta(days=1)
    assert client.usage(owner="alice", since=tomorrow).records == []
    everyone = client.usage()
    assert everyone.total().sim_jobs == 3
    assert set(everyone.by_owner()) == {"alice", namespace}


def test_run_key_fields_pass_through_and_rerun_never_reuses(client: SimJobClient) -> None:
    job = client.submit(
        spec(command=["true"]), name="keyed", run_key="sim-1", input_hash="h1",
        reuse="IfSucceeded",
    )  # fmt: skip
    assert job.spec.run_key == "sim-1"
    assert job.spec.input_hash == "h1"
    assert job.spec.reuse == "IfSucceeded"
    again = client.rerun("keyed", new_name="keyed-again")
    assert again.spec.run_key == "sim-1"
    assert again.spec.input_hash == "h1"
    assert again.spec.reuse == "Never"
    assert again.spec.cancel is False
    assert client.rerun("keyed", new_name="keyed-again").uid == again.uid  # idempotent
