"""Smoke tests of the real local Slurm (hack/slurm/up.sh): submit, finish, fail, cancel.

Each test submits a real batch job with ``sbatch`` to the single-node Slurm under .slurm/,
polls ``scontrol show job -o`` (a bounded wait) and checks the final state while the job is
still known to slurmctld (MinJobAge, 60 s by default in up.sh).

Neighbours: tests/slurm_env.py (starts Slurm, builds the client environment).
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
FINISH_TIMEOUT_S = 60.0
KEY = re.compile(r"[A-Za-z][A-Za-z0-9_:/]*")  # e.g. JobState, AllocNode:Sid, CPUs/Task
POLL_S = 0.25
# Base states of a job that will not change any more (scontrol shows COMPLETING until the
# job's processes are gone, so a job in one of these has really ended).
TERMINAL = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)


@pytest.fixture(scope="module")
def slurm_client_env(slurm_env: dict[str, str]) -> dict[str, str]:
    """Environment for Slurm clients: the session's local Slurm (tests/conftest.py)."""
    return slurm_env


def run(env: dict[str, str], *argv: str) -> str:
    proc = subprocess.run(
        list(argv), env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}: {proc.stderr.strip()}"
    return proc.stdout


def submit(env: dict[str, str], out_dir: Path, script: str) -> str:
    """sbatch --wrap SCRIPT; returns the job id. Output goes to out_dir/job-<id>.out."""
    out = run(
        env,
        "sbatch",
        "--parsable",
        f"--job-name=smoke-{uuid.uuid4().hex[:8]}",
        f"--output={out_dir}/job-%j.out",
        f"--chdir={out_dir}",
        "--time=5",
        "--wrap",
        script,
    )
    job_id = out.strip().split(";")[0]
    assert job_id.isdigit(), f"unexpected sbatch --parsable output {out!r}"
    return job_id


def job_info(env: dict[str, str], job_id: str) -> dict[str, str]:
    """``scontrol show job -o`` as a dict (a value may contain spaces, e.g. a path)."""
    line = run(env, "scontrol", "show", "job", "-o", job_id).strip()
    fields: dict[str, str] = {}
    key = ""
    for token in line.split(" "):
        name, sep, value = token.partition("=")
        if sep and KEY.fullmatch(name):
            key = name
            fields[key] = value
        elif key:
            fields[key] += " " + token
    assert fields.get("JobId") == job_id, f"scontrol answered for another job: {line!r}"
    return fields


def wait_for(env: dict[str, str], job_id: str, states: frozenset[str]) -> dict[str, str]:
    """Poll until the job's JobState is one of ``states`` (bounded); returns its fields."""
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    info = job_info(env, job_id)
    while info["JobState"] not in states:
        assert time.monotonic() < deadline, (
            f"job {job_id} still {info['JobState']} (Reason={info.get('Reason')}) "
            f"after {FINISH_TIMEOUT_S:.0f} s"
        )
        time.sleep(POLL_S)
        info = job_info(env, job_id)
    return info


def in_queue(env: dict[str, str], job_id: str) -> bool:
    """Whether squeue lists the job among the pending/running/completing ones."""
    return job_id in run(env, "squeue", "-h", "-o", "%i").split()


@pytest.fixture
def jobs(slurm_client_env: dict[str, str]) -> Iterator[list[str]]:
    """Job ids a test submitted; whatever is still queued at the end is cancelled."""
    submitted: list[str] = []
    yield submitted
    for job_id in submitted:
        subprocess.run(
            ["scancel", job_id], env=slurm_client_env, capture_output=True, timeout=30, check=False
        )


def test_batch_job_completes_with_output(
    slurm_client_env: dict[str, str], jobs: list[str], tmp_path: Path
) -> None:
    job_id = submit(slurm_client_env, tmp_path, "echo hello-$((6*7))")
    jobs.append(job_id)

    info = wait_for(slurm_client_env, job_id, TERMINAL)

    assert info["JobState"] == "COMPLETED", info
    assert info["ExitCode"] == "0:0", info
    assert info["Partition"] == slurm_client_env["SIMJOB_SLURM_DEFAULT_PARTITION"]
    assert info["NodeList"] == slurm_client_env["SIMJOB_SLURM_NODE"]
    assert not in_queue(slurm_client_env, job_id)
    output = (tmp_path / f"job-{job_id}.out").read_text()
    assert "hello-42" in output.split(), output


def test_nonzero_exit_fails_with_exit_code(
    slurm_client_env: dict[str, str], jobs: list[str], tmp_path: Path
) -> None:
    job_id = submit(slurm_client_env, tmp_path, "echo before-exit; exit 3")
    jobs.append(job_id)

    info = wait_for(slurm_client_env, job_id, TERMINAL)

    assert info["JobState"] == "FAILED", info
    assert info["ExitCode"] == "3:0", info
    assert info["Reason"] == "NonZeroExitCode", info
    assert (tmp_path / f"job-{job_id}.out").read_text().split() == ["before-exit"]


def test_scancel_of_running_job_yields_cancelled(
    slurm_client_env: dict[str, str], jobs: list[str], tmp_path: Path
) -> None:
    pid_file = tmp_path / "job.pid"
    # `exec` so the recorded PID is the sleep itself.
    job_id = submit(slurm_client_env, tmp_path, f"echo $$ > {pid_file}; exec sleep 300")
    jobs.append(job_id)

    running = wait_for(slurm_client_env, job_id, frozenset({"RUNNING"} | TERMINAL))
    assert running["JobState"] == "RUNNING", running
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the job never wrote its PID"
        time.sleep(POLL_S)
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"

    run(slurm_client_env, "scancel", job_id)
    info = wait_for(slurm_client_env, job_id, TERMINAL)

    assert info["JobState"] == "CANCELLED", info
    assert not in_queue(slurm_client_env, job_id)
    # The job's process is really gone (at worst a zombie waiting to be reaped).
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + 15
    while stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        assert time.monotonic() < deadline, f"sleep (pid {pid}) survived scancel of {job_id}"
        time.sleep(POLL_S)


def test_finished_job_is_in_sacct_completion_log(
    slurm_client_env: dict[str, str], jobs: list[str], tmp_path: Path
) -> None:
    """No slurmdbd: ``sacct --completion`` reads jobcomp/filetxt (finished jobs only)."""
    job_id = submit(slurm_client_env, tmp_path, "exit 3")
    jobs.append(job_id)
    assert wait_for(slurm_client_env, job_id, TERMINAL)["JobState"] == "FAILED"

    out = run(
        slurm_client_env,
        "sacct",
        "--completion",
        "--starttime=now-1hour",
        f"--jobs={job_id}",
        "--parsable2",
        "--noheader",
        "--format=JobID,State,ExitCode",
    )
    assert out.split() == [f"{job_id}|FAILED|3:0"], out
