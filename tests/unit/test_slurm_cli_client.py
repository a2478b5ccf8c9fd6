"""CliSlurmClient against a scripted fake runner: batching, errors, cancel, find, tails.

``FakeSlurm`` answers the exact commands cli.py sends (squeue/sacct/scontrol/sbatch/
scancel/tail/mkdir) from an in-memory job table and records every argv, so the tests
count calls: one squeue for any number of jobs, one sacct for those squeue lost.
The same behaviour runs against the real Slurm in tests/integration/test_slurm_bridge.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from slurm_bridge import (
    Accounting,
    CliSlurmClient,
    InvalidJobSpec,
    JobKind,
    JobSpec,
    RunResult,
    SlurmClient,
    SlurmRejected,
    SlurmUnavailable,
)
from slurm_bridge.cli import classify_failure

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def program(argv: Sequence[str]) -> str:
    """The command run, past an ``env NAME=value`` prefix."""
    args = list(argv)
    if args and args[0] == "env":
        args = args[1:]
        while args and "=" in args[0]:
            args = args[1:]
    return args[0]


def option(argv: Sequence[str], name: str) -> str | None:
    for arg in argv:
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return None


@dataclass
class FakeSlurm:
    """An in-memory Slurm answering like the 22.05 command-line tools."""

    queue: dict[str, str] = field(default_factory=dict)  # id -> squeue line tail
    completed: dict[str, str] = field(default_factory=dict)  # id -> sacct line tail
    names: dict[str, str] = field(default_factory=dict)  # id -> job name
    config: str = "AccountingStorageType = accounting_storage/none\nJobCompType = jobcomp/filetxt\n"
    sbatch_answer: RunResult | None = None
    squeue_error: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    stdins: list[bytes | None] = field(default_factory=list)
    next_id: int = 100
    # What each scancel does to a job: the squeue states it goes through, in order.
    cancel_states: dict[str, list[str]] = field(default_factory=dict)
    uid: str = "1000"  # the user the commands run as
    uids: dict[str, str] = field(default_factory=dict)  # id -> owner uid, if not ours

    @property
    def where(self) -> str:
        return "fake"

    def count(self, name: str) -> int:
        return sum(1 for argv in self.calls if program(argv) == name)

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout_s: float = 60.0
    ) -> RunResult:
        args = tuple(argv)
        self.calls.append(args)
        self.stdins.append(stdin)
        await asyncio.sleep(0)
        name = program(args)
        handler = getattr(self, f"_{name}")
        out, err, rc = handler(args, stdin)
        return RunResult(args, rc, out, err)

    async def close(self) -> None:
        return None

    def _id(self, args: tuple[str, ...], stdin: bytes | None) -> tuple[str, str, int]:
        return f"{self.uid}\n", "", 0

    def _mkdir(self, args: tuple[str, ...], stdin: bytes | None) -> tuple[str, str, int]:
        return "", "", 0

    def _scontrol(self, args: tuple[str, ...], stdin: bytes | None) -> tuple[str, str, int]:
        return self.config, "", 0

    def _sbatch(self, args: tuple[str, ...], stdin: bytes | None) -> tuple[str, str, int]:
        if self.sbatch_answer is not None:
            a = self.sbatch_answer
            return a.stdout, a.stderr, a.returncode
        self.next_id += 1
        job_id = str(self.next_id)
        self.queue[job_id] = "PENDING|0|N/A|N/A|None"
        self.names[job_id] = option(args, "--job-name") or ""
        return f"{job_id}\n", "", 0

    def _squeue(self, args: tuple[str, ...], stdin: bytes | None) -> tuple[str, str, int]:
        if self.squeue_error is not None:
            return "", self.squeue_error, 1
        name = option(args, "--name")
        if name is not None:
            rows = [f"{i}|{n}" for i, n in self.names.items() if n == name and i in self.queue]
            return "".join(r + "\n" for r in rows), "", 0
        ids = (option(args, "--jobs") or "").split(",")
        rows = [f"{i}|{self.queue[i]}" for i in ids if i in self.queue]
        if not rows:
            return "", "slurm_load_jobs error: Invalid job id specified\n", 1
        return "".join(r + "\n" for r in rows), "", 0

    def _sacct(self, args: tuple[str, ...], stdin: bytes | None) -> tuple[str, str, int]:
        if option(args, "--format") == "JobID,JobName":
            rows = [f"{i}|{n}" for i, n in self.names.items() if i in self.completed]
            return "".join(r + "\n" for r in rows), "", 0
        if option(args, "--format") == "JobID,UID,JobName":
            rows = [
                f"{i}|{self.uids.get(i, self.uid)}|{n}"
                for i, n in self.names.items()
                if i in self.completed
            ]
            return "".join(r + "\n" for r in rows), "", 0
        ids = (option(args, "--jobs") or "").split(",")
        rows = [f"{i}|{self.completed[i]}" for i in ids if i in self.completed]
        return "".join(r + "\n" for r in rows), "", 0

    def _scancel(self, args: tuple[str, ...], stdin: bytes | None) -> tuple[str, str, int]:
        job_id = args[-1]
        if job_id not in self.queue:
            message = f"scancel: error: Kill job error on job id {job_id}: Invalid job id specified"
            return "", message + "\n", 1
        steps = self.cancel_states.get(job_id)
        # The last step sticks (a job that never confirms).
        state = (steps.pop(0) if len(steps) > 1 else steps[0]) if steps else "CANCELLED"
        self.queue[job_id] = f"{state}|15|1|2|None"
        return "", "", 0

    def _tail(self, args: tuple[str, ...], stdin: bytes | None) -> tuple[str, str, int]:
        path = args[-1]
        if path not in self.files:
            return "", f"tail: cannot open '{path}' for reading: No such file or directory\n", 1
        limit = int(args[2])
        return self.files[path][-limit:].decode(), "", 0


def make_client(slurm: FakeSlurm, **kwargs: Any) -> CliSlurmClient:
    kwargs.setdefault("cancel_poll_interval", 0.0)
    return CliSlurmClient(slurm, work_dir="/scratch/w", **kwargs)


def test_client_satisfies_the_protocol() -> None:
    assert isinstance(make_client(FakeSlurm()), SlurmClient)


def test_query_of_many_jobs_is_one_squeue_and_one_sacct() -> None:
    slurm = FakeSlurm()
    for i in range(1, 121):
        slurm.queue[str(i)] = "RUNNING|0|1795601700|1795605300|None"
    for i in range(121, 151):
        slurm.completed[str(i)] = "COMPLETED|0:0|1795601500|1795601501"
    ids = [str(i) for i in range(1, 161)]  # 151..160: unknown anywhere

    states = run(make_client(slurm).query(ids))

    assert list(states) == ids
    assert slurm.count("squeue") == 1
    assert slurm.count("sacct") == 1
    assert slurm.count("scontrol") == 1  # accounting detected once
    squeue = next(a for a in slurm.calls if program(a) == "squeue")
    assert option(squeue, "--jobs") == ",".join(ids)
    assert "--states=all" in squeue
    assert squeue[:2] == ("env", "SLURM_TIME_FORMAT=%s")
    sacct = next(a for a in slurm.calls if program(a) == "sacct")
    assert option(sacct, "--jobs") == ",".join(ids[120:])  # only those squeue lost
    assert "--completion" in sacct
    assert all(states[str(i)].kind is JobKind.RUNNING for i in range(1, 121))
    assert all(states[str(i)].kind is JobKind.SUCCEEDED for i in range(121, 151))
    assert states["121"].source == "sacct --completion"
    assert all(states[str(i)].kind is JobKind.MISSING for i in range(151, 161))


def test_query_needs_no_sacct_when_squeue_knows_all() -> None:
    slurm = FakeSlurm(queue={"1": "PENDING|0|N/A|N/A|Priority", "2": "COMPLETED|0|1|2|None"})
    client = make_client(slurm)
    states = run(client.query(["2", "1", "2"]))
    assert list(states) == ["2", "1"]
    assert states["1"].reason == "Priority"
    assert [program(a) for a in slurm.calls] == ["squeue"]


def test_accounting_is_detected_once_and_selects_sacct_with_slurmdbd() -> None:
    slurm = FakeSlurm(
        completed={"7": "TIMEOUT|0:15|1|2"},
        config="AccountingStorageType = accounting_storage/slurmdbd\n",
    )
    client = make_client(slurm)
    for _ in range(3):
        assert run(client.query(["7"]))["7"].kind is JobKind.TIMED_OUT
    assert slurm.count("scontrol") == 1
    sacct = [a for a in slurm.calls if program(a) == "sacct"]
    assert len(sacct) == 3
    assert all("--allocations" in a and "--completion" not in a for a in sacct)
    assert run(client.accounting()) is Accounting.SACCT


def test_without_accounting_a_lost_job_is_missing() -> None:
    slurm = FakeSlurm(completed={"7": "COMPLETED|0:0|1|2"})
    state = run(make_client(slurm, accounting="none").query(["7"]))["7"]
    assert state.kind is JobKind.MISSING
    assert state.source == "squeue"
    assert slurm.count("sacct") == 0
    assert slurm.count("scontrol") == 0


def test_detected_none_when_site_has_no_accounting() -> None:
    slurm = FakeSlurm(config="AccountingStorageType = accounting_storage/none\n")
    assert run(make_client(slurm).accounting()) is Accounting.NONE


def test_unreachable_controller_is_unavailable() -> None:
    slurm = FakeSlurm(
        squeue_error="slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
    )
    with pytest.raises(SlurmUnavailable, match="Unable to contact slurm controller"):
        run(make_client(slurm).query(["1"]))


@pytest.mark.parametrize("bad", ["-1", "1,2", "$(id)", "1 2", "", "12.batch", "x"])
def test_job_ids_are_validated_before_any_command(bad: str) -> None:
    slurm = FakeSlurm()
    client = make_client(slurm)
    with pytest.raises(InvalidJobSpec):
        run(client.query(["1", bad]))
    with pytest.raises(InvalidJobSpec):
        run(client.cancel(bad))
    with pytest.raises(InvalidJobSpec):
        run(client.output_tail(bad))
    assert slurm.calls == []


def test_submit_sends_options_on_argv_and_script_on_stdin() -> None:
    slurm = FakeSlurm()
    client = make_client(slurm)
    spec = JobSpec(marker="simjob-1", command=["echo"], args=["$(id)"], partition="short")
    first = run(client.submit(spec))
    second = run(client.submit(JobSpec(marker="simjob-2", command=["true"])))
    assert (first, second) == ("101", "102")
    assert slurm.count("mkdir") == 1  # the work directory is made once per client
    sbatch = [(a, s) for a, s in zip(slurm.calls, slurm.stdins, strict=True) if a[0] == "sbatch"]
    argv, stdin = sbatch[0]
    assert "--partition=short" in argv
    assert "--job-name=simjob-1" in argv
    assert not any("$(id)" in a for a in argv)
    assert stdin is not None
    assert stdin.decode().endswith("exec echo '$(id)'\n")


def test_submit_parses_cluster_suffix() -> None:
    slurm = FakeSlurm(sbatch_answer=RunResult((), 0, "4242;simjob\n", ""))
    assert run(make_client(slurm).submit(JobSpec(marker="m", command=["x"]))) == "4242"


def test_refused_submission_is_rejected_with_slurms_message() -> None:
    message = "sbatch: error: Batch job submission failed: Invalid partition name specified"
    slurm = FakeSlurm(sbatch_answer=RunResult((), 1, "", message + "\n"))
    with pytest.raises(SlurmRejected, match="Invalid partition name specified") as caught:
        run(make_client(slurm).submit(JobSpec(marker="m", command=["x"])))
    assert caught.value.stderr.strip() == message


@pytest.mark.parametrize(
    ("rc", "stderr"),
    [
        (1, "sbatch: error: Batch job submission failed: Unable to contact slurm controller"),
        (1, "sbatch: error: Batch job submission failed: Socket timed out on send/recv"),
        (1, "sbatch: error: Munge encode failed: Failed to access socket: No such file"),
        (127, "bash: line 1: sbatch: command not found"),
    ],
)
def test_unreachable_submission_is_unavailable(rc: int, stderr: str) -> None:
    slurm = FakeSlurm(sbatch_answer=RunResult((), rc, "", stderr))
    with pytest.raises(SlurmUnavailable):
        run(make_client(slurm).submit(JobSpec(marker="m", command=["x"])))


def test_sbatch_exit_0_without_an_id_is_ambiguous_not_rejected() -> None:
    slurm = FakeSlurm(sbatch_answer=RunResult((), 0, "Submitted batch job\n", ""))
    with pytest.raises(SlurmUnavailable, match="look marker 'm' up"):
        run(make_client(slurm).submit(JobSpec(marker="m", command=["x"])))


def test_classify_failure() -> None:
    refused = RunResult(("sbatch",), 1, "", "error: QOSMaxWallDurationPerJobLimit")
    assert isinstance(classify_failure(refused, refusal=True), SlurmRejected)
    assert isinstance(classify_failure(refused, refusal=False), SlurmUnavailable)


def test_cancel_waits_until_slurm_confirms() -> None:
    slurm = FakeSlurm(queue={"5": "RUNNING|0|1|2|None"})
    slurm.cancel_states["5"] = ["COMPLETING", "COMPLETING", "CANCELLED"]
    state = run(make_client(slurm).cancel("5"))
    assert state.kind is JobKind.CANCELLED
    assert state.signal == 15
    assert slurm.count("scancel") == 3  # re-sent while the job was still completing


def test_cancel_returns_the_last_state_when_the_window_passes() -> None:
    slurm = FakeSlurm(queue={"5": "RUNNING|0|1|2|None"})
    slurm.cancel_states["5"] = ["COMPLETING"]
    state = run(make_client(slurm, cancel_confirm_timeout=0.05).cancel("5"))
    assert state.kind is JobKind.RUNNING
    assert not state.finished


def test_cancel_of_a_finished_job_returns_its_real_state() -> None:
    slurm = FakeSlurm(completed={"8": "COMPLETED|0:0|1|2"})
    state = run(make_client(slurm).cancel("8"))
    assert state.kind is JobKind.SUCCEEDED  # completion won the race: not "cancelled"
    assert slurm.count("scancel") == 1


def test_find_in_squeue_then_in_accounting() -> None:
    slurm = FakeSlurm()
    client = make_client(slurm)
    job_id = run(client.submit(JobSpec(marker="simjob-abc", command=["x"])))
    assert run(client.find("simjob-abc")) == job_id
    squeue = next(a for a in slurm.calls if program(a) == "squeue")
    assert "--me" in squeue
    assert option(squeue, "--name") == "simjob-abc"
    assert slurm.count("sacct") == 0

    slurm.completed[job_id] = "COMPLETED|0:0|1|2"
    del slurm.queue[job_id]  # left squeue after MinJobAge
    assert run(client.find("simjob-abc")) == job_id
    assert run(client.find("simjob-other")) is None
    sacct = [a for a in slurm.calls if program(a) == "sacct"]
    assert len(sacct) == 2
    assert all("--completion" in a for a in sacct)
    assert all(any(x.startswith("--starttime=now-") for x in a) for a in sacct)


def test_find_in_the_completion_log_ignores_other_users_jobs() -> None:
    slurm = FakeSlurm()
    for job_id, uid in (("40", "1001"), ("41", "1000")):
        slurm.completed[job_id] = "COMPLETED|0:0|1|2"
        slurm.names[job_id] = "simjob-squat"
        slurm.uids[job_id] = uid
    client = make_client(slurm)
    assert run(client.find("simjob-squat")) == "41"  # 40 belongs to uid 1001
    del slurm.completed["41"]
    assert run(client.find("simjob-squat")) is None
    assert slurm.count("id") == 1  # our uid is asked once


def test_find_adopts_the_first_of_duplicates() -> None:
    slurm = FakeSlurm()
    for job_id in ("30", "4", "12"):
        slurm.queue[job_id] = "PENDING|0|N/A|N/A|None"
        slurm.names[job_id] = "simjob-dup"
    assert run(make_client(slurm).find("simjob-dup")) == "4"


@pytest.mark.parametrize("marker", ["", "a b", "-x", "$(id)", "a,b"])
def test_find_validates_the_marker(marker: str) -> None:
    with pytest.raises(InvalidJobSpec):
        run(make_client(FakeSlurm()).find(marker))


def test_output_tail_is_bounded_and_tolerates_a_missing_file() -> None:
    slurm = FakeSlurm()
    slurm.files["/scratch/w/simjob-9.out"] = "".join(f"l{i}\n" for i in range(1000)).encode()
    client = make_client(slurm)
    tail = run(client.output_tail("9"))
    assert tail.splitlines() == [f"l{i}" for i in range(980, 1000)]
    assert len(run(client.output_tail("9", lines=1000, max_bytes=100)).encode()) <= 100
    tail_argv = next(a for a in slurm.calls if a[0] == "tail")
    assert tail_argv == ("tail", "-c", "4097", "--", "/scratch/w/simjob-9.out")
    assert run(client.output_tail("10")) == ""
