"""map_state (Slurm job state → JobKind) and the parsing of squeue/sacct/scontrol output.

The sample outputs are verbatim from the local Slurm 22.05.8 (hack/slurm/up.sh) with the
formats cli.py requests, plus hand-made edge cases (CANCELLED by N, unknown states,
a '|' in a Reason, broken jobcomp records).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from slurm_bridge import JobKind, JobState, map_state
from slurm_bridge.parsing import (
    parse_config,
    parse_exit_code,
    parse_named_jobs,
    parse_sacct,
    parse_slurm_time,
    parse_squeue,
    parse_wait_status,
    tail_text,
)
from slurm_bridge.states import normalize_state


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        ("PENDING", JobKind.QUEUED),
        ("CONFIGURING", JobKind.QUEUED),
        ("RUNNING", JobKind.RUNNING),
        ("COMPLETING", JobKind.RUNNING),
        ("COMPLETED", JobKind.SUCCEEDED),
        ("FAILED", JobKind.FAILED),
        ("OUT_OF_MEMORY", JobKind.FAILED),
        ("NODE_FAIL", JobKind.FAILED),
        ("BOOT_FAIL", JobKind.FAILED),
        ("TIMEOUT", JobKind.TIMED_OUT),
        ("DEADLINE", JobKind.TIMED_OUT),
        ("CANCELLED", JobKind.CANCELLED),
        ("PREEMPTED", JobKind.QUEUED),
        ("REQUEUED", JobKind.QUEUED),
        # spellings seen in the wild
        ("CANCELLED by 1000", JobKind.CANCELLED),
        ("cancelled+", JobKind.CANCELLED),
        (" running ", JobKind.RUNNING),
        ("COMPLETING,REQUEUED", JobKind.RUNNING),
        ("PD", JobKind.QUEUED),
        ("R", JobKind.RUNNING),
        ("CG", JobKind.RUNNING),
        ("CD", JobKind.SUCCEEDED),
        ("F", JobKind.FAILED),
        ("OOM", JobKind.FAILED),
        ("TO", JobKind.TIMED_OUT),
        ("CA", JobKind.CANCELLED),
        ("SUSPENDED", JobKind.RUNNING),
        ("REQUEUE_HOLD", JobKind.QUEUED),
        ("REVOKED", JobKind.CANCELLED),
    ],
)
def test_map_state(state: str, kind: JobKind) -> None:
    assert map_state(state) is kind


@pytest.mark.parametrize("state", ["", "   ", "WIBBLE", "RUNNING_LATE", "42", "N/A"])
def test_unknown_states_are_unknown_not_guessed(state: str) -> None:
    assert map_state(state) is JobKind.UNKNOWN


def test_normalize_state() -> None:
    assert normalize_state("CANCELLED by 0") == "CANCELLED"
    assert normalize_state("pd") == "PENDING"
    assert normalize_state("") == ""


def test_finished_and_runtime() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC)
    done = JobState("1", "COMPLETED", JobKind.SUCCEEDED, 0, 0, None, start, end)
    assert done.finished
    assert done.runtime_seconds == 90.0
    assert not JobState("2", "RUNNING", JobKind.RUNNING, start_time=start).finished
    assert JobState("2", "RUNNING", JobKind.RUNNING).runtime_seconds is None
    missing = JobState.missing("3", "squeue")
    assert missing.kind is JobKind.MISSING
    assert not missing.finished


# Verbatim from Slurm 22.05.8 with SLURM_TIME_FORMAT=%s and cli.SQUEUE_FORMAT.
SQUEUE_OUTPUT = """\
2|COMPLETED|0|1795601503|1795601504|None
1|FAILED|768|1795601456|1795601458|NonZeroExitCode
4|PENDING|0|N/A|1795605000|JobHeldUser
5|CANCELLED|15|1795601600|1795601610|None
6|RUNNING|0|1795601700|1795601760|None
7|TIMEOUT|0|1795601800|1795601860|TimeLimit
8|PENDING|0|1795609999|1795619999|Reason with | a pipe
garbage line
"""


def test_parse_squeue() -> None:
    states = parse_squeue(SQUEUE_OUTPUT)
    assert set(states) == {"1", "2", "4", "5", "6", "7", "8"}
    assert states["1"] == JobState(
        job_id="1",
        state="FAILED",
        kind=JobKind.FAILED,
        exit_code=3,
        signal=0,
        reason="NonZeroExitCode",
        start_time=datetime.fromtimestamp(1795601456, UTC),
        end_time=datetime.fromtimestamp(1795601458, UTC),
        source="squeue",
    )
    assert states["2"].kind is JobKind.SUCCEEDED
    assert states["2"].exit_code == 0
    assert states["2"].reason is None
    # Forecasts of a pending job (start) and a running job (end) are dropped.
    assert states["4"].start_time is None
    assert states["4"].end_time is None
    assert states["4"].reason == "JobHeldUser"
    assert states["6"].start_time == datetime.fromtimestamp(1795601700, UTC)
    assert states["6"].end_time is None
    assert states["6"].exit_code is None
    # Killed by SIGTERM: no exit code, signal 15.
    assert (states["5"].exit_code, states["5"].signal) == (None, 15)
    assert states["7"].kind is JobKind.TIMED_OUT
    assert states["8"].reason == "Reason with | a pipe"


def test_parse_sacct_completion_and_dbd() -> None:
    output = (
        "3|COMPLETED|0:0|1795601500|1795601501\n"
        "1||3:0|1795601456|1795601458\n"  # jobcomp record sacct could not parse
        "9|CANCELLED by 0|0:15|1795601500|1795601520\n"
        "9.batch|CANCELLED|0:15|1795601500|1795601520\n"
        "10|FAILED|1:0|1795601500|1795601501\n"
        "10|COMPLETED|0:0|1795601600|1795601601\n"  # requeued: last record wins
        "11|OUT_OF_MEMORY|0:125|2026-11-25T10:10:56|2026-11-25T10:10:58\n"
    )
    states = parse_sacct(output, source="sacct --completion")
    assert set(states) == {"3", "9", "10", "11"}
    assert states["3"].kind is JobKind.SUCCEEDED
    assert states["3"].source == "sacct --completion"
    assert (states["9"].kind, states["9"].signal) == (JobKind.CANCELLED, 15)
    assert states["10"].kind is JobKind.SUCCEEDED
    assert states["11"].kind is JobKind.FAILED
    assert states["11"].state == "OUT_OF_MEMORY"
    assert states["11"].start_time == datetime(2026, 11, 25, 10, 10, 56, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", (0, 0)), ("768", (3, 0)), ("15", (None, 15)), ("9", (None, 9)), ("", (None, None))],
)
def test_parse_wait_status(text: str, expected: tuple[int | None, int | None]) -> None:
    assert parse_wait_status(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0:0", (0, 0)), ("3:0", (3, 0)), ("0:9", (0, 9)), ("x", (None, None)), ("7", (7, 0))],
)
def test_parse_exit_code(text: str, expected: tuple[int | None, int | None]) -> None:
    assert parse_exit_code(text) == expected


@pytest.mark.parametrize("text", ["N/A", "Unknown", "None", "0", "", "(null)", "garbage"])
def test_parse_time_without_a_time(text: str) -> None:
    assert parse_slurm_time(text) is None


def test_parse_named_jobs_exact_name_sorted() -> None:
    output = "12|simjob-a\n3|simjob-a\n4|simjob-ab\n5|xsimjob-a\n6|simjob-a|\nbad|simjob-a\n"
    assert parse_named_jobs(output, "simjob-a") == ["3", "6", "12"]
    assert parse_named_jobs("", "simjob-a") == []


def test_parse_config() -> None:
    output = (
        "Configuration data as of 2026-11-25T10:10:00\n"
        "AccountingStorageType   = accounting_storage/none\n"
        "JobCompType             = jobcomp/filetxt\n"
        "MinJobAge               = 60 sec\n"
        "Cgroup Support Configuration:\n"
    )
    config = parse_config(output)
    assert config["AccountingStorageType"] == "accounting_storage/none"
    assert config["JobCompType"] == "jobcomp/filetxt"
    assert config["MinJobAge"] == "60 sec"


def test_tail_text_bounds_lines_and_bytes() -> None:
    data = "".join(f"line {i}\n" for i in range(100)).encode()
    assert tail_text(data, 3, 4096, truncated=False) == "line 97\nline 98\nline 99"
    small = tail_text(data, 20, 20, truncated=True)
    assert len(small.encode()) <= 20
    assert small.splitlines()[-1] == "line 99"
    assert all(line.startswith("line ") for line in small.splitlines())
    assert tail_text(b"", 20, 4096, truncated=False) == ""
    assert tail_text(data, 0, 4096, truncated=False) == ""
    # A multi-byte character cut by the byte bound does not break decoding.
    assert tail_text("é".encode() * 10, 5, 5, truncated=True)
