"""PyslurmClient against tests/unit/fake_pyslurm.py (the pyslurm 25.11 surface it uses).

The real pyslurm needs Slurm 25.11 (Debian ships 22.05): the real-Slurm test is
tests/integration/test_pyslurm_real.py, skipped with the reason where versions differ.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from slurm_bridge import (
    Accounting,
    JobKind,
    JobSpec,
    SlurmClient,
    SlurmRejected,
    SlurmUnavailable,
    batch_script,
)
from slurm_bridge.pyslurm_client import PyslurmClient, load_pyslurm, pyslurm_version_mismatch
from tests.support import fake_pyslurm
from tests.support.fake_pyslurm import CONTROLLER

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


@pytest.fixture(autouse=True)
def _fresh_controller() -> Iterator[None]:
    CONTROLLER.reset()
    yield
    CONTROLLER.reset()


def client(tmp_path: Path, **kwargs: Any) -> PyslurmClient:
    kwargs.setdefault("cancel_poll_interval", 0.0)
    return PyslurmClient(work_dir=str(tmp_path), pyslurm_module=fake_pyslurm, **kwargs)


def test_satisfies_the_protocol(tmp_path: Path) -> None:
    assert isinstance(client(tmp_path), SlurmClient)


def test_submit_maps_the_spec_to_a_submit_description(tmp_path: Path) -> None:
    spec = JobSpec(
        marker="simjob-p1",
        command=["printf", "%s\\n"],
        args=["$(id)", "x" * 5000],  # long: passed as a file, not inline
        cpus_per_task=2,
        memory_mib=1024,
        time_limit_seconds=90,
        partition="short",
        qos="normal",
        account="proj",
        comment="ns/name",
        hold=True,
    )
    job_id = run(client(tmp_path).submit(spec))

    desc = CONTROLLER.descriptions[int(job_id)]
    script_path = tmp_path / "simjob-simjob-p1.sh"
    assert desc == {
        "name": "simjob-p1",
        "script": str(script_path),
        "working_directory": str(tmp_path),
        "standard_output": f"{tmp_path}/simjob-%j.out",
        "nodes": 1,
        "ntasks": 1,
        "cpus_per_task": 2,
        "environment": "NONE",  # sbatch's --export=NONE: none of the operator's env
        "memory_per_node": 1024,
        "time_limit": "2",
        "partitions": "short",
        "qos": "normal",
        "account": "proj",
        "comment": "ns/name",
        "priority": 0,
    }
    assert CONTROLLER.scripts[int(job_id)] == batch_script(spec)
    state = run(client(tmp_path).query([job_id]))[job_id]
    assert (state.kind, state.reason) == (JobKind.QUEUED, "JobHeldUser")


def test_refused_and_unreachable_submissions(tmp_path: Path) -> None:
    with pytest.raises(SlurmRejected, match="Invalid partition name specified"):
        run(client(tmp_path).submit(JobSpec(marker="m", command=["x"], partition="nope")))
    CONTROLLER.reachable = False
    with pytest.raises(SlurmUnavailable, match="Unable to contact slurm controller"):
        run(client(tmp_path).submit(JobSpec(marker="m", command=["x"])))
    with pytest.raises(SlurmUnavailable):
        run(client(tmp_path).query(["1"]))


def test_query_is_one_load_for_many_jobs(tmp_path: Path) -> None:
    c = client(tmp_path)
    ids = [run(c.submit(JobSpec(marker=f"m-{i}", command=["x"]))) for i in range(120)]
    CONTROLLER.start(int(ids[0]))
    CONTROLLER.finish(int(ids[1]), "FAILED", exit_code=3)
    CONTROLLER.finish(int(ids[2]), "TIMEOUT", signal=15)
    CONTROLLER.calls.clear()

    states = run(c.query([*ids, "99999"]))

    assert CONTROLLER.calls == ["Jobs.load"]
    assert list(states) == [*ids, "99999"]
    assert states[ids[0]].kind is JobKind.RUNNING
    assert states[ids[0]].start_time is not None
    failed = states[ids[1]]
    assert (failed.kind, failed.exit_code, failed.reason) == (
        JobKind.FAILED,
        3,
        "NonZeroExitCode",
    )
    assert failed.end_time is not None
    assert failed.source == "pyslurm"
    assert states[ids[2]].kind is JobKind.TIMED_OUT
    assert all(states[i].kind is JobKind.QUEUED for i in ids[3:])
    assert states["99999"].kind is JobKind.MISSING


def test_purged_jobs_come_from_accounting_in_one_call(tmp_path: Path) -> None:
    c = client(tmp_path, accounting="sacct")
    ids = [run(c.submit(JobSpec(marker=f"m-{i}", command=["x"]))) for i in range(5)]
    for job_id in ids:
        CONTROLLER.finish(int(job_id), "COMPLETED")
        CONTROLLER.purge(int(job_id))
    CONTROLLER.calls.clear()
    states = run(c.query(ids))
    assert CONTROLLER.calls == ["Jobs.load", "db.Jobs.load"]
    assert all(s.kind is JobKind.SUCCEEDED and s.source == "pyslurm.db" for s in states.values())


def test_purged_job_without_accounting_is_missing(tmp_path: Path) -> None:
    c = client(tmp_path)
    job_id = run(c.submit(JobSpec(marker="m", command=["x"])))
    CONTROLLER.finish(int(job_id), "COMPLETED")
    CONTROLLER.purge(int(job_id))
    assert run(c.query([job_id]))[job_id].kind is JobKind.MISSING
    assert "db.Jobs.load" not in CONTROLLER.calls


def test_completion_accounting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no jobcomp API"):
        client(tmp_path, accounting=Accounting.COMPLETION)


def test_cancel_pending_running_finished_and_unknown(tmp_path: Path) -> None:
    c = client(tmp_path)
    pending = run(c.submit(JobSpec(marker="a", command=["x"])))
    running = run(c.submit(JobSpec(marker="b", command=["x"])))
    done = run(c.submit(JobSpec(marker="c", command=["x"])))
    CONTROLLER.start(int(running))
    CONTROLLER.finish(int(done), "COMPLETED")

    assert run(c.cancel(pending)).kind is JobKind.CANCELLED
    cancelled = run(c.cancel(running))
    assert (cancelled.kind, cancelled.signal) == (JobKind.CANCELLED, 9)
    assert run(c.cancel(done)).kind is JobKind.SUCCEEDED  # completion won the race
    assert run(c.cancel("424242")).kind is JobKind.MISSING


def test_find_adopts_own_jobs_by_marker(tmp_path: Path) -> None:
    c = client(tmp_path, accounting="sacct")
    job_id = run(c.submit(JobSpec(marker="simjob-uid-1", command=["x"])))
    assert run(c.find("simjob-uid-1")) == job_id
    assert run(c.find("simjob-uid-2")) is None
    # Another user's job with the same name is not ours.
    foreign = fake_pyslurm.Job(5)
    foreign.name, foreign.user_id, foreign.state = "simjob-uid-2", os.getuid() + 1, "PENDING"
    CONTROLLER.jobs[5] = foreign
    assert run(c.find("simjob-uid-2")) is None
    # Purged from the controller: found in accounting.
    CONTROLLER.finish(int(job_id), "COMPLETED")
    CONTROLLER.purge(int(job_id))
    assert run(c.find("simjob-uid-1")) == job_id


def test_output_tail_reads_the_local_output_file(tmp_path: Path) -> None:
    (tmp_path / "simjob-77.out").write_text("".join(f"line {i}\n" for i in range(50)))
    c = client(tmp_path)
    assert run(c.output_tail("77", lines=2)) == "line 48\nline 49"
    assert len(run(c.output_tail("77", lines=50, max_bytes=30)).encode()) <= 30
    assert run(c.output_tail("78")) == ""


def test_load_pyslurm_says_what_is_needed() -> None:
    if importlib.util.find_spec("pyslurm") is not None:
        pytest.skip("pyslurm is installed here")
    with pytest.raises(SlurmUnavailable, match=r"pyslurm X\.Y\.\* needs Slurm X\.Y"):
        load_pyslurm()


@pytest.mark.parametrize(
    ("pyslurm_version", "slurm_version", "matches"),
    [
        ("25.11.0", "slurm 25.11.2", True),
        ("25.11.1", "slurm 22.05.8", False),
        ("22.5.0", "slurm 22.05.8", True),  # pyslurm drops the leading zero
        ("25.5.0", "slurm 25.11.0", False),
        ("24.05.4", "24.05.0", True),
        ("dev", "slurm 22.05.8", False),
    ],
)
def test_version_constraint(pyslurm_version: str, slurm_version: str, matches: bool) -> None:
    reason = pyslurm_version_mismatch(pyslurm_version, slurm_version)
    assert (reason is None) is matches
