"""The Slurm backend when things break, and at scale (real control plane, real Slurm).

* The operator dies between sbatch and the status write (a test hook makes it exit
  right after sbatch returned, like a kill -9 at the worst moment): the restarted
  operator adopts the job by its marker — exactly one Slurm job, the SimJob Succeeded.
* slurmctld is stopped (SIGTERM, by its PID file) mid-run and restarted
  (hack/slurm/up.sh): the SlurmCluster goes Reachable=False with the error and back to
  True, running SimJobs keep their phase and finish Succeeded, a SimJob created during
  the outage is submitted once it returns; one Slurm job per SimJob.
* 110 SimJobs are tracked with one squeue call per poll interval: the operator runs
  with a counting ``squeue`` wrapper first on its PATH, so the count is Slurm's own.
Neighbours: test_slurm_operator.py, slurm_operator_helpers.py, conftest.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Kube, OperatorProcess, wait_for
from tests.integration.slurm_operator_helpers import (
    apply_slurm_tiers,
    backend_id,
    jobs_named,
    marker_of,
    slurm_cluster,
    slurm_simjob,
    wait_reachable,
)
from tests.support.crash_hooks import ENV_CRASH_AFTER_SUBMIT

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "it-resilience"
FINISH_S = 120.0
BULK = 110


@pytest.fixture(scope="module")
def local_cluster(
    kube: Kube,
    operator: OperatorProcess,
    slurm_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    apply_slurm_tiers(kube)
    work_dir = tmp_path_factory.mktemp("slurm-resilience-work")
    kube.apply(slurm_cluster(CLUSTER, mode="local", workDir=str(work_dir)))
    wait_reachable(kube, CLUSTER, "True", timeout=60)
    yield CLUSTER
    kube.run("delete", "slurmclusters.simjob.io", CLUSTER, "--ignore-not-found", check=False)


def restart_operator(operator: OperatorProcess) -> None:
    operator.stop()
    operator.start()


def test_crash_between_sbatch_and_status_write_adopts_the_job(
    kube: Kube,
    namespace: str,
    local_cluster: str,
    operator: OperatorProcess,
    slurm_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_CRASH_AFTER_SUBMIT, f"{namespace}/crashy")
    operator.extra_modules = ["tests.support.crash_hooks"]
    restart_operator(operator)
    kube.apply(slurm_simjob("crashy", local_cluster, "sleep", "5"), namespace=namespace)
    wait_for(operator.exited, timeout=60, what="the operator to exit after sbatch")
    assert f"{ENV_CRASH_AFTER_SUBMIT}={namespace}/crashy: exiting after submit" in (
        operator.log_text()
    )
    marker = marker_of(kube, namespace, "crashy")
    submitted = jobs_named(slurm_env, marker)
    assert len(submitted) == 1, submitted  # sbatch ran...
    assert backend_id(kube, namespace, "crashy") is None  # ...and its id was never written
    monkeypatch.delenv(ENV_CRASH_AFTER_SUBMIT)
    operator.extra_modules = []
    operator.start()
    status = kube.wait_phase(namespace, "crashy", {"Succeeded", "Failed"}, timeout=FINISH_S)
    assert status["phase"] == "Succeeded", status
    assert jobs_named(slurm_env, marker) == submitted == {status["backendRef"]["id"]}
    assert "adopted Slurm job" in operator.log_text()


def _slurmctld_pid() -> int:
    return int((REPO / ".slurm" / "run" / "slurmctld.pid").read_text().strip())


def test_slurmctld_restart_mid_run_recovers_without_duplicates(
    kube: Kube,
    namespace: str,
    local_cluster: str,
    operator: OperatorProcess,
    slurm_env: dict[str, str],
) -> None:
    # Two jobs of one CPU each: both run at once on the local node (nproc CPUs, at
    # least 2 here), so both are Running when the controller goes down; a third
    # would wait for a CPU and start only as the first two end.
    names = [f"through-{i}" for i in range(2)]
    kube.apply(
        *(slurm_simjob(name, local_cluster, "sleep", "45") for name in names),
        namespace=namespace,
    )
    for name in names:
        kube.wait_phase(namespace, name, "Running", timeout=60)
    pid = _slurmctld_pid()
    os.kill(pid, signal.SIGTERM)  # our own Slurm's controller, by its PID file
    try:
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=30, what="slurmctld to stop")
        down = wait_reachable(kube, local_cluster, "False", timeout=90)
        assert down["reason"] == "SlurmUnavailable"
        assert "slurm" in down["message"].lower(), down
        # Created during the outage: admitted, but nothing can be submitted yet.
        kube.apply(slurm_simjob("during", local_cluster, "sleep", "2"), namespace=namespace)
        time.sleep(5)
        assert backend_id(kube, namespace, "during") is None
        for name in names:
            assert kube.status(namespace, name)["phase"] == "Running"  # kept, not guessed
    finally:
        subprocess.run(
            ["bash", str(REPO / "hack" / "slurm" / "up.sh")],
            env=slurm_env,
            check=True,
            capture_output=True,
            timeout=300,
        )
    wait_reachable(kube, local_cluster, "True", timeout=90)
    for name in [*names, "during"]:
        status = kube.wait_phase(namespace, name, {"Succeeded", "Failed"}, timeout=FINISH_S)
        assert status["phase"] == "Succeeded", (name, status)
        assert jobs_named(slurm_env, marker_of(kube, namespace, name)) == {
            status["backendRef"]["id"]
        }
    assert not operator.exited()


def _squeue_wrapper(directory: Path, log: Path) -> None:
    real = shutil.which("squeue")
    assert real is not None
    wrapper = directory / "squeue"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)


def test_110_simjobs_are_polled_with_one_squeue_call_per_interval(
    kube: Kube,
    namespace: str,
    local_cluster: str,
    operator: OperatorProcess,
    slurm_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    log = tmp_path / "squeue.log"
    _squeue_wrapper(tmp_path, log)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    restart_operator(operator)
    try:
        names = [f"bulk-{i:03d}" for i in range(BULK)]
        started = time.monotonic()
        kube.apply(
            *(slurm_simjob(n, local_cluster, "sleep", "300", tier="it-slurm-bulk") for n in names),
            namespace=namespace,
        )

        def all_submitted() -> bool:
            items = kube.items("simjobs.simjob.io", namespace=namespace)
            ids = [((i.get("status") or {}).get("backendRef") or {}).get("id") for i in items]
            return len(ids) == BULK and all(ids)

        wait_for(all_submitted, timeout=300, interval=1, what=f"{BULK} Slurm jobs")
        submit_s = time.monotonic() - started
        time.sleep(2)  # the early polls of the last submissions
        log.write_text("")
        window = 8.0
        time.sleep(window)
        calls = [line for line in log.read_text().splitlines() if line.strip()]
        polls = [line for line in calls if "--jobs=" in line]
        sizes = [len(line.split("--jobs=")[1].split()[0].split(",")) for line in polls]
        print(
            f"\n{BULK} SimJobs submitted in {submit_s:.1f} s; in {window:.0f} s with "
            f"pollIntervalSeconds=1: {len(calls)} squeue calls, {len(polls)} polls of "
            f"{sizes} jobs"
        )
        # About one poll per second for all 110 jobs, never one per job.
        assert 3 <= len(polls) <= window + 3, calls
        assert all(size == BULK for size in sizes), sizes
        assert len(calls) == len(polls), calls  # nothing else asked squeue meanwhile
        for name in names[:5]:
            assert kube.status(namespace, name)["phase"] in ("Queued", "Running")
    finally:
        monkeypatch.undo()  # the operator's PATH without the wrapper
        kube.run("delete", "simjobs.simjob.io", "--all", "-n", namespace, "--timeout=180s")
        restart_operator(operator)
