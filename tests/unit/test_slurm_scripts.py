"""Batch scripts and sbatch options built by slurm_bridge: validation and no injection.

The generated script is checked as text (its exact lines, no user text at a line start,
no #SBATCH line) and executed with /bin/sh (the job's interpreter) to prove that the
literal argv, environment and working directory arrive unchanged — without Slurm; the
same corpus runs through the real Slurm in tests/integration/test_slurm_bridge.py.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from slurm_bridge import InvalidJobSpec, JobSpec, batch_script, output_path, sbatch_options
from slurm_bridge.scripts import MAX_SCRIPT_BYTES, SCRIPT_HEADER
from slurm_bridge.specs import time_limit_minutes
from tests.support.slurm_hostile import ACCEPTED, REJECTED

# Newlines and tabs are allowed in arguments and environment values (a multi-line `sh -c`
# script), never elsewhere; every other control character stays refused everywhere.
MULTILINE = tuple(v for v in REJECTED if all(c in "\n\t" or c.isprintable() for c in v))
STILL_REJECTED = tuple(v for v in REJECTED if v not in MULTILINE)

PRINTF = ("printf", "%s\\n")


def run_script(script: str, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    path = tmp_path / "job.sh"
    path.write_text(script, encoding="utf-8")
    return subprocess.run(
        ["/bin/sh", str(path)], cwd=tmp_path, capture_output=True, timeout=30, check=False
    )


def test_script_is_header_plus_exec_of_quoted_argv() -> None:
    spec = JobSpec(marker="m-1", command=["/bin/echo"], args=["a b", "$(id)"])
    assert batch_script(spec) == SCRIPT_HEADER + "exec /bin/echo 'a b' '$(id)'\n"


def test_script_exports_env_and_enters_working_dir_in_order() -> None:
    spec = JobSpec(
        marker="m-1",
        command=["run"],
        env={"B": "it's", "A": "$HOME"},
        working_dir="/data/my dir",
    )
    body = batch_script(spec).removeprefix(SCRIPT_HEADER).splitlines()
    assert body == [
        "export B='it'\"'\"'s'",
        "export A='$HOME'",
        "cd '/data/my dir' || exit 1",
        "exec run",
    ]


@pytest.mark.parametrize("value", ACCEPTED, ids=lambda v: repr(v)[:40])
def test_hostile_arg_stays_one_literal_word(value: str, tmp_path: Path) -> None:
    spec = JobSpec(marker="m-1", command=list(PRINTF), args=["before", value, "after"])
    script = batch_script(spec)

    lines = script.splitlines()
    assert lines[:3] == SCRIPT_HEADER.splitlines()
    assert len(lines) == 4, "a value must never add a line"
    assert not any(line.lstrip().startswith("#SBATCH") for line in lines)
    assert shlex.split(lines[3]) == ["exec", *PRINTF, "before", value, "after"]

    done = run_script(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode("utf-8") == f"before\n{value}\nafter\n"
    assert not Path("/tmp/simjob-pwned").exists()


def test_hostile_env_values_and_working_dir_arrive_literally(tmp_path: Path) -> None:
    env = {f"V{index}": value for index, value in enumerate(ACCEPTED)}
    workdir = tmp_path / "dir $(id) `x` 'q' \"d\" ; & * é"
    workdir.mkdir()
    spec = JobSpec(
        marker="m-1",
        command=["sh", "-c", 'pwd; for n in "$@"; do printenv "$n"; done', "sh", *env],
        env=env,
        working_dir=str(workdir),
    )
    done = run_script(batch_script(spec), tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("utf-8").split("\n")
    assert out[0] == str(workdir)
    assert out[1 : 1 + len(env)] == list(env.values())


def test_the_corpus_splits_into_multiline_and_still_rejected_values() -> None:
    assert set(MULTILINE) == {"a\nb", "\n#SBATCH --wrap=id", "trailing newline\n", "tab\there"}
    assert len(STILL_REJECTED) == len(REJECTED) - 4


@pytest.mark.parametrize("value", MULTILINE, ids=repr)
@pytest.mark.parametrize("where", ["command0", "working_dir", "comment"])
def test_newlines_and_tabs_are_rejected_outside_arguments_and_env(value: str, where: str) -> None:
    fields: dict[str, object] = {
        "command0": [value],
        "working_dir": "/data/" + value,
        "comment": value,
    }
    kwargs: dict[str, object] = {"marker": "m-1", "command": ["x"]}
    kwargs["command" if where == "command0" else where] = fields[where]
    with pytest.raises(InvalidJobSpec, match="control character"):
        JobSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", STILL_REJECTED, ids=repr)
@pytest.mark.parametrize("where", ["command", "args", "env", "working_dir", "comment"])
def test_control_characters_are_rejected_everywhere(value: str, where: str) -> None:
    fields: dict[str, object] = {
        "command": ["x", value],
        "args": ["ok", value],
        "env": {"NAME": value},
        "working_dir": "/data/" + value,
        "comment": value,
    }
    kwargs: dict[str, object] = {"marker": "m-1", "command": ["x"]}
    kwargs[where] = fields[where]
    with pytest.raises(InvalidJobSpec, match="control character"):
        JobSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "field",
    ["partition", "qos", "account"],
)
@pytest.mark.parametrize(
    "value", ["a b", "x;id", "$(id)", "a,b", "", "a\nb", "é", "--wrap=id x", "a/b", "a:b"]
)
def test_site_names_must_be_plain(field: str, value: str) -> None:
    with pytest.raises(InvalidJobSpec, match=r"\^\[A-Za-z0-9_\.-\]\+\$"):
        JobSpec(marker="m-1", command=["x"], **{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "marker", ["", "-x", "a b", "a;b", "simjob:" + "u" * 130, "ä", "a\nb", "a,b", ".x"]
)
def test_marker_must_be_a_plain_job_name(marker: str) -> None:
    with pytest.raises(InvalidJobSpec, match="marker"):
        JobSpec(marker=marker, command=["x"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"command": []}, "at least one"),
        ({"command": "echo hi"}, "list of strings"),
        ({"command": [""]}, "must not be empty"),
        ({"command": ["-rf"]}, "must not start with '-'"),
        ({"command": ["x", 3]}, "must be a string"),
        ({"env": {"1BAD": "x"}}, "environment variable name"),
        ({"env": {"A-B": "x"}}, "environment variable name"),
        ({"env": {"A": 1}}, "must be a string"),
        ({"working_dir": "relative/dir"}, "absolute"),
        ({"cpus_per_task": 0}, "positive integer"),
        ({"cpus_per_task": True}, "positive integer"),
        ({"memory_mib": -1}, "positive integer"),
        ({"time_limit_seconds": 0}, "positive number"),
        ({"time_limit_seconds": float("inf")}, "positive number"),
        ({"args": ["x"] * 5000}, "more than"),
        ({"args": ["x" * 70000]}, "characters long"),
    ],
)
def test_malformed_specs_are_rejected(kwargs: dict[str, object], message: str) -> None:
    full: dict[str, object] = {"marker": "m-1", "command": ["x"], **kwargs}
    with pytest.raises(InvalidJobSpec, match=message):
        JobSpec(**full)  # type: ignore[arg-type]


def test_oversized_script_is_rejected() -> None:
    spec = JobSpec(marker="m-1", command=["x"], args=["y" * 60000] * 20)
    with pytest.raises(InvalidJobSpec, match=f"at most {MAX_SCRIPT_BYTES}"):
        batch_script(spec)


def test_sbatch_options_are_argv_elements_from_the_tier() -> None:
    spec = JobSpec(
        marker="simjob-0b5c",
        command=["sim"],
        cpus_per_task=4,
        memory_mib=2048,
        time_limit_seconds=3601,
        partition="short",
        qos="normal",
        account="proj_1.a-b",
        comment="default/my sim; $(id)",
        hold=True,
    )
    assert sbatch_options(spec, "/scratch/simjob/") == [
        "--parsable",
        "--export=NONE",
        "--job-name=simjob-0b5c",
        "--output=/scratch/simjob/simjob-%j.out",
        "--chdir=/scratch/simjob",
        "--nodes=1",
        "--ntasks=1",
        "--cpus-per-task=4",
        "--mem=2048M",
        "--time=61",
        "--partition=short",
        "--qos=normal",
        "--account=proj_1.a-b",
        "--comment=default/my sim; $(id)",
        "--hold",
    ]


def test_minimal_sbatch_options_leave_site_defaults() -> None:
    options = sbatch_options(JobSpec(marker="m", command=["x"]), "/w")
    assert not any(
        o.startswith(("--mem", "--time", "--partition", "--qos", "--account", "--comment"))
        for o in options
    )
    assert "--hold" not in options


@pytest.mark.parametrize(
    ("seconds", "minutes"), [(1, 1), (59.5, 1), (60, 1), (60.01, 2), (360, 6), (3601, 61)]
)
def test_time_limit_is_ceiling_minutes(seconds: float, minutes: int) -> None:
    assert time_limit_minutes(seconds) == minutes


@pytest.mark.parametrize(
    "work_dir", ["relative", "/a b", "/a/%j", "/a/../etc", "/a;b", "/a\nb", "/$(id)", ""]
)
def test_work_dir_must_be_plain_absolute(work_dir: str) -> None:
    with pytest.raises(InvalidJobSpec, match="work directory"):
        sbatch_options(JobSpec(marker="m", command=["x"]), work_dir)
    with pytest.raises(InvalidJobSpec, match="work directory"):
        output_path(work_dir, "12")


def test_output_path_matches_the_sbatch_pattern() -> None:
    assert output_path("/scratch/w", "1234") == "/scratch/w/simjob-1234.out"


def test_a_job_with_its_own_directory_starts_and_writes_its_output_there() -> None:
    spec = JobSpec(marker="simjob-d", command=["true"], directory="/scratch/w/ns/run-1/")
    options = sbatch_options(spec, "/scratch/w")
    assert "--chdir=/scratch/w/ns/run-1" in options
    assert "--output=/scratch/w/ns/run-1/simjob-%j.out" in options
    assert not any(option.startswith("--chdir=/scratch/w ") for option in options)
    for bad in ("relative", "/a/../b", "/with space", "/per%cent"):
        with pytest.raises(InvalidJobSpec):
            JobSpec(marker="simjob-d", command=["true"], directory=bad)
