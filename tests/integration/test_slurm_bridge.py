"""CliSlurmClient + LocalRunner on the real local Slurm (hack/slurm/up.sh, 22.05.8).

Real jobs: success, exit 3 with output tail, TimedOut (1-minute limit on ``short``),
cancel while pending (held) and running, adoption by marker, refusals, an unreachable
controller, the hostile-string corpus printed back byte for byte, 120 jobs observed with
ONE squeue call, and (last, once the early job has left squeue after MinJobAge) a
finished job resolved through ``sacct --completion``.
Neighbours: tests/slurm_bridge_helpers.py, tests/slurm_hostile.py, the SSH twin
test_slurm_bridge_ssh.py, the fake-runner unit tests tests/unit/test_slurm_cli_client.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from slurm_bridge import (
    Accounting,
    CliSlurmClient,
    JobKind,
    JobSpec,
    JobState,
    LocalRunner,
    SlurmRejected,
    SlurmUnavailable,
)
from tests.support.slurm_bridge_helpers import (
    CountingRunner,
    finished,
    run,
    scancel_all,
    wait_for_state,
)
from tests.support.slurm_hostile import ACCEPTED

pytestmark = pytest.mark.slurm

FINISH_S = 90.0
PRINTF = ["printf", "%s\\n"]


def marker(tag: str) -> str:
    return f"simjob-test-{tag}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slurm-work")


@pytest.fixture(scope="module")
def submitted(slurm_env: dict[str, str]) -> Iterator[list[str]]:
    """Job ids submitted by this module; leftovers are cancelled at the end."""
    ids: list[str] = []
    yield ids
    scancel_all(slurm_env, ids)


@pytest.fixture
def runner(slurm_env: dict[str, str]) -> CountingRunner:
    return CountingRunner(LocalRunner(env=slurm_env))


@pytest.fixture
def client(runner: CountingRunner, work_dir: Path) -> CliSlurmClient:
    return CliSlurmClient(runner, work_dir=str(work_dir), cancel_poll_interval=0.25)


@pytest.fixture(scope="module")
def early_job(slurm_env: dict[str, str], work_dir: Path, submitted: list[str]) -> tuple[str, str]:
    """A job finished at the start of the module: the last test finds it in sacct."""
    tag = marker("early")
    client = CliSlurmClient(LocalRunner(env=slurm_env), work_dir=str(work_dir))

    async def scenario() -> str:
        job_id = await client.submit(JobSpec(marker=tag, command=["true"]))
        submitted.append(job_id)
        state = await wait_for_state(client, job_id, finished, timeout_s=FINISH_S)
        assert state.kind is JobKind.SUCCEEDED, state
        return job_id

    return run(scenario()), tag


def test_hostile_argv_is_printed_back_literally(
    client: CliSlurmClient, submitted: list[str], work_dir: Path, early_job: tuple[str, str]
) -> None:
    spec = JobSpec(marker=marker("argv"), command=PRINTF, args=list(ACCEPTED), comment="$(id)")

    async def scenario() -> tuple[str, str]:
        job_id = await client.submit(spec)
        submitted.append(job_id)
        state = await wait_for_state(client, job_id, finished, timeout_s=FINISH_S)
        assert (state.kind, state.exit_code) == (JobKind.SUCCEEDED, 0), state
        return job_id, await client.output_tail(job_id, lines=3, max_bytes=4096)

    job_id, tail = run(scenario())
    output = (work_dir / f"simjob-{job_id}.out").read_bytes()
    assert output == "".join(f"{value}\n" for value in ACCEPTED).encode("utf-8")
    # The last value is 10,000 'x': the 4 KiB bound keeps its last 4,095 (+ newline).
    assert tail == "x" * 4095
    assert not Path("/tmp/simjob-pwned").exists()


def test_hostile_env_and_working_dir_reach_the_job(
    client: CliSlurmClient, submitted: list[str], work_dir: Path
) -> None:
    env = {f"V{index}": value for index, value in enumerate(ACCEPTED)}
    cwd = work_dir / "dir $(id) `x` 'q' \"d\" ; & * é"
    cwd.mkdir()
    spec = JobSpec(
        marker=marker("env"),
        command=["sh", "-c", 'pwd; for n in "$@"; do printenv "$n"; done', "sh", *env],
        env=env,
        working_dir=str(cwd),
    )

    async def scenario() -> str:
        job_id = await client.submit(spec)
        submitted.append(job_id)
        state = await wait_for_state(client, job_id, finished, timeout_s=FINISH_S)
        assert state.kind is JobKind.SUCCEEDED, state
        return job_id

    job_id = run(scenario())
    lines = (work_dir / f"simjob-{job_id}.out").read_text(encoding="utf-8").split("\n")
    assert lines[0] == str(cwd)
    assert lines[1 : 1 + len(env)] == list(env.values())


def test_exit_3_fails_with_exit_code_and_output_tail(
    client: CliSlurmClient, submitted: list[str]
) -> None:
    script = 'i=0; while [ $i -lt 100 ]; do echo "out $i"; i=$((i+1)); done; echo oops >&2; exit 3'
    spec = JobSpec(marker=marker("exit3"), command=["sh", "-c", script])

    async def scenario() -> tuple[JobState, str, str]:
        job_id = await client.submit(spec)
        submitted.append(job_id)
        state = await wait_for_state(client, job_id, finished, timeout_s=FINISH_S)
        return state, await client.output_tail(job_id), await client.output_tail(job_id, 5, 30)

    state, tail, small = run(scenario())
    assert state.kind is JobKind.FAILED, state
    assert state.exit_code == 3
    assert state.reason == "NonZeroExitCode"
    assert state.runtime_seconds is not None
    assert tail.splitlines() == [f"out {i}" for i in range(81, 100)] + ["oops"]
    assert len(small.encode()) <= 30
    assert small.splitlines()[-1] == "oops"


def test_time_limit_yields_timed_out(client: CliSlurmClient, submitted: list[str]) -> None:
    spec = JobSpec(
        marker=marker("timeout"),
        command=["sleep", "600"],
        time_limit_seconds=45,  # → --time=1 (minutes)
        partition="short",
    )

    async def scenario() -> JobState:
        job_id = await client.submit(spec)
        submitted.append(job_id)
        # 1 minute + slurmctld's time-limit sweep (every 30 s) + KillWait (5 s).
        return await wait_for_state(client, job_id, finished, timeout_s=200, interval=2)

    started = time.monotonic()
    state = run(scenario())
    assert state.kind is JobKind.TIMED_OUT, state
    assert state.state == "TIMEOUT"
    assert time.monotonic() - started >= 55


def test_cancel_while_pending(client: CliSlurmClient, submitted: list[str]) -> None:
    spec = JobSpec(marker=marker("held"), command=["sleep", "600"], hold=True)

    async def scenario() -> tuple[JobState, JobState]:
        job_id = await client.submit(spec)
        submitted.append(job_id)
        pending = (await client.query([job_id]))[job_id]
        return pending, await client.cancel(job_id)

    pending, cancelled = run(scenario())
    assert pending.kind is JobKind.QUEUED, pending
    assert pending.reason == "JobHeldUser"
    assert cancelled.kind is JobKind.CANCELLED, cancelled


def test_cancel_while_running_kills_the_process(
    client: CliSlurmClient, submitted: list[str], work_dir: Path
) -> None:
    pid_file = work_dir / f"pid-{uuid.uuid4().hex}"
    spec = JobSpec(
        marker=marker("running"),
        command=["sh", "-c", f"echo $$ > {pid_file}; exec sleep 600"],
    )

    async def scenario() -> tuple[JobState, JobState]:
        job_id = await client.submit(spec)
        submitted.append(job_id)
        running = await wait_for_state(
            client, job_id, lambda s: s.kind is JobKind.RUNNING or s.finished, timeout_s=FINISH_S
        )
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline, "the job never wrote its PID"
            await asyncio.sleep(0.2)
        return running, await client.cancel(job_id)

    running, cancelled = run(scenario())
    assert running.kind is JobKind.RUNNING, running
    assert cancelled.kind is JobKind.CANCELLED, cancelled
    pid = int(pid_file.read_text())
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + 15
    while stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        assert time.monotonic() < deadline, f"sleep (pid {pid}) survived the cancel"
        time.sleep(0.2)


def test_find_adopts_by_marker_pending_running_and_finished(
    client: CliSlurmClient, submitted: list[str]
) -> None:
    tag = marker("adopt")

    async def scenario() -> None:
        assert await client.find(tag) is None
        job_id = await client.submit(JobSpec(marker=tag, command=["sleep", "3"], hold=True))
        submitted.append(job_id)
        assert await client.find(tag) == job_id  # pending (held)
        release = await client.runner.run(["scontrol", "release", job_id])
        assert release.ok, release.describe()
        await wait_for_state(
            client, job_id, lambda s: s.kind is JobKind.RUNNING or s.finished, timeout_s=FINISH_S
        )
        assert await client.find(tag) == job_id  # running (or just finished)
        await wait_for_state(client, job_id, finished, timeout_s=FINISH_S)
        assert await client.find(tag) == job_id  # finished, still in squeue

    run(scenario())


def test_refusals_are_rejected_with_slurms_message(client: CliSlurmClient) -> None:
    with pytest.raises(SlurmRejected, match="Invalid partition name specified"):
        run(client.submit(JobSpec(marker=marker("bad"), command=["true"], partition="nope")))
    # EnforcePartLimits=ALL: 10 minutes on `short` (MaxTime 5 minutes) is refused.
    with pytest.raises(SlurmRejected, match="time limit"):
        run(
            client.submit(
                JobSpec(
                    marker=marker("long"),
                    command=["true"],
                    partition="short",
                    time_limit_seconds=600,
                )
            )
        )


def test_unreachable_controller_is_unavailable(
    slurm_env: dict[str, str], tmp_path: Path, work_dir: Path
) -> None:
    conf = Path(slurm_env["SLURM_CONF"]).read_text()
    lines = [
        "SlurmctldPort=1" if line.startswith("SlurmctldPort=") else line
        for line in conf.splitlines()
    ]
    bad_conf = tmp_path / "slurm.conf"
    bad_conf.write_text("\n".join(lines) + "\n")
    runner = LocalRunner(env={**slurm_env, "SLURM_CONF": str(bad_conf)})
    client = CliSlurmClient(runner, work_dir=str(work_dir), accounting="completion")
    with pytest.raises(SlurmUnavailable, match="Unable to contact slurm controller"):
        run(client.query(["1", "2"]))
    hasty = CliSlurmClient(runner, work_dir=str(work_dir), command_timeout=2)
    with pytest.raises(SlurmUnavailable, match="did not finish within 2 s"):
        run(hasty.submit(JobSpec(marker=marker("unreachable"), command=["true"])))


def test_120_jobs_are_observed_with_one_squeue_call(
    client: CliSlurmClient, runner: CountingRunner, submitted: list[str]
) -> None:
    specs = [
        JobSpec(marker=marker(f"bulk{i}"), command=["true"], hold=i % 6 != 0) for i in range(120)
    ]

    async def scenario() -> tuple[list[str], float, float, int]:
        gate = asyncio.Semaphore(8)

        async def submit(spec: JobSpec) -> str:
            async with gate:
                return await client.submit(spec)

        started = time.monotonic()
        ids = list(await asyncio.gather(*(submit(spec) for spec in specs)))
        submitted.extend(ids)
        submit_s = time.monotonic() - started
        runner.calls.clear()
        started = time.monotonic()
        states = await client.query(ids)
        query_s = time.monotonic() - started
        assert runner.count("squeue") == 1, runner.calls
        assert runner.count("sacct") == 0  # all still known to squeue
        assert list(states) == ids
        held = [states[job_id] for i, job_id in enumerate(ids) if i % 6]
        assert all(s.kind is JobKind.QUEUED and s.reason == "JobHeldUser" for s in held)
        assert all(s.kind is not JobKind.MISSING for s in states.values())
        # The 20 unheld jobs run to completion; every poll of all 120 is one squeue.
        polls = 0
        deadline = time.monotonic() + 180
        while True:
            runner.calls.clear()
            states = await client.query(ids)
            polls += 1
            assert runner.count("squeue") == 1
            if all(states[job_id].kind is JobKind.SUCCEEDED for job_id in ids[::6]):
                break
            assert time.monotonic() < deadline, [s for s in states.values() if not s.finished]
            await asyncio.sleep(1)
        cancelled = await asyncio.gather(
            *(client.cancel(job_id) for i, job_id in enumerate(ids) if i % 6)
        )
        assert all(s.kind is JobKind.CANCELLED for s in cancelled)
        return ids, submit_s, query_s, polls

    ids, submit_s, query_s, polls = run(scenario())
    print(
        f"\n[figures] {len(ids)} jobs: submit {submit_s:.2f} s ({len(ids) / submit_s:.0f}/s, "
        f"8 concurrent sbatch), one query of all {len(ids)} {query_s * 1000:.0f} ms with 1 "
        f"squeue call; {polls} polls until the 20 unheld jobs succeeded, 1 squeue each"
    )


def test_finished_job_is_resolved_from_the_completion_log_once_squeue_forgets_it(
    client: CliSlurmClient, runner: CountingRunner, early_job: tuple[str, str], submitted: list[str]
) -> None:
    """Runs last: the early job ended >= ~1-2 min ago (MinJobAge 60 s + purge sweep)."""
    early_id, early_marker = early_job

    async def scenario() -> None:
        live_id = await client.submit(JobSpec(marker=marker("live"), command=["true"], hold=True))
        submitted.append(live_id)
        deadline = time.monotonic() + 180
        while True:
            squeue = await client.runner.run(["squeue", "--noheader", "--states=all", "-o", "%i"])
            if early_id not in squeue.stdout.split():
                break
            assert time.monotonic() < deadline, f"job {early_id} never left squeue"
            await asyncio.sleep(2)
        assert await client.accounting() is Accounting.COMPLETION
        runner.calls.clear()
        states = await client.query([early_id, live_id, "999999"])
        assert (runner.count("squeue"), runner.count("sacct")) == (1, 1)
        sacct = next(a for a in runner.calls if "sacct" in a)
        assert f"--jobs={early_id},999999" in sacct
        assert "--completion" in sacct
        early = states[early_id]
        assert (early.kind, early.exit_code, early.source) == (
            JobKind.SUCCEEDED,
            0,
            "sacct --completion",
        )
        assert early.start_time is not None
        assert early.end_time is not None
        assert states[live_id].kind is JobKind.QUEUED
        assert states["999999"].kind is JobKind.MISSING
        assert await client.find(early_marker) == early_id  # adopted from the log
        await client.cancel(live_id)

    run(scenario())
