"""SimJobs with backend slurm, end to end: the operator subprocess on the real control
plane drives the real local Slurm (hack/slurm/up.sh) through a SlurmCluster in local
mode (the operator's SLURM_CONF, set by the ``operator`` fixture).

Succeeded with its runtime and the tier's sbatch options, Failed with exit code and
output tail, TimedOut on a 1-minute tier, cancel while pending (the node is full) and
while running, delete while running (scancel confirmed), cancelled in Slurm by someone
else, slots as for Kubernetes, semantic errors (unknown SlurmCluster, sbatch refusal,
unsafe values, credentials on a local cluster) ending Failed with their reason, and
the examples (examples/simjob-slurm.yaml). Every test checks that each SimJob made
exactly one Slurm job. Neighbours: test_slurm_operator_resilience.py (restarts,
outages, batching), test_slurm_operator_ssh.py (ssh mode), slurm_operator_helpers.py.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Kube, OperatorProcess, wait_for
from tests.integration.slurm_operator_helpers import (
    apply_slurm_tiers,
    backend_id,
    jobs_named,
    marker_of,
    output_file,
    run_dir,
    scontrol_job,
    slurm_cluster,
    slurm_comment,
    slurm_simjob,
    slurm_state,
    wait_reachable,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "it-local"
FINISH_S = 120.0


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slurm-operator-work")


@pytest.fixture(scope="module")
def local_cluster(
    kube: Kube, operator: OperatorProcess, slurm_env: dict[str, str], work_dir: Path
) -> Iterator[str]:
    apply_slurm_tiers(kube)
    kube.apply(slurm_cluster(CLUSTER, mode="local", workDir=str(work_dir)))
    wait_reachable(kube, CLUSTER, "True", timeout=60)
    yield CLUSTER
    kube.run("delete", "slurmclusters.simjob.io", CLUSTER, "--ignore-not-found", check=False)


def one_job(kube: Kube, env: dict[str, str], namespace: str, name: str) -> str:
    """The SimJob's Slurm job id, checking Slurm knows exactly that one job by its marker."""
    job_id = backend_id(kube, namespace, name)
    assert job_id is not None, kube.status(namespace, name)
    assert jobs_named(env, marker_of(kube, namespace, name)) == {job_id}
    return job_id


def test_succeeded_with_its_runtime_and_the_tiers_sbatch_options(
    kube: Kube, namespace: str, local_cluster: str, slurm_env: dict[str, str], work_dir: Path
) -> None:
    kube.apply(
        slurm_simjob("ok", local_cluster, "sh", "-c", "echo start; sleep 3; echo done"),
        namespace=namespace,
    )
    status = kube.wait_phase(namespace, "ok", {"Succeeded", "Failed"}, timeout=FINISH_S)
    assert status["phase"] == "Succeeded", status
    assert (status["reason"], status["exitCode"]) == ("Completed", 0)
    job_id = one_job(kube, slurm_env, namespace, "ok")
    assert status["backendRef"] == {"kind": "SlurmJob", "id": job_id, "cluster": local_cluster}
    assert 3 <= status["usage"]["wallSeconds"] <= 60, status["usage"]
    assert status["usage"]["cpuSeconds"] == status["usage"]["wallSeconds"]  # 1 CPU
    # The run directory, unique per run under the workDir, holds the batch output.
    uid = kube.simjob(namespace, "ok")["metadata"]["uid"]
    assert run_dir(kube, namespace, "ok") == work_dir / namespace / f"ok-{uid}"
    assert status["workspace"] == {
        "cluster": local_cluster,
        "directory": str(work_dir / namespace / f"ok-{uid}"),
    }
    assert output_file(kube, namespace, "ok").read_text() == "start\ndone\n"
    # The tier as sbatch options (Slurm keeps a finished job for MinJobAge, 60 s).
    fields = scontrol_job(slurm_env, job_id)
    assert fields["JobName"] == marker_of(kube, namespace, "ok")
    assert fields["Partition"] == "debug"
    assert fields["TimeLimit"] == "00:10:00"  # maxRuntimeSeconds 600
    assert fields["NumCPUs"] == "1"
    assert fields["MinMemoryNode"] == "100M"
    # The comment names this Kubernetes cluster (kube-system's uid) and the SimJob: the
    # orphan sweep cancels only its own cluster's jobs (backends/slurm/sweep.py).
    kube_system = kube.get("namespace", "kube-system")["metadata"]["uid"]
    assert slurm_comment(slurm_env, job_id) == f"cluster={kube_system} simjob={namespace}/ok"
    conditions = {cond["type"]: cond for cond in status["conditions"]}
    assert conditions["Finished"]["status"] == "True"


def test_failed_with_exit_code_and_bounded_output_tail(
    kube: Kube, namespace: str, local_cluster: str, slurm_env: dict[str, str]
) -> None:
    script = "for i in $(seq 1 30); do echo line $i; done; echo boom >&2; exit 3"
    kube.apply(slurm_simjob("fails", local_cluster, "sh", "-c", script), namespace=namespace)
    status = kube.wait_phase(namespace, "fails", {"Succeeded", "Failed"}, timeout=FINISH_S)
    assert status["phase"] == "Failed", status
    assert (status["reason"], status["exitCode"]) == ("Error", 3)
    message = status["message"]
    assert message.startswith("the simulation exited with code 3 (Slurm job ")
    assert message.endswith("line 29\nline 30\nboom")
    assert "line 11\n" not in message  # 20 lines at most
    one_job(kube, slurm_env, namespace, "fails")


def test_timed_out_on_a_one_minute_tier(
    kube: Kube, namespace: str, local_cluster: str, slurm_env: dict[str, str]
) -> None:
    kube.apply(
        slurm_simjob("slow", local_cluster, "sleep", "600", tier="it-slurm-short"),
        namespace=namespace,
    )
    wait_for(lambda: backend_id(kube, namespace, "slow"), timeout=60, what="the Slurm job of slow")
    job_id = one_job(kube, slurm_env, namespace, "slow")
    fields = scontrol_job(slurm_env, job_id)
    assert (fields["Partition"], fields["TimeLimit"]) == ("short", "00:01:00")
    # 1 minute + slurmctld's time-limit sweep (30 s) + KillWait (5 s) + a poll.
    status = kube.wait_phase(namespace, "slow", {"TimedOut", "Failed", "Succeeded"}, timeout=180)
    assert status["phase"] == "TimedOut", status
    assert status["reason"] == "DeadlineExceeded"
    assert "maximum runtime of 60 s" in status["message"]
    assert status["usage"]["wallSeconds"] >= 60


def test_cancel_while_pending_and_while_running(
    kube: Kube, namespace: str, local_cluster: str, slurm_env: dict[str, str]
) -> None:
    # Each job wants both CPUs of the node: the second one waits in Slurm.
    kube.apply(
        slurm_simjob("first", local_cluster, "sleep", "300", tier="it-slurm-full"),
        namespace=namespace,
    )
    kube.wait_phase(namespace, "first", "Running", timeout=60)
    kube.apply(
        slurm_simjob("second", local_cluster, "sleep", "300", tier="it-slurm-full"),
        namespace=namespace,
    )
    waiting = wait_for(
        lambda: (
            (s := kube.status(namespace, "second")).get("reason") in ("Resources", "Priority") and s
        ),
        timeout=60,
        what="second to wait in Slurm",
        detail=lambda: kube.status(namespace, "second"),
    )
    assert waiting["phase"] == "Queued"
    assert f"on {CLUSTER} waits for " in waiting["message"], waiting  # said in words
    assert f"(Slurm reason {waiting['reason']})" in waiting["message"], waiting
    pending_id = one_job(kube, slurm_env, namespace, "second")
    assert slurm_state(slurm_env, pending_id) == "PENDING"

    kube.patch_simjob(namespace, "second", {"spec": {"cancel": True}})
    status = kube.wait_phase(namespace, "second", {"Cancelled", "Failed", "Succeeded"}, timeout=60)
    assert (status["phase"], status["reason"]) == ("Cancelled", "CancelRequested"), status
    assert slurm_state(slurm_env, pending_id) == "CANCELLED"

    running_id = one_job(kube, slurm_env, namespace, "first")
    kube.patch_simjob(namespace, "first", {"spec": {"cancel": True}})
    status = kube.wait_phase(namespace, "first", {"Cancelled", "Failed", "Succeeded"}, timeout=60)
    assert (status["phase"], status["reason"]) == ("Cancelled", "CancelRequested"), status
    assert slurm_state(slurm_env, running_id) == "CANCELLED"
    assert "startTime" in status
    assert jobs_named(slurm_env, marker_of(kube, namespace, "first")) == {running_id}


def test_delete_while_running_cancels_the_slurm_job(
    kube: Kube, namespace: str, local_cluster: str, slurm_env: dict[str, str]
) -> None:
    kube.apply(slurm_simjob("doomed", local_cluster, "sleep", "300"), namespace=namespace)
    kube.wait_phase(namespace, "doomed", "Running", timeout=60)
    job_id = one_job(kube, slurm_env, namespace, "doomed")
    assert slurm_state(slurm_env, job_id) == "RUNNING"
    kube.run("delete", "simjobs.simjob.io", "doomed", "-n", namespace, "--timeout=60s")
    assert kube.get("simjobs.simjob.io", "doomed", namespace=namespace) is None
    # The finalizer was released only after Slurm confirmed the end.
    assert slurm_state(slurm_env, job_id) == "CANCELLED"


def test_a_job_cancelled_in_slurm_ends_cancelled_in_slurm(
    kube: Kube, namespace: str, local_cluster: str, slurm_env: dict[str, str]
) -> None:
    kube.apply(slurm_simjob("outside", local_cluster, "sleep", "300"), namespace=namespace)
    kube.wait_phase(namespace, "outside", "Running", timeout=60)
    job_id = one_job(kube, slurm_env, namespace, "outside")
    subprocess.run(["scancel", job_id], env=slurm_env, check=True, timeout=60)
    status = kube.wait_phase(namespace, "outside", {"Cancelled", "Failed"}, timeout=60)
    assert (status["phase"], status["reason"]) == ("Cancelled", "CancelledInSlurm"), status
    assert "cancelled in Slurm" in status["message"]


def test_slots_apply_as_for_kubernetes(
    kube: Kube, namespace: str, local_cluster: str, slurm_env: dict[str, str]
) -> None:
    docs = [
        slurm_simjob(f"slot-{i}", local_cluster, "sleep", "4", tier="it-slurm-one")
        for i in range(3)
    ]
    kube.apply(*docs, namespace=namespace)
    kube.wait_phase(namespace, "slot-0", "Running", timeout=60)

    def queued_behind() -> bool:
        return all(
            kube.status(namespace, f"slot-{i}").get("reason") == "WaitingForSlot" for i in (1, 2)
        )

    wait_for(queued_behind, timeout=30, what="slot-1 and slot-2 to wait for the slot")
    assert backend_id(kube, namespace, "slot-1") is None  # nothing submitted while waiting
    assert [kube.status(namespace, f"slot-{i}").get("queuePosition") for i in (1, 2)] == [1, 2]
    finished = [
        kube.wait_phase(namespace, f"slot-{i}", {"Succeeded", "Failed"}, timeout=FINISH_S)
        for i in range(3)
    ]
    assert [s["phase"] for s in finished] == ["Succeeded"] * 3
    for before, after in itertools.pairwise(finished):
        assert after["startTime"] >= before["completionTime"]  # one at a time
    for i in range(3):
        one_job(kube, slurm_env, namespace, f"slot-{i}")


def test_semantic_errors_end_failed_with_a_reason(
    kube: Kube,
    namespace: str,
    local_cluster: str,
    slurm_env: dict[str, str],
    operator: OperatorProcess,
) -> None:
    kube.apply(
        slurm_simjob("no-cluster", "no-such-cluster", "true"),
        slurm_simjob("bad-partition", local_cluster, "true", slurm={"partition": "nosuch"}),
        # A line separator (U+2028): the API server takes it, sbatch cannot safely.
        slurm_simjob("newline", local_cluster, "echo", "one\u2028#SBATCH --uid=0"),
        slurm_simjob("relative", local_cluster, "true", workingDir="relative/dir"),
        slurm_simjob(
            "local-creds", local_cluster, "true", slurm={"credentialsSecretRef": {"name": "k"}}
        ),
        slurm_simjob("fine", local_cluster, "true"),
        namespace=namespace,
    )
    expected = {
        "no-cluster": ("UnknownSlurmCluster", "SlurmCluster 'no-such-cluster' does not exist"),
        "bad-partition": ("SlurmRejected", "invalid partition"),
        "newline": ("InvalidSpec", "control character"),
        "relative": ("InvalidSpec", "must be absolute"),
        "local-creds": ("InvalidSlurmCredentials", "needs a SlurmCluster in ssh mode"),
    }
    for name, (reason, words) in expected.items():
        status = kube.wait_phase(namespace, name, {"Failed", "Succeeded"}, timeout=60)
        assert (status["phase"], status["reason"]) == ("Failed", reason), (name, status)
        assert words in status["message"], (name, status)
        assert jobs_named(slurm_env, marker_of(kube, namespace, name)) == set(), name
    fine = kube.wait_phase(namespace, "fine", {"Failed", "Succeeded"}, timeout=FINISH_S)
    assert fine["phase"] == "Succeeded"
    assert not operator.exited()


def test_the_example_runs_on_the_local_slurm(
    kube: Kube, namespace: str, operator: OperatorProcess, slurm_env: dict[str, str]
) -> None:
    """examples/slurmcluster-local.yaml + examples/simjob-slurm.yaml, as `make run` does."""
    kube.run("apply", "-f", str(REPO / "examples" / "slurmcluster-local.yaml"))
    docs = list(yaml.safe_load_all((REPO / "examples" / "simjob-slurm.yaml").read_text()))
    kube.apply(*(d for d in docs if d["kind"] == "SimTier"))
    kube.apply(*(d for d in docs if d["kind"] == "SimJob"), namespace=namespace)
    status = kube.wait_phase(namespace, "hello-slurm", {"Succeeded", "Failed"}, timeout=FINISH_S)
    assert status["phase"] == "Succeeded", status
    assert status["usage"]["wallSeconds"] >= 5
    job_id = one_job(kube, slurm_env, namespace, "hello-slurm")
    output = output_file(kube, namespace, "hello-slurm")
    assert output.parent.parent.parent == Path("/tmp/simjob-slurm")  # <workDir>/<ns>/<run>
    assert output.read_text().startswith(f"hello from Slurm job {job_id} on ")
    wait_reachable(kube, "local", "True", timeout=30)
