"""Issue 15 at the operator level, without a cluster or a Slurm: GPUs in the job and in
the pending message, the comment that names the Kubernetes cluster and the orphan
sweep's decisions and safety (other clusters, unserved namespaces, the grace, the fresh
GET), expired certificates (the SlurmCluster's status and condition, the SimJobs'
reason, renewal), and usage from accounting.
The same on the real Slurm and sshd: tests/integration/test_slurm_operator_site.py and
test_slurm_operator_certs.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import Grant, SimJobSlurmSpec, SimJobSpec, SimJobStatus, Usage
from simjob_operator.api.slurmcluster import SlurmClusterSpec
from simjob_operator.backends.slurm.certificates import CredentialWatch
from simjob_operator.backends.slurm.jobs import interpret, job_spec, marker
from simjob_operator.backends.slurm.measures import Annotator, ClusterIdentity, with_usage
from simjob_operator.backends.slurm.reachability import Reachability, ReportingClient
from simjob_operator.backends.slurm.sites import DEFAULT_LOGIN, Certificate, Login, Site
from simjob_operator.backends.slurm.sweep import OrphanSweep, sweep_interval
from simjob_operator.core.logs import simjob_logger
from simjob_operator.core.observations import MeasuredUsage, Observation, ObservedState
from simjob_operator.core.orphans import OrphanTracker, job_comment, parse_mark
from simjob_operator.core.phases import Phase, Verdict
from simjob_operator.core.statuses import build_status, measured_usage
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import Refused
from slurm_bridge import (
    CertificateValidity,
    CredentialsExpired,
    JobKind,
    JobState,
    RunResult,
    SlurmUnavailable,
)
from tests.support.bodies import simjob_body
from tests.support.fake_kube import FakeKube

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ME = "uid-of-kube-system"


def grant(gpu: int = 0) -> Grant:
    return Grant(cpu="1", memory="256Mi", gpu=gpu, max_runtime_seconds=600)


# ---------------------------------------------------------------------- GPUs


def test_the_grants_gpus_and_the_cluster_identity_go_into_the_job() -> None:
    spec = SimJobSpec.model_validate({"tier": "gpu", "command": ["sim"], "backend": "slurm"})
    slurm = SimJobSlurmSpec(cluster="hpc")
    job = job_spec(
        namespace="lab", name="run", uid="u1", spec=spec, slurm=slurm, grant=grant(2), cluster_id=ME
    )
    assert job.gpus == 2
    assert job.comment == f"cluster={ME} simjob=lab/run"
    plain = job_spec(namespace="lab", name="run", uid="u1", spec=spec, slurm=slurm, grant=grant())
    assert plain.gpus is None  # no GPUs: no --gres at all
    assert plain.comment == "lab/run"  # no identity: no sweep will ever touch it


def test_a_job_waiting_for_gpus_says_so() -> None:
    state = JobState("42", "PENDING", JobKind.QUEUED, reason="Resources")
    obs = interpret(state, stopping=False, cluster="hpc", gpus=2)
    assert obs.state is ObservedState.PENDING
    assert obs.reason == "Resources"
    assert obs.message is not None
    assert "in use by other jobs" in obs.message
    assert "it asks 2" in obs.message
    assert "Slurm job 42 on hpc" in obs.message
    other = interpret(
        JobState("43", "PENDING", JobKind.QUEUED, reason="BadConstraints"),
        stopping=False,
        cluster="hpc",
    )
    assert other.message == "Slurm job 43 on hpc is pending (reason BadConstraints)"


# ---------------------------------------------------------------------- marks


def test_marks_name_the_cluster_and_the_simjob() -> None:
    comment = job_comment(ME, "lab", "run")
    mark = parse_mark("7", marker("u1"), comment)
    assert mark is not None
    assert (mark.job_id, mark.uid, mark.cluster_id, mark.key) == ("7", "u1", ME, ("lab", "run"))
    assert parse_mark("7", marker("u1"), "lab/run") is None  # an old job: no cluster
    assert parse_mark("7", "someone-else", comment) is None
    assert parse_mark("7", marker("u1"), "") is None


def test_the_tracker_waits_a_grace_and_keeps_to_its_cluster_and_namespaces() -> None:
    tracker = OrphanTracker(ME, ["lab"], grace=60)
    mine = parse_mark("1", marker("u1"), job_comment(ME, "lab", "a"))
    other_cluster = parse_mark("2", marker("u2"), job_comment("another", "lab", "b"))
    unserved = parse_mark("3", marker("u3"), job_comment(ME, "elsewhere", "c"))
    present = parse_mark("4", marker("u4"), job_comment(ME, "lab", "d"))
    jobs = [job for job in (mine, other_cluster, unserved, present) if job is not None]
    assert tracker.observe(jobs, {"u4"}, now=0.0) == []
    assert tracker.observe(jobs, {"u4"}, now=59.0) == []
    assert tracker.observe(jobs, {"u4"}, now=60.0) == [mine]
    # Its SimJob came back: the count starts again.
    assert tracker.observe(jobs, {"u1", "u4"}, now=61.0) == []
    assert tracker.observe(jobs, {"u4"}, now=62.0) == []
    assert tracker.absent_since("1") == 62.0


# ---------------------------------------------------------------------- the sweep


class SqueueRunner:
    """A runner answering squeue with fixed lines and recording the argv."""

    where = "test"

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.calls: list[list[str]] = []

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout_s: float = 30.0
    ) -> RunResult:
        self.calls.append(list(argv))
        return RunResult(tuple(argv), 0, "\n".join(self.lines) + "\n", "")

    async def close(self) -> None:
        pass


class SweepClient:
    def __init__(self, runner: SqueueRunner) -> None:
        self.runner = runner
        self.cancelled: list[str] = []

    async def cancel(self, job_id: str) -> JobState:
        self.cancelled.append(job_id)
        return JobState(job_id, "CANCELLED", JobKind.CANCELLED)


class OneSite:
    def __init__(self, client: ReportingClient, grace: int) -> None:
        spec = SlurmClusterSpec(work_dir="/w", orphan_grace_seconds=grace)
        self.site = Site("hpc", 1, spec, {})
        self.client_ = client

    def known(self) -> list[Site]:
        return [self.site]

    def cached(self, name: str) -> Site | None:
        return self.site if name == "hpc" else None

    async def client(self, site: Site, login: Login) -> ReportingClient:
        assert login == DEFAULT_LOGIN
        return self.client_


def test_the_sweep_cancels_only_its_own_orphans_after_the_grace_and_a_fresh_get() -> None:
    kube = FakeKube(namespaces=("lab",))
    gone = simjob_body("gone", uid="u-gone")  # not in the API server
    kube.simjobs[("lab", "recreated")] = simjob_body("recreated", uid="u-new")
    kube.simjobs[("lab", "uncached")] = simjob_body("uncached", uid="u-uncached")
    lines = [
        f"11|{marker('u-gone')}|RUNNING|{job_comment(ME, 'lab', 'gone')}",
        f"12|{marker('u-old')}|PENDING|{job_comment(ME, 'lab', 'recreated')}",  # same name
        f"13|{marker('u-uncached')}|RUNNING|{job_comment(ME, 'lab', 'uncached')}",
        f"14|{marker('u-x')}|RUNNING|{job_comment('other-cluster', 'lab', 'x')}",
        f"15|{marker('u-y')}|RUNNING|{job_comment(ME, 'not-served', 'y')}",
        f"16|{marker('u-z')}|RUNNING|lab/z",  # an operator without identities
        "17|not-a-simjob|RUNNING|(null)",
    ]
    runner = SqueueRunner(lines)
    inner = SweepClient(runner)
    client = ReportingClient(inner, Reachability("hpc"))  # type: ignore[arg-type]
    now = [0.0]

    async def identity() -> str:
        return ME

    sweep = OrphanSweep(
        kube,
        OneSite(client, grace=30),  # type: ignore[arg-type]
        cluster_id=identity,
        known_uids=lambda: {"u-new"},  # the cache lags: u-uncached is not there yet
        clock=lambda: now[0],
    )

    async def scenario() -> None:
        assert await sweep.sweep_due() == 0  # first sighting: the grace starts
        assert "--me" in runner.calls[0]
        now[0] = 20.0
        assert await sweep.sweep_due() == 0  # not its turn (every grace/3 = 10 s)...
        now[0] = 29.0
        assert await sweep.sweep_due() == 0  # ...and within the grace
        now[0] = 40.0
        assert await sweep.sweep_due() == 2

    asyncio.run(scenario())
    assert gone["metadata"]["uid"] == "u-gone"
    # 11: gone; 12: the name exists with another uid. 13 exists (fresh GET), 14-17 are
    # not ours to judge.
    assert sorted(inner.cancelled) == ["11", "12"]
    assert sweep.cancelled == inner.cancelled
    assert kube.calls["get_simjob"] == 3
    assert sweep_interval(300) == 60
    assert sweep_interval(30) == 10
    assert sweep_interval(10) == 5


def test_the_identity_is_the_kube_system_uid_read_once() -> None:
    kube = FakeKube()
    identity = ClusterIdentity(kube)
    assert asyncio.run(identity.get()) == "fake-cluster-uid"
    assert asyncio.run(identity.get()) == "fake-cluster-uid"
    assert kube.calls["get_namespace_uid"] == 1
    kube.namespace_uids.clear()
    assert asyncio.run(ClusterIdentity(kube).get()) is None


class ForbiddenKube(FakeKube):
    async def get_namespace_uid(self, name: str) -> str | None:
        raise Refused("namespaces is forbidden", status=403)


def test_without_rbac_for_kube_system_jobs_run_unmarked_and_unswept() -> None:
    identity = ClusterIdentity(ForbiddenKube())
    assert asyncio.run(identity.get()) is None  # no crash, no retry storm: once
    assert asyncio.run(identity.get()) is None


# ---------------------------------------------------------------------- certificates


def validity(before: datetime) -> CertificateValidity:
    return CertificateValidity("op@site", ("op",), T0 - timedelta(hours=1), before)


class CertSites:
    def __init__(self) -> None:
        self.certificates: dict[Login, Certificate] = {}

    def certificate(self, name: str, login: Login) -> Certificate | None:
        return self.certificates.get(login)


def test_an_expired_certificate_is_a_problem_until_a_call_succeeds() -> None:
    sites = CertSites()
    user = Login("lab", "alice")
    sites.certificates[user] = Certificate(validity(T0 + timedelta(minutes=5)), "lab/alice")
    notified: list[tuple[str, str]] = []
    now = [T0]
    watch = CredentialWatch("hpc", sites, notified.append, now=lambda: now[0])  # type: ignore[arg-type]
    assert watch.problem(user) is None
    now[0] = T0 + timedelta(minutes=6)  # by our clock
    problem = watch.problem(user)
    assert problem is not None
    assert "'op@site' in Secret lab/alice expired at 2026-01-01T12:05:00Z" in problem
    assert "keep running" in problem
    assert "nothing is resubmitted" in problem
    refused = CredentialsExpired("refused", valid_before=T0)
    watch.failed(user, refused, [("lab", "a"), ("lab", "b")])
    watch.failed(user, refused, [("lab", "a"), ("lab", "b")])  # no second wake-up
    assert notified == [("lab", "a"), ("lab", "b")]
    watch.failed(user, SlurmUnavailable("down"), [("lab", "c")])  # not a credential matter
    sites.certificates[user] = Certificate(validity(T0 + timedelta(hours=1)), "lab/alice")
    watch.answered(user, [("lab", "a")])  # renewed: the next poll worked
    assert watch.problem(user) is None
    assert notified[-1] == ("lab", "a")


def test_the_cluster_status_shows_the_certificate_and_the_condition() -> None:
    kube = FakeKube()
    kube.add_cluster("hpc")
    sites = CertSites()
    sites.certificates[DEFAULT_LOGIN] = Certificate(validity(T0 + timedelta(minutes=5)), "ns/key")
    now = [T0]
    watch = CredentialWatch("hpc", sites, lambda key: None, now=lambda: now[0])  # type: ignore[arg-type]
    reach = Reachability("hpc")
    reach.answered()

    def write() -> dict[str, Any]:
        watch.show(reach)
        asyncio.run(reach.write(kube, generation=1, status={}, now=now[0]))
        status: dict[str, Any] = kube.slurmclusters["hpc"]["status"]
        return status

    status = write()
    assert status["certificate"]["validBefore"] == "2026-01-01T12:05:00Z"
    assert status["certificate"]["keyId"] == "op@site"
    conditions = {cond["type"]: cond for cond in status["conditions"]}
    assert conditions[c.COND_REACHABLE]["status"] == "True"
    assert conditions[c.COND_CREDENTIALS_EXPIRED]["status"] == "False"
    now[0] = T0 + timedelta(minutes=10)
    status = write()
    expired = {cond["type"]: cond for cond in status["conditions"]}[c.COND_CREDENTIALS_EXPIRED]
    assert expired["status"] == "True"
    assert expired["reason"] == Reason.CREDENTIALS_EXPIRED
    assert "renew it in the Secret" in expired["message"]


def test_a_running_simjob_shows_credentials_expired_and_keeps_running() -> None:
    running = JobState("9", "RUNNING", JobKind.RUNNING, start_time=T0)
    obs = interpret(running, stopping=False, cluster="hpc")
    record = SimJobRecord.from_body(simjob_body("run"))
    annotated = asyncio.run(
        Annotator().annotate(
            obs,
            running,
            ReportingClient(None, Reachability("hpc")),  # type: ignore[arg-type]
            problem="the SSH certificate expired",
            where="Slurm job 9 on hpc",
            log=simjob_logger(record),
        )
    )
    assert annotated.state is ObservedState.RUNNING
    assert annotated.reason == Reason.CREDENTIALS_EXPIRED
    assert annotated.message == "Slurm job 9 on hpc: the SSH certificate expired"


# ---------------------------------------------------------------------- usage


class UsageClient:
    def __init__(self, records: dict[str, JobState]) -> None:
        self.records = records
        self.asked: list[list[str]] = []

    async def usage(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        self.asked.append(list(job_ids))
        return self.records


def test_usage_of_a_finished_job_comes_from_accounting_once() -> None:
    done = JobState("5", "COMPLETED", JobKind.SUCCEEDED, exit_code=0, source="squeue")
    accounted = JobState(
        "5",
        "COMPLETED",
        JobKind.SUCCEEDED,
        source="sacct --completion",
        elapsed_seconds=30,
        alloc_cpus=4,
        max_rss_bytes=2**20,
    )
    inner = UsageClient({"5": accounted})
    client = ReportingClient(inner, Reachability("hpc"))  # type: ignore[arg-type]
    record = SimJobRecord.from_body(simjob_body("run"))
    annotator = Annotator()
    obs = interpret(done, stopping=False, cluster="hpc")
    for _ in range(2):
        annotated = asyncio.run(
            annotator.annotate(
                obs, done, client, problem=None, where="j", log=simjob_logger(record)
            )
        )
    assert annotated.usage == MeasuredUsage("sacct --completion", 30.0, 120.0, 2**20)
    assert inner.asked == [["5"]]  # read once


def test_measured_usage_replaces_the_estimate_in_the_status() -> None:
    estimate = Usage(wall_seconds=33.0, cpu_seconds=66.0)
    no_cpus = MeasuredUsage("sacct", 30.0, None, None)
    assert measured_usage(estimate, no_cpus).cpu_seconds == 60.0  # the estimate's 2 CPUs
    status = SimJobStatus.model_validate(
        {
            "phase": "Running",
            "startTime": "2026-01-01T12:00:00Z",
            "resources": {"cpu": "2", "memory": "1Gi"},
        }
    )
    verdict = Verdict(Phase.SUCCEEDED, Reason.COMPLETED, "done", exit_code=0)
    obs = Observation(
        ObservedState.SUCCEEDED, exit_code=0, usage=MeasuredUsage("sacct", 30.0, 120.0, 1024)
    )
    new = build_status(status, verdict, now=T0 + timedelta(seconds=40), generation=1,
                       observation=obs)  # fmt: skip
    assert new.usage is not None
    assert (new.usage.wall_seconds, new.usage.cpu_seconds) == (30.0, 120.0)
    assert (new.usage.max_rss_bytes, new.usage.source) == (1024, "sacct")


def test_the_jobs_a_poll_saw_end_get_their_usage_in_one_call() -> None:
    def done(job_id: str) -> JobState:
        return JobState(job_id, "COMPLETED", JobKind.SUCCEEDED, exit_code=0, source="squeue")

    running = JobState("3", "RUNNING", JobKind.RUNNING)
    states = {"1": done("1"), "2": done("2"), "3": running, "4": done("4")}
    known = {"1": running, "2": None, "3": running, "4": done("4")}  # 4 ended before
    accounted = {
        job_id: JobState(job_id, "COMPLETED", JobKind.SUCCEEDED, source="sacct",
                         elapsed_seconds=10, alloc_cpus=2)
        for job_id in ("1", "2")
    }  # fmt: skip
    inner = UsageClient(accounted)
    client = ReportingClient(inner, Reachability("hpc"))  # type: ignore[arg-type]
    merged = asyncio.run(with_usage(client, states, known))
    assert inner.asked == [["1", "2"]]  # one call, only the newly finished
    assert merged["1"].cpu_seconds == 20
    assert merged["1"].state == "COMPLETED"
    assert merged["1"].exit_code == 0
    assert merged["3"] is running
    assert merged["4"].elapsed_seconds is None
    annotator = Annotator()
    record = SimJobRecord.from_body(simjob_body("run"))
    obs = interpret(merged["2"], stopping=False, cluster="hpc")
    annotated = asyncio.run(
        annotator.annotate(obs, merged["2"], client, problem=None, where="j",
                           log=simjob_logger(record))
    )  # fmt: skip
    assert annotated.usage == MeasuredUsage("sacct", 10.0, 20.0, None)
    assert inner.asked == [["1", "2"]]  # nothing more asked per job
