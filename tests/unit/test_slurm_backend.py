"""The Slurm backend over an in-memory Slurm (tests/unit/fake_slurm.py): submit adopts
or submits exactly once and records the job id, polling is batched (one query per
round for 150 SimJobs), semantic errors fail the SimJob with a reason, an unreachable
Slurm keeps the phase and marks the SlurmCluster Reachable=False, cancel is confirmed,
and ssh credentials come from Secrets. No cluster, no Slurm.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, cast

import asyncssh
import pytest
from simjob_operator.backends.slurm.api import SlurmApi

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.slurmcluster import SlurmClusterSpec
from simjob_operator.backends.base import Submitted
from simjob_operator.backends.slurm.backend import SlurmBackend
from simjob_operator.backends.slurm.jobs import job_id_of, marker
from simjob_operator.backends.slurm.poller import reachable_condition
from simjob_operator.backends.slurm.sites import DEFAULT_LOGIN, Login, SiteError, Sites
from simjob_operator.controller.recorder import Recorder
from simjob_operator.controller.tiers import TierCache
from simjob_operator.core.phases import ObservedState
from simjob_operator.core.records import SimJobRecord, parse_time
from simjob_operator.core.validation import Effective
from simjob_operator.kube.client import Kube
from slurm_bridge import CliSlurmClient, JobSpec, SlurmClient, SlurmUnavailable
from tests.support.bodies import simjob_body
from tests.support.fake_slurm import T0, T1, FakeApi, FakeKube, FakeSlurm

CREATED = "2025-01-01T12:00:00Z"
EFFECTIVE = Effective(
    tier="small",
    owner="lab",
    backend="slurm",
    cpu="1",
    memory="256Mi",
    gpu=0,
    cpu_cores=1.0,
    max_runtime_seconds=60,
    max_concurrent_per_owner=200,
    priority_class_name=None,
    ttl_seconds_after_finished=None,
)


class FakeSites(Sites):
    """The real Sites (SlurmClusters, Secrets, errors) with FakeSlurm as every client."""

    def __init__(self, api: FakeApi, slurm: FakeSlurm) -> None:
        super().__init__(cast(SlurmApi, api))
        self.slurm = slurm

    def _local_client(self, spec: SlurmClusterSpec) -> SlurmClient:
        return self.slurm

    def _ssh_client(self, spec: SlurmClusterSpec, target: Any, work_dir: str) -> SlurmClient:
        return self.slurm


class Harness:
    def __init__(self, now: datetime | None = None) -> None:
        self.kube = FakeKube()
        self.api = FakeApi()
        self.slurm = FakeSlurm()
        self.sites = FakeSites(self.api, self.slurm)
        kube = cast(Kube, self.kube)
        self.tiers = TierCache(kube)
        self.tiers.update(
            "small", {"spec": {"cpu": "1", "memory": "256Mi", "maxRuntimeSeconds": 60}}
        )
        self.enqueued: list[tuple[str, str]] = []
        self.requeued: list[tuple[tuple[str, str], float]] = []
        self.now = now or (parse_time(CREATED) or T0) + timedelta(minutes=1)
        self.backend = SlurmBackend(
            kube,
            self.tiers,
            Recorder(kube),
            enqueue=self.enqueued.append,
            requeue=lambda key, delay: self.requeued.append((key, delay)),
            api=cast(SlurmApi, self.api),
            sites=self.sites,
            now=lambda: self.now,
        )
        self.api.add_cluster("hpc", pollIntervalSeconds=1)

    def simjob(self, name: str, *, job_id: str | None = None, **spec: Any) -> SimJobRecord:
        spec.setdefault("slurm", {"cluster": "hpc"})
        status: dict[str, Any] = {
            "phase": "Queued",
            "reason": Reason.ADMITTED,
            "conditions": [{"type": c.COND_ADMITTED, "status": "True", "reason": "SlotAvailable"}],
            "resources": {"cpu": "1", "memory": "256Mi", "gpu": 0},
            "effectiveMaxRuntimeSeconds": 60,
            "backendRef": {"kind": c.SLURM_JOB_KIND},
        }
        if job_id is not None:
            status["backendRef"] = {"kind": c.SLURM_JOB_KIND, "id": job_id, "cluster": "hpc"}
        body = simjob_body(name, created=CREATED, status=status, backend="slurm", **spec)
        body["spec"].pop("image")
        self.kube.add(body)
        return SimJobRecord.from_body(body)

    def stored(self, record: SimJobRecord) -> SimJobRecord:
        return SimJobRecord.from_body(self.kube.simjobs[record.key])


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
        result = await h.backend.submit(record, EFFECTIVE)
        assert result.outcome == Submitted.CREATED
        assert (h.slurm.calls["find"], h.slurm.calls["sbatch"]) == (1, 1)
        stored = h.stored(record)
        assert stored.status.backend_ref is not None
        assert stored.status.backend_ref.model_dump() == {
            "kind": "SlurmJob", "name": None, "id": result.backend_id, "cluster": "hpc"
        }  # fmt: skip
        spec = h.slurm.specs[result.backend_id]
        assert spec.marker == marker(record.uid)
        assert (spec.cpus_per_task, spec.memory_mib, spec.time_limit_seconds) == (1, 256, 60)
        # Submitting again (e.g. a replayed reconcile) adopts: still one job.
        again = await h.backend.submit(h.stored(record), EFFECTIVE)
        assert (again.outcome, again.backend_id) == (Submitted.ADOPTED, result.backend_id)
        assert h.slurm.markers()[marker(record.uid)] == 1

    run(scenario)


def test_a_job_submitted_before_a_crash_is_adopted_not_resubmitted() -> None:
    async def scenario(h: Harness) -> None:
        record = h.simjob("crashed")
        # sbatch ran, then the operator died before writing the id (status has none).
        job_id = await h.slurm.submit(JobSpec(marker=marker(record.uid), command=["true"]))
        assert job_id_of(record) is None
        assert (await h.backend.observe(record)).state == ObservedState.ABSENT
        result = await h.backend.submit(record, EFFECTIVE)
        assert (result.outcome, result.backend_id) == (Submitted.ADOPTED, job_id)
        assert h.slurm.calls["sbatch"] == 1  # only the one before the "crash"
        assert job_id_of(h.stored(record)) == job_id

    run(scenario)


def test_an_ambiguous_sbatch_failure_is_adopted_by_the_retry() -> None:
    async def scenario(h: Harness) -> None:
        record = h.simjob("ambiguous")
        h.slurm.fail_after_submit = True
        with pytest.raises(SlurmUnavailable):
            await h.backend.submit(record, EFFECTIVE)
        await asyncio.sleep(0.1)  # the poller writes the condition
        assert h.api.status_writes[-1][1]["conditions"][0]["status"] == "False"
        result = await h.backend.submit(h.stored(record), EFFECTIVE)
        assert result.outcome == Submitted.ADOPTED
        assert h.slurm.markers()[marker(record.uid)] == 1
        await asyncio.sleep(0.1)
        assert h.api.status_writes[-1][1]["conditions"][0]["status"] == "True"

    run(scenario)


def test_a_job_whose_simjob_is_deleted_while_sbatch_runs_is_cancelled() -> None:
    async def scenario(h: Harness) -> None:
        record = h.simjob("vanishing")
        h.slurm.during_submit = lambda: h.kube.simjobs.pop(record.key)  # finalizer raced us
        result = await h.backend.submit(record, EFFECTIVE)
        assert result.outcome == Submitted.BLOCKED
        (job_id,) = h.slurm.jobs
        assert result.backend_id == job_id
        assert h.slurm.jobs[job_id][1].state == "CANCELLED"  # not left running unowned
        assert h.slurm.calls["scancel"] == 1

    run(scenario)


def test_a_job_whose_simjob_ends_while_sbatch_runs_is_cancelled() -> None:
    async def scenario(h: Harness) -> None:
        record = h.simjob("cancelled-meanwhile")

        def cancel_meanwhile() -> None:  # another writer: Queued -> Cancelled
            body = h.kube.simjobs[record.key]
            body["status"]["phase"] = "Cancelled"
            body["metadata"]["resourceVersion"] = str(int(body["metadata"]["resourceVersion"]) + 1)

        h.slurm.during_submit = cancel_meanwhile
        result = await h.backend.submit(record, EFFECTIVE)
        assert result.outcome == Submitted.BLOCKED
        assert h.slurm.jobs[result.backend_id][1].state == "CANCELLED"
        assert job_id_of(h.stored(record)) is None  # the ended SimJob is left as it was

    run(scenario)


def test_an_unwanted_job_is_cancelled_once_slurm_answers_again() -> None:
    async def scenario(h: Harness) -> None:
        record = h.simjob("vanishing-in-an-outage")

        def vanish_and_break() -> None:
            h.kube.simjobs.pop(record.key)
            h.slurm.unreachable = "slurmctld is down"

        async def come_back() -> None:
            await asyncio.sleep(1.5)  # past the first retry (1 s)
            h.slurm.unreachable = None

        h.slurm.during_submit = vanish_and_break
        returning = asyncio.create_task(come_back())
        result = await h.backend.submit(record, EFFECTIVE)
        await returning
        assert h.slurm.jobs[result.backend_id][1].state == "CANCELLED"
        assert h.slurm.calls["scancel"] >= 2  # refused while down, then done

    run(scenario)


def test_sbatch_refusal_and_unsafe_values_fail_the_simjob_with_a_reason() -> None:
    async def scenario(h: Harness) -> None:
        record = h.simjob("refused")
        h.slurm.reject = "sbatch: error: invalid partition specified: nope"
        result = await h.backend.submit(record, EFFECTIVE)
        assert result.outcome == Submitted.BLOCKED
        observed = await h.backend.observe(h.stored(record))
        assert (observed.state, observed.reason) == (ObservedState.FAILED, Reason.SLURM_REJECTED)
        assert observed.message is not None
        assert "invalid partition" in observed.message
        h.slurm.reject = None
        bad = h.simjob("newline", args=["a\nb"])
        assert (await h.backend.submit(bad, EFFECTIVE)).outcome == Submitted.BLOCKED
        observed = await h.backend.observe(bad)
        assert (observed.state, observed.reason) == (ObservedState.FAILED, Reason.INVALID_SPEC)
        assert h.slurm.calls["sbatch"] == 1  # only the refused one reached Slurm

    run(scenario)


# --------------------------------------------------------------------------- semantic errors


def test_unknown_cluster_gets_a_grace_then_fails() -> None:
    early = Harness(now=(parse_time(CREATED) or T0) + timedelta(seconds=1))

    async def waits(h: Harness) -> None:
        record = h.simjob("nowhere", slurm={"cluster": "missing"})
        observed = await h.backend.observe(record)
        assert (observed.state, observed.reason) == (ObservedState.PENDING, Reason.STARTING)
        ((key, delay),) = h.requeued
        assert key == record.key
        assert 3.9 < delay <= 4.0

    run(waits, early)

    async def fails(h: Harness) -> None:
        record = h.simjob("nowhere", slurm={"cluster": "missing"})
        observed = await h.backend.observe(record)
        assert (observed.state, observed.reason) == (
            ObservedState.FAILED,
            Reason.UNKNOWN_SLURM_CLUSTER,
        )
        cancelled = h.simjob("nowhere-cancelled", slurm={"cluster": "missing"}, cancel=True)
        assert (await h.backend.observe(cancelled)).state == ObservedState.ABSENT
        assert await h.backend.cancel(cancelled)

    run(fails)


def test_missing_secret_fails_before_submission_but_never_abandons_a_job() -> None:
    async def scenario(h: Harness) -> None:
        h.api.add_cluster(
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
        running_job = h.simjob("has-job", job_id="77", slurm={"cluster": "remote"})
        with pytest.raises(SiteError):
            await h.backend.observe(running_job)  # keep the phase, retry later

    run(scenario)


# --------------------------------------------------------------------------- polling


def test_150_simjobs_are_polled_with_one_query_per_round() -> None:
    async def scenario(h: Harness) -> None:
        records = [h.simjob(f"bulk-{i}") for i in range(150)]
        for record in records:
            await h.backend.submit(record, EFFECTIVE)
        assert h.slurm.calls["sbatch"] == 150
        stored = [h.stored(record) for record in records]
        first = await asyncio.gather(*(h.backend.observe(record) for record in stored))
        assert {o.state for o in first} == {ObservedState.PENDING}
        poller = h.backend.pollers["hpc"]
        assert poller.tracked() == 150
        # Every job starts: the next round reads all 150 in ONE query and enqueues each.
        h.enqueued.clear()
        before, rounds = h.slurm.calls["query"], poller.rounds
        for job_id in list(h.slurm.jobs):
            h.slurm.set_state(job_id, "RUNNING", start_time=T0)
        await eventually(lambda: poller.rounds >= rounds + 2)
        queries = h.slurm.calls["query"] - before
        assert queries == poller.rounds - rounds  # one per round, not one per job
        assert h.slurm.query_sizes[-1] == 150
        assert sorted(set(h.enqueued)) == sorted(r.key for r in records)
        observed = await asyncio.gather(*(h.backend.observe(record) for record in stored))
        assert {o.state for o in observed} == {ObservedState.RUNNING}
        assert h.slurm.calls["query"] - before == queries  # observe read the cache

    run(scenario)


def test_finished_jobs_are_no_longer_queried_and_failures_carry_the_tail() -> None:
    async def scenario(h: Harness) -> None:
        ok, bad = h.simjob("ok"), h.simjob("bad")
        for record in (ok, bad):
            await h.backend.submit(record, EFFECTIVE)
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
        with pytest.raises(SlurmUnavailable):
            await h.backend.observe(record)
        _name, status = h.api.status_writes[-1]
        (condition,) = status["conditions"]
        assert (condition["type"], condition["status"]) == ("Reachable", "False")
        assert condition["reason"] == Reason.SLURM_UNREACHABLE
        assert "Unable to contact slurm controller" in condition["message"]
        assert h.slurm.calls["sbatch"] == 0
        h.slurm.unreachable = None
        observed = await h.backend.observe(record)
        assert observed.state == ObservedState.RUNNING
        await eventually(lambda: h.api.status_writes[-1][1]["conditions"][0]["status"] == "True")

    run(scenario)


# --------------------------------------------------------------------------- cancel


def test_cancel_is_confirmed_and_a_completed_job_stays_succeeded() -> None:
    async def scenario(h: Harness) -> None:
        running_one, finished_one = h.simjob("running"), h.simjob("finished")
        for record in (running_one, finished_one):
            await h.backend.submit(record, EFFECTIVE)
        run_id, done_id = (job_id_of(h.stored(r)) for r in (running_one, finished_one))
        assert run_id is not None
        assert done_id is not None
        h.slurm.set_state(run_id, "RUNNING", start_time=T0)
        h.slurm.set_state(done_id, "COMPLETED", exit_code=0, start_time=T0, end_time=T1)
        for record in (running_one, finished_one):
            cancelling = h.stored(record)
            body = {**cancelling.body, "spec": {**cancelling.body["spec"], "cancel": True}}
            h.kube.add(body)
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
    api = FakeApi()
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
    sites = Sites(cast(SlurmApi, api))

    async def scenario() -> None:
        site = await sites.get("remote")
        assert site is not None
        default = await sites.client(site, DEFAULT_LOGIN)
        assert isinstance(default, CliSlurmClient)
        assert (default.runner.where, default.work_dir) == (
            "ssh op@login.example:2222",
            "/scratch/op",
        )
        alice = await sites.client(site, Login("alice-ns", "alice"))
        assert isinstance(alice, CliSlurmClient)
        assert (alice.runner.where, alice.work_dir) == (
            "ssh alice@login.example:2222",
            "/scratch/alice",
        )
        assert await sites.client(site, DEFAULT_LOGIN) is default  # cached
        with pytest.raises(SiteError, match="not a usable private key") as bad:
            await sites.client(site, Login("bob-ns", "bob"))
        assert bad.value.reason == Reason.INVALID_SLURM_CREDENTIALS
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
