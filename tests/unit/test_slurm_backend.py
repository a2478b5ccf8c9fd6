"""The Slurm backend over an in-memory Slurm (tests/support/fake_slurm.py) and the one
fake API server (tests/support/fake_kube.py): submit adopts or submits exactly once and
returns the job's reference (it never writes the SimJob), polling is batched (one query
per round for 150 SimJobs), semantic errors are ``Rejected`` with a reason, an
unreachable Slurm raises ``BackendUnavailable`` and marks the SlurmCluster
Reachable=False (through the reporting client), cancel is confirmed, and ssh
credentials come from Secrets. No cluster, no Slurm.

The reconciler records what submit returns (status.backendRef), fails a ``Rejected``
SimJob and cancels the job of a SimJob that went away during submit; these tests
assert the backend's side of that contract (the result, and that ``cancel`` stops the
job given the reference), the reconciler's tests the effects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncssh
import pytest

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import BackendRef, Grant
from simjob_operator.api.slurmcluster import SlurmClusterSpec
from simjob_operator.backends.base import BackendUnavailable, Rejected, RetryAfter, Submitted
from simjob_operator.backends.slurm.backend import SlurmBackend
from simjob_operator.backends.slurm.credentials import CREDENTIALS_LABEL
from simjob_operator.backends.slurm.jobs import job_id_of, marker
from simjob_operator.backends.slurm.reachability import ReportingClient, reachable_condition
from simjob_operator.backends.slurm.sites import DEFAULT_LOGIN, Login, SiteError, Sites
from simjob_operator.core.observations import ObservedState
from simjob_operator.core.times import parse_time
from simjob_operator.core.view import SimJobRecord
from slurm_bridge import CliSlurmClient, JobSpec, SlurmClient, SlurmUnavailable
from tests.support.bodies import simjob_body
from tests.support.fake_kube import FakeKube
from tests.support.fake_slurm import T0, T1, FakeSlurm

CREATED = "2025-01-01T12:00:00Z"
GRANT = Grant(cpu="1", memory="256Mi", gpu=0, max_runtime_seconds=60)


class FakeSites(Sites):
    """The real Sites (SlurmClusters, Secrets, errors, the reporting wrapper) with
    FakeSlurm as every client."""

    def __init__(self, kube: FakeKube, slurm: FakeSlurm) -> None:
        super().__init__(kube)
        self.slurm = slurm

    def _local_client(self, spec: SlurmClusterSpec) -> SlurmClient:
        return self.slurm

    def _ssh_client(self, spec: SlurmClusterSpec, target: Any, work_dir: str) -> SlurmClient:
        return self.slurm


class Harness:
    def __init__(self, now: datetime | None = None) -> None:
        self.kube = FakeKube()
        self.slurm = FakeSlurm()
        self.sites = FakeSites(self.kube, self.slurm)
        self.notified: list[tuple[str, str]] = []
        self.now = now or (parse_time(CREATED) or T0) + timedelta(minutes=1)
        self.backend = SlurmBackend(
            self.kube,
            notify=self.notified.append,
            sites=self.sites,
            now=lambda: self.now,
        )
        self.kube.add_cluster("hpc", pollIntervalSeconds=1)

    def simjob(self, name: str, *, job_id: str | None = None, **spec: Any) -> SimJobRecord:
        spec.setdefault("slurm", {"cluster": "hpc"})
        status: dict[str, Any] = {
            "phase": "Queued",
            "reason": Reason.ADMITTED,
            "conditions": [{"type": c.COND_ADMITTED, "status": "True", "reason": "SlotAvailable"}],
            "grant": GRANT.to_api(),
            "backendRef": {"kind": c.SLURM_JOB_KIND},
        }
        if job_id is not None:
            status["backendRef"] = {"kind": c.SLURM_JOB_KIND, "id": job_id, "cluster": "hpc"}
        body = simjob_body(name, created=CREATED, status=status, backend="slurm", **spec)
        body["spec"].pop("image")
        self.kube.add_simjob(body)
        return SimJobRecord.from_body(self.kube.simjobs[(body["metadata"]["namespace"], name)])

    def stored(self, record: SimJobRecord) -> SimJobRecord:
        return SimJobRecord.from_body(self.kube.simjobs[record.key])

    def with_ref(self, record: SimJobRecord, ref: BackendRef) -> SimJobRecord:
        """``record`` with status.backendRef = ``ref`` (what the reconciler writes)."""
        status = record.status.model_copy(deep=True)
        status.backend_ref = ref
        return record.with_status(status)

    def recorded(self, record: SimJobRecord, ref: BackendRef) -> SimJobRecord:
        """Store ``ref`` as the reconciler would after ``Submitted``; the stored SimJob."""
        body = self.kube.simjobs[record.key]
        body.setdefault("status", {})["backendRef"] = ref.to_api()
        return self.stored(record)

    async def submitted(self, record: SimJobRecord) -> SimJobRecord:
        """submit, then record the reference like the reconciler."""
        result = await self.backend.submit(record, GRANT)
        assert isinstance(result, Submitted), result
        return self.recorded(record, result.ref)


@asynccontextmanager
async def running(harness: Harness) -> AsyncIterator[SlurmBackend]:
    task = asyncio.create_task(harness.backend.run())
    try:
        yield harness.backend
    finally:
        harness.backend.stop()
        await asyncio.wait_for(task, 10)


async def eventually(check: Callable[[], bool]) -> None:
    """Wait (at most 10 s) until ``check()`` holds."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def run(scenario: Callable[[Harness], Any], harness: Harness | None = None) -> Harness:
    harness = harness or Harness()

    async def main() -> None:
        async with running(harness):
            await scenario(harness)

    asyncio.run(asyncio.wait_for(main(), 30))
    return harness


# --------------------------------------------------------------------------- submit


def test_submit_finds_first_then_sbatch_once_and_records_the_id() -> None:
    async def scenario(h: Harness) -> None:
        record = h.simjob("one")
        result = await h.backend.submit(record, GRANT)
        assert isinstance(result, Submitted)
        assert result.created
        assert (h.slurm.calls["find"], h.slurm.calls["sbatch"]) == (1, 1)
        job_id = result.ref.id
        assert job_id is not None
        # The reference the reconciler records in status.backendRef:
        assert result.ref.model_dump() == {
            "kind": "SlurmJob", "name": None, "id": job_id, "cluster": "hpc"
        }  # fmt: skip
        assert h.kube.status_patches == []  # an adapter: it never writes the SimJob
        assert h.backend.planned_ref(record) is None  # the id is known only after sbatch
        spec = h.slurm.specs[job_id]
        assert spec.marker == marker(record.uid)
        assert (spec.cpus_per_task, spec.memory_mib, spec.time_limit_seconds) == (1, 256, 60)
        # Submitting again (e.g. a replayed reconcile) adopts: still one job.
        again = await h.backend.submit(h.recorded(record, result.ref), GRANT)
        assert isinstance(again, Submitted)
        assert (again.created, again.ref) == (False, result.ref)
        assert h.slurm.markers()[marker(record.uid)] == 1

    run(scenario)


def test_the_job_runs_with_the_grant_not_a_tier() -> None:
    async def scenario(h: Harness) -> None:
        record = h.simjob("granted", slurm={"cluster": "hpc", "account": "mine"})
        grant = Grant(
            cpu="2500m",
            memory="1Gi",
            max_runtime_seconds=150,
            slurm={"partition": "short", "qos": "normal", "account": "phys"},
        )
        result = await h.backend.submit(record, grant)
        assert isinstance(result, Submitted)
        assert result.ref.id is not None
        spec = h.slurm.specs[result.ref.id]
        assert (spec.cpus_per_task, spec.memory_mib, spec.time_limit_seconds) == (3, 1024, 150)
        assert (spec.partition, spec.qos, spec.account) == ("short", "normal", "mine")
        assert h.kube.calls["get_simtier"] == 0  # never a re-read tier

    run(scenario)


def test_a_job_submitted_before_a_crash_is_adopted_not_resubmitted() -> None:
    async def scenario(h: Harness) -> None:
        record = h.simjob("crashed")
        # sbatch ran, then the operator died before writing the id (status has none).
        job_id = await h.slurm.submit(JobSpec(marker=marker(record.uid), command=["true"]))
        assert job_id_of(record) is None
        assert (await h.backend.observe(record)).state == ObservedState.ABSENT
        result = await h.backend.submit(record, GRANT)
        assert isinstance(result, Submitted)
        assert (result.created, result.ref.id) == (False, job_id)
        assert h.slurm.calls["sbatch"] == 1  # only the one before the "crash"
        # The reconciler records the adopted id (it was job_id_of(stored) == job_id):
        assert job_id_of(h.with_ref(record, result.ref)) == job_id

    run(scenario)


def test_an_ambiguous_sbatch_failure_is_adopted_by_the_retry() -> None:
    async def scenario(h: Harness) -> None:
        record = h.simjob("ambiguous")
        # The first idle round pings now (and says True); the next comes in 1 s.
        await eventually(lambda: "hpc" in h.backend.pollers)
        await eventually(lambda: h.backend.pollers["hpc"].rounds >= 1)
        h.slurm.fail_after_submit = True
        with pytest.raises(BackendUnavailable) as failed:
            await h.backend.submit(record, GRANT)
        assert isinstance(failed.value.__cause__, SlurmUnavailable)
        await asyncio.sleep(0.1)  # the poller writes the condition
        assert h.kube.cluster_status_writes[-1][1]["conditions"][0]["status"] == "False"
        result = await h.backend.submit(h.stored(record), GRANT)
        assert isinstance(result, Submitted)
        assert not result.created  # adopted
        assert h.slurm.markers()[marker(record.uid)] == 1
        await asyncio.sleep(0.1)
        assert h.kube.cluster_status_writes[-1][1]["conditions"][0]["status"] == "True"

    run(scenario)


def test_a_job_whose_simjob_is_deleted_while_sbatch_runs_is_cancelled() -> None:
    """Backend side: submit returns the job; the reconciler finds the SimJob gone and
    calls cancel with the returned reference, which stops the job."""

    async def scenario(h: Harness) -> None:
        record = h.simjob("vanishing")

        def vanish() -> None:  # the finalizer raced us
            h.kube.simjobs.pop(record.key)

        h.slurm.during_submit = vanish
        result = await h.backend.submit(record, GRANT)
        assert isinstance(result, Submitted)
        (job_id,) = h.slurm.jobs
        assert result.ref.id == job_id
        assert await h.backend.cancel(h.with_ref(record, result.ref))
        assert h.slurm.jobs[job_id][1].state == "CANCELLED"  # not left running unowned
        assert h.slurm.calls["scancel"] == 1

    run(scenario)


def test_a_job_whose_simjob_ends_while_sbatch_runs_is_cancelled() -> None:
    """Backend side, as above; the backend never writes the ended SimJob."""

    async def scenario(h: Harness) -> None:
        record = h.simjob("cancelled-meanwhile")

        def cancel_meanwhile() -> None:  # another writer: Queued -> Cancelled
            body = h.kube.simjobs[record.key]
            body["status"]["phase"] = "Cancelled"
            body["metadata"]["resourceVersion"] = str(int(body["metadata"]["resourceVersion"]) + 1)

        h.slurm.during_submit = cancel_meanwhile
        result = await h.backend.submit(record, GRANT)
        assert isinstance(result, Submitted)
        assert result.ref.id is not None
        assert await h.backend.cancel(h.with_ref(record, result.ref))
        assert h.slurm.jobs[result.ref.id][1].state == "CANCELLED"
        assert job_id_of(h.stored(record)) is None  # the ended SimJob is left as it was
        assert h.kube.status_patches == []

    run(scenario)


def test_an_unwanted_job_is_cancelled_once_slurm_answers_again() -> None:
    """Backend side: cancel raises BackendUnavailable while Slurm is down (the reconciler
    retries) and stops the job once Slurm answers again."""

    async def scenario(h: Harness) -> None:
        record = h.simjob("vanishing-in-an-outage")

        def vanish_and_break() -> None:
            h.kube.simjobs.pop(record.key)
            h.slurm.unreachable = "slurmctld is down"

        h.slurm.during_submit = vanish_and_break
        result = await h.backend.submit(record, GRANT)
        assert isinstance(result, Submitted)
        (job_id,) = h.slurm.jobs
        assert result.ref == BackendRef(kind=c.SLURM_JOB_KIND, id=job_id, cluster="hpc")
        unwanted = h.with_ref(record, result.ref)
        with pytest.raises(BackendUnavailable, match="slurmctld is down"):
            await h.backend.cancel(unwanted)
        h.slurm.unreachable = None
        assert await h.backend.cancel(unwanted)
        assert h.slurm.jobs[job_id][1].state == "CANCELLED"
        assert h.slurm.calls["scancel"] >= 2  # refused while down, then done

    run(scenario)


def test_sbatch_refusal_and_unsafe_values_fail_the_simjob_with_a_reason() -> None:
    """Backend side: submit returns ``Rejected`` with the reason (the reconciler fails
    the SimJob with it)."""

    async def scenario(h: Harness) -> None:
        record = h.simjob("refused")
        h.slurm.reject = "sbatch: error: invalid partition specified: nope"
        result = await h.backend.submit(record, GRANT)
        assert isinstance(result, Rejected)
        assert result.reason == Reason.SLURM_REJECTED
        assert result.message is not None
        assert "invalid partition" in result.message
        assert result.message.startswith("sbatch refused the job on hpc: ")
        h.slurm.reject = None
        bad = h.simjob("control-character", args=["a\rb"])
        refused = await h.backend.submit(bad, GRANT)
        assert isinstance(refused, Rejected)
        assert refused.reason == Reason.INVALID_SPEC
        assert h.slurm.calls["sbatch"] == 1  # only the refused one reached Slurm
        # A refusal is an answer: the cluster stays reachable.
        assert h.sites.reachability("hpc").wanted == (True, "Slurm answered")

    run(scenario)


# --------------------------------------------------------------------------- semantic errors


def test_unknown_cluster_gets_a_grace_then_fails() -> None:
    early = Harness(now=(parse_time(CREATED) or T0) + timedelta(seconds=1))

    async def waits(h: Harness) -> None:
        record = h.simjob("nowhere", slurm={"cluster": "missing"})
        observed = await h.backend.observe(record)
        assert (observed.state, observed.reason) == (ObservedState.PENDING, Reason.STARTING)
        delay = observed.recheck_after  # the reconciler requeues record.key after it
        assert delay is not None
        assert 3.9 < delay <= 4.0
        retry = await h.backend.submit(record, GRANT)
        assert isinstance(retry, RetryAfter)
        assert 3.9 < retry.delay <= 4.0
        assert "missing" in retry.message

    run(waits, early)

    async def fails(h: Harness) -> None:
        record = h.simjob("nowhere", slurm={"cluster": "missing"})
        observed = await h.backend.observe(record)
        assert (observed.state, observed.reason) == (
            ObservedState.FAILED,
            Reason.UNKNOWN_SLURM_CLUSTER,
        )
        rejected = await h.backend.submit(record, GRANT)
        assert isinstance(rejected, Rejected)
        assert rejected.reason == Reason.UNKNOWN_SLURM_CLUSTER
        cancelled = h.simjob("nowhere-cancelled", slurm={"cluster": "missing"}, cancel=True)
        assert (await h.backend.observe(cancelled)).state == ObservedState.ABSENT
        assert await h.backend.cancel(cancelled)

    run(fails)


def test_missing_secret_fails_before_submission_but_never_abandons_a_job() -> None:
    async def scenario(h: Harness) -> None:
        h.kube.add_cluster(
            "remote",
            mode="ssh",
            host="login",
            user="op",
            credentialsSecretRef={"namespace": "ops", "name": "op-key"},
            knownHostsSecretRef={"namespace": "ops", "name": "hosts"},
        )
        fresh = h.simjob("no-secret", slurm={"cluster": "remote"})
        observed = await h.backend.observe(fresh)
        assert (observed.state, observed.reason) == (
            ObservedState.FAILED,
            Reason.INVALID_SLURM_CREDENTIALS,
        )
        assert observed.message is not None
        assert "ops/hosts not found" in observed.message
        rejected = await h.backend.submit(fresh, GRANT)
        assert isinstance(rejected, Rejected)
        assert rejected.reason == Reason.INVALID_SLURM_CREDENTIALS
        assert "ops/hosts not found" in rejected.message
        running_job = h.simjob("has-job", job_id="77", slurm={"cluster": "remote"})
        with pytest.raises(BackendUnavailable) as unusable:
            await h.backend.observe(running_job)  # keep the phase, retry later
        assert isinstance(unusable.value.__cause__, SiteError)

    run(scenario)


# --------------------------------------------------------------------------- polling


def test_150_simjobs_are_polled_with_one_query_per_round() -> None:
    async def scenario(h: Harness) -> None:
        records = [h.simjob(f"bulk-{i}") for i in range(150)]
        stored = [await h.submitted(record) for record in records]
        assert h.slurm.calls["sbatch"] == 150
        first = await asyncio.gather(*(h.backend.observe(record) for record in stored))
        assert {o.state for o in first} == {ObservedState.PENDING}
        poller = h.backend.pollers["hpc"]
        assert poller.tracked() == 150
        # Every job starts: the next round reads all 150 in ONE query and notifies each.
        h.notified.clear()
        before, rounds = h.slurm.calls["query"], poller.rounds
        for job_id in list(h.slurm.jobs):
            h.slurm.set_state(job_id, "RUNNING", start_time=T0)
        await eventually(lambda: poller.rounds >= rounds + 2)
        queries = h.slurm.calls["query"] - before
        assert queries == poller.rounds - rounds  # one per round, not one per job
        assert h.slurm.query_sizes[-1] == 150
        assert sorted(set(h.notified)) == sorted(r.key for r in records)
        observed = await asyncio.gather(*(h.backend.observe(record) for record in stored))
        assert {o.state for o in observed} == {ObservedState.RUNNING}
        assert h.slurm.calls["query"] - before == queries  # observe read the cache

    run(scenario)


def test_finished_jobs_are_no_longer_queried_and_failures_carry_the_tail() -> None:
    async def scenario(h: Harness) -> None:
        ok, bad = h.simjob("ok"), h.simjob("bad")
        for record in (ok, bad):
            await h.submitted(record)
        ok_id, bad_id = (job_id_of(h.stored(r)) for r in (ok, bad))
        assert ok_id is not None
        assert bad_id is not None
        h.slurm.set_state(ok_id, "COMPLETED", exit_code=0, start_time=T0, end_time=T1)
        h.slurm.set_state(bad_id, "FAILED", exit_code=3, start_time=T0, end_time=T1)
        h.slurm.tails[bad_id] = "computing\nerror: diverged\n"
        done = await h.backend.observe(h.stored(ok))
        assert (done.state, done.start_time, done.finish_time) == (ObservedState.SUCCEEDED, T0, T1)
        failed = await h.backend.observe(h.stored(bad))
        assert (failed.state, failed.exit_code) == (ObservedState.FAILED, 3)
        assert failed.message is not None
        assert failed.message.endswith("error: diverged")
        assert h.backend.pollers["hpc"].tracked() == 0

    run(scenario)


def test_jobs_of_unfinished_simjobs_are_tracked_at_start_in_one_query() -> None:
    h = Harness()
    records = [h.simjob(f"resumed-{i}", job_id=str(500 + i)) for i in range(40)]
    for i, record in enumerate(records):
        h.slurm.add(str(500 + i), marker(record.uid), "RUNNING", start_time=T0)

    async def scenario(h: Harness) -> None:
        await eventually(lambda: "hpc" in h.backend.pollers)
        poller = h.backend.pollers["hpc"]
        await eventually(lambda: poller.rounds >= 1)
        assert h.slurm.query_sizes[0] == 40
        observed = await asyncio.gather(*(h.backend.observe(r) for r in records))
        assert {o.state for o in observed} == {ObservedState.RUNNING}
        assert h.slurm.calls["query"] == poller.rounds

    run(scenario, h)


def test_unreachable_slurm_keeps_the_phase_and_marks_the_cluster() -> None:
    async def scenario(h: Harness) -> None:
        record = h.simjob("waiting", job_id="900")
        h.slurm.add("900", marker(record.uid), "RUNNING", start_time=T0)
        h.slurm.unreachable = "squeue: error: Unable to contact slurm controller"
        with pytest.raises(BackendUnavailable) as unavailable:
            await h.backend.observe(record)
        assert isinstance(unavailable.value.__cause__, SlurmUnavailable)
        assert "Unable to contact slurm controller" in unavailable.value.message
        _name, status = h.kube.cluster_status_writes[-1]
        (condition,) = status["conditions"]
        assert (condition["type"], condition["status"]) == ("Reachable", "False")
        assert condition["reason"] == Reason.SLURM_UNREACHABLE
        assert "Unable to contact slurm controller" in condition["message"]
        assert h.slurm.calls["sbatch"] == 0
        h.slurm.unreachable = None
        observed = await h.backend.observe(record)
        assert observed.state == ObservedState.RUNNING
        await eventually(
            lambda: h.kube.cluster_status_writes[-1][1]["conditions"][0]["status"] == "True"
        )

    run(scenario)


def test_an_idle_cluster_is_pinged() -> None:
    async def scenario(h: Harness) -> None:
        await eventually(lambda: h.slurm.calls["ping"] >= 1)
        await eventually(lambda: bool(h.kube.cluster_status_writes))
        assert h.kube.cluster_status_writes[-1][1]["conditions"][0]["status"] == "True"
        assert h.slurm.calls["query"] == 0  # nothing to track: no squeue
        h.slurm.unreachable = "slurmctld does not answer"
        await eventually(
            lambda: h.kube.cluster_status_writes[-1][1]["conditions"][0]["status"] == "False"
        )
        (condition,) = h.kube.cluster_status_writes[-1][1]["conditions"]
        assert condition["message"] == "slurmctld does not answer"

    run(scenario)


# --------------------------------------------------------------------------- cancel


def test_cancel_is_confirmed_and_a_completed_job_stays_succeeded() -> None:
    async def scenario(h: Harness) -> None:
        running_one, finished_one = h.simjob("running"), h.simjob("finished")
        for record in (running_one, finished_one):
            await h.submitted(record)
        run_id, done_id = (job_id_of(h.stored(r)) for r in (running_one, finished_one))
        assert run_id is not None
        assert done_id is not None
        h.slurm.set_state(run_id, "RUNNING", start_time=T0)
        h.slurm.set_state(done_id, "COMPLETED", exit_code=0, start_time=T0, end_time=T1)
        for record in (running_one, finished_one):
            h.kube.simjobs[record.key]["spec"]["cancel"] = True
            assert await h.backend.cancel(h.stored(record))
        assert h.slurm.jobs[run_id][1].state == "CANCELLED"
        stopped = await h.backend.observe(h.stored(running_one))
        assert stopped.state == ObservedState.ABSENT  # nothing left: the SimJob is Cancelled
        completed = await h.backend.observe(h.stored(finished_one))
        assert completed.state == ObservedState.SUCCEEDED

    run(scenario)


def test_cancel_finds_a_job_whose_id_was_never_recorded() -> None:
    async def scenario(h: Harness) -> None:
        record = h.simjob("orphan", cancel=True)
        job_id = await h.slurm.submit(JobSpec(marker=marker(record.uid), command=["sleep", "1"]))
        assert await h.backend.cancel(record)
        assert h.slurm.jobs[job_id][1].state == "CANCELLED"

    run(scenario)


# --------------------------------------------------------------------------- sites


def test_ssh_logins_come_from_secrets() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519").export_private_key()
    other = asyncssh.generate_private_key("ssh-ed25519").export_private_key()
    api = FakeKube()
    api.add_cluster(
        "remote",
        mode="ssh",
        host="login.example",
        port=2222,
        user="op",
        workDir="/scratch/op",
        credentialsSecretRef={"namespace": "ops", "name": "op-key"},
        knownHostsSecretRef={"namespace": "ops", "name": "hosts"},
    )
    api.secrets[("ops", "op-key")] = {"ssh-privatekey": key}
    api.secrets[("ops", "hosts")] = {"known_hosts": b"[login.example]:2222 ssh-ed25519 AAAAC3Nz\n"}
    api.secrets[("alice-ns", "alice")] = {
        "ssh-privatekey": other,
        "username": b"alice",
        "workDir": b"/scratch/alice",
    }
    api.secrets[("bob-ns", "bob")] = {"ssh-privatekey": b"not a key"}
    for per_user in (("alice-ns", "alice"), ("bob-ns", "bob")):  # marked for SimJob use
        api.secret_labels[per_user] = {CREDENTIALS_LABEL: "true"}
    # a good key, but not marked: a SimJob cannot make the operator use it
    api.secrets[("alice-ns", "db-password")] = dict(api.secrets[("alice-ns", "alice")])
    api.secret_labels[("alice-ns", "db-password")] = {CREDENTIALS_LABEL: "false"}
    sites = Sites(api)

    async def scenario() -> None:
        site = await sites.get("remote")
        assert site is not None
        default = await sites.client(site, DEFAULT_LOGIN)
        assert isinstance(default, ReportingClient)  # every client reports reachability
        assert default.reachability is sites.reachability("remote")
        assert isinstance(default.inner, CliSlurmClient)
        assert (default.inner.runner.where, default.inner.work_dir) == (
            "ssh op@login.example:2222",
            "/scratch/op",
        )
        alice = await sites.client(site, Login("alice-ns", "alice"))
        assert isinstance(alice, ReportingClient)
        assert isinstance(alice.inner, CliSlurmClient)
        assert (alice.inner.runner.where, alice.inner.work_dir) == (
            "ssh alice@login.example:2222",
            "/scratch/alice",
        )
        assert await sites.client(site, DEFAULT_LOGIN) is default  # cached
        with pytest.raises(SiteError, match="not a usable private key") as bad:
            await sites.client(site, Login("bob-ns", "bob"))
        assert bad.value.reason == Reason.INVALID_SLURM_CREDENTIALS
        with pytest.raises(SiteError, match=r"label it simjob\.io/credentials=true") as unmarked:
            await sites.client(site, Login("alice-ns", "db-password"))
        assert unmarked.value.reason == Reason.INVALID_SLURM_CREDENTIALS
        assert "alice-ns/db-password is not marked as SimJob credentials" in unmarked.value.message
        with pytest.raises(SiteError, match="carol-ns/carol not found"):
            await sites.client(site, Login("carol-ns", "carol"))
        api.add_cluster("here")
        local = await sites.get("here")
        assert local is not None
        with pytest.raises(SiteError, match="needs a SlurmCluster in ssh mode"):
            await sites.client(local, Login("alice-ns", "alice"))
        await sites.close()

    asyncio.run(scenario())


def test_reachable_condition_moves_its_transition_time_only_with_its_status() -> None:
    now = T1
    first = reachable_condition(False, "down", previous=None, now=now, generation=2)
    assert (first["status"], first["reason"], first["message"]) == (
        "False",
        "SlurmUnavailable",
        "down",
    )
    later = reachable_condition(
        False, "still down", previous=first, now=now + timedelta(minutes=1), generation=2
    )
    assert later["lastTransitionTime"] == first["lastTransitionTime"]
    back = reachable_condition(
        True, "Slurm answered", previous=later, now=now + timedelta(minutes=2), generation=2
    )
    assert back["lastTransitionTime"] != first["lastTransitionTime"]
    assert back["reason"] == Reason.SLURM_REACHABLE
    config = reachable_condition(
        False, f"{Reason.SLURM_CONFIG}: no Secret", previous=None, now=now, generation=1
    )
    assert (config["reason"], config["message"]) == (Reason.SLURM_CONFIG, "no Secret")
