"""slurm_bridge additions without Slurm: ping, multi-line values, --export=NONE, GPUs,
unsatisfiable refusals, usage from sacct, SSH certificate validity.

Scripts are executed with /bin/sh to prove that multi-line arguments and environment
values (and the hostile corpus alongside) arrive byte for byte; the same runs on the real
Slurm in tests/integration/test_bridge_slurm.py.
Neighbours: test_slurm_scripts.py, test_slurm_cli_client.py, test_pyslurm_client.py.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Coroutine, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import pytest

from slurm_bridge import (
    CliSlurmClient,
    CredentialsExpired,
    GpuRequest,
    InvalidJobSpec,
    JobKind,
    JobSpec,
    RunResult,
    SlurmRejected,
    SlurmUnavailable,
    SlurmUnsatisfiable,
    batch_script,
    certificate_validity,
    sbatch_options,
)
from slurm_bridge.cli import classify_failure
from slurm_bridge.parsing import parse_elapsed, parse_sacct, parse_size_bytes
from slurm_bridge.pyslurm_client import PyslurmClient
from slurm_bridge.scripts import SCRIPT_HEADER
from tests.support import fake_pyslurm
from tests.support.fake_pyslurm import CONTROLLER
from tests.support.slurm_hostile import ACCEPTED, REJECTED

T = TypeVar("T")
MULTILINE = tuple(v for v in REJECTED if all(c in "\n\t" or c.isprintable() for c in v))
STILL_REJECTED = tuple(v for v in REJECTED if v not in MULTILINE)
SCRIPT = """set -eu
total=0
for i in 1 2 3; do
\ttotal=$((total + i))
done
printf 'total=%s\\n' "$total"
printf '%s\\n' "$1"
"""


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


class Answers:
    """A runner answering each program with a fixed RunResult; records argv."""

    def __init__(self, **answers: tuple[int, str, str]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    @property
    def where(self) -> str:
        return "answers"

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout_s: float = 60.0
    ) -> RunResult:
        args = tuple(argv)
        self.calls.append(args)
        program = next(a for a in args if a not in ("env",) and "=" not in a)
        code, out, err = self.answers[program]
        return RunResult(args, code, out, err)

    async def close(self) -> None:
        return None


def run_script(script: str, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    path = tmp_path / "job.sh"
    path.write_text(script, encoding="utf-8")
    return subprocess.run(["/bin/sh", str(path)], cwd=tmp_path, capture_output=True, timeout=30)


# ---------------------------------------------------------------------------- ping
def test_cli_ping_needs_the_controller_up() -> None:
    up = Answers(scontrol=(0, "Slurmctld(primary) at node is UP\n", ""))
    run(CliSlurmClient(up, work_dir="/w").ping())
    assert up.calls == [("scontrol", "ping")]
    down = Answers(scontrol=(1, "Slurmctld(primary) at node is DOWN\n", ""))
    with pytest.raises(SlurmUnavailable, match="DOWN"):
        run(CliSlurmClient(down, work_dir="/w").ping())
    gone = Answers(scontrol=(1, "", "scontrol: error: Unable to contact slurm controller\n"))
    with pytest.raises(SlurmUnavailable, match="Unable to contact"):
        run(CliSlurmClient(gone, work_dir="/w").ping())


@pytest.fixture
def _controller() -> Iterator[None]:
    CONTROLLER.reset()
    yield
    CONTROLLER.reset()


@pytest.mark.usefixtures("_controller")
def test_pyslurm_ping_and_unreachable_controller(tmp_path: Path) -> None:
    client = PyslurmClient(work_dir=str(tmp_path), pyslurm_module=fake_pyslurm)
    run(client.ping())
    assert CONTROLLER.calls == ["slurmctld.ping_primary"]
    CONTROLLER.reachable = False
    with pytest.raises(SlurmUnavailable, match="Unable to contact slurm controller"):
        run(client.ping())


# ---------------------------------------------------------------------- multi-line
def test_the_hostile_corpus_has_multiline_values() -> None:
    assert {"a\nb", "\n#SBATCH --wrap=id", "trailing newline\n", "tab\there"} == set(MULTILINE)


@pytest.mark.parametrize("value", MULTILINE, ids=repr)
def test_multiline_args_and_env_arrive_literally(value: str, tmp_path: Path) -> None:
    spec = JobSpec(
        marker="m-1",
        command=["sh", "-c", 'printf "[%s]\\n" "$1" "$V"', "sh"],
        args=[value],
        env={"V": value},
    )
    script = batch_script(spec)
    # sbatch reads #SBATCH only before the first command: the first body line is fixed.
    assert script.removeprefix(SCRIPT_HEADER).startswith("export V='")
    done = run_script(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"[{value}]\n[{value}]\n"


def test_multiline_script_with_the_whole_corpus(tmp_path: Path) -> None:
    values = [*ACCEPTED, *MULTILINE]
    spec = JobSpec(marker="m-1", command=["sh", "-c", SCRIPT, "sh", "arg one"], args=[])
    assert batch_script(spec).splitlines()[3] == "exec sh -c 'set -eu"
    done = run_script(batch_script(spec), tmp_path)
    assert done.stdout.decode() == "total=6\narg one\n", done.stderr
    printf = JobSpec(marker="m-2", command=["printf", "%s\\n"], args=values)
    done = run_script(batch_script(printf), tmp_path)
    assert done.stdout.decode() == "".join(f"{v}\n" for v in values)


@pytest.mark.parametrize("value", STILL_REJECTED, ids=repr)
def test_other_control_characters_stay_refused_in_args_and_env(value: str) -> None:
    with pytest.raises(InvalidJobSpec, match="other than newline and tab"):
        JobSpec(marker="m", command=["x"], args=[value])
    with pytest.raises(InvalidJobSpec, match="other than newline and tab"):
        JobSpec(marker="m", command=["x"], env={"V": value})


# ----------------------------------------------------------------- export and GPUs
def test_sbatch_exports_nothing_of_the_submitting_process() -> None:
    options = sbatch_options(JobSpec(marker="m", command=["x"]), "/w")
    assert options[:2] == ["--parsable", "--export=NONE"]
    assert not any(o.startswith(("--gres", "--gpus")) for o in options)


@pytest.mark.parametrize(
    ("request_", "expected"), [(GpuRequest.GRES, "--gres=gpu:2"), ("gpus", "--gpus=2")]
)
def test_gpus_become_gres_or_gpus_per_site(request_: GpuRequest | str, expected: str) -> None:
    spec = JobSpec(marker="m", command=["x"], gpus=2)
    assert expected in sbatch_options(spec, "/w", gpu_request=request_)
    assert not any(
        "gpu" in o for o in sbatch_options(JobSpec(marker="m", command=["x"], gpus=0), "/w")
    )
    client = CliSlurmClient(Answers(), work_dir="/w", gpu_request=request_)
    assert client.gpu_request is GpuRequest(request_)


@pytest.mark.parametrize("gpus", [-1, True, 1.5, "2"])
def test_gpus_must_be_a_count(gpus: object) -> None:
    with pytest.raises(InvalidJobSpec, match="gpus must be a non-negative integer"):
        JobSpec(marker="m", command=["x"], gpus=gpus)  # type: ignore[arg-type]


@pytest.mark.usefixtures("_controller")
def test_pyslurm_submits_with_environment_none_and_gres(tmp_path: Path) -> None:
    gres = PyslurmClient(work_dir=str(tmp_path), pyslurm_module=fake_pyslurm)
    gpus = PyslurmClient(work_dir=str(tmp_path), pyslurm_module=fake_pyslurm, gpu_request="gpus")
    first = int(run(gres.submit(JobSpec(marker="m-1", command=["x"], gpus=1))))
    second = int(run(gpus.submit(JobSpec(marker="m-2", command=["x"], gpus=2))))
    assert CONTROLLER.descriptions[first]["environment"] == "NONE"
    assert CONTROLLER.descriptions[first]["gres_per_node"] == "gpu:1"
    assert CONTROLLER.descriptions[second]["gpus"] == 2


def test_unsatisfiable_refusal_is_typed() -> None:
    refused = RunResult(
        ("sbatch",),
        1,
        "",
        "sbatch: error: Batch job submission failed: "
        "Requested node configuration is not available\n",
    )
    error = classify_failure(refused, refusal=True)
    assert isinstance(error, SlurmUnsatisfiable)
    assert isinstance(error, SlurmRejected)
    assert "Requested node configuration is not available" in error.message
    assert type(classify_failure(refused, refusal=False)) is SlurmUnavailable


# --------------------------------------------------------------------------- usage
def test_sacct_usage_fields_and_step_maxrss() -> None:
    output = (
        "7|COMPLETED|0:0|1795601500|1795601561|61|2|billing=2,cpu=2,mem=1G,node=1|\n"
        "7.batch|COMPLETED|0:0|1795601500|1795601561|61|2|cpu=2,mem=1G,node=1|2048K\n"
        "7.0|COMPLETED|0:0|1795601500|1795601561|60|2|cpu=2,mem=1G,node=1|1.5M\n"
        "8|FAILED|3:0|1795601500|1795601510|\n"
        "9|COMPLETED|0:0|1795601500|1795601510\n"
    )
    states = parse_sacct(output)
    assert (states["7"].elapsed_seconds, states["7"].alloc_cpus) == (61, 2)
    assert states["7"].alloc_tres == "billing=2,cpu=2,mem=1G,node=1"
    assert states["7"].max_rss_bytes == 2048 * 1024  # the largest step (2048K > 1.5M)
    assert states["7"].cpu_seconds == 122
    assert (states["8"].kind, states["8"].elapsed_seconds, states["8"].max_rss_bytes) == (
        JobKind.FAILED,
        None,
        None,
    )
    assert states["9"].kind is JobKind.SUCCEEDED
    assert states["9"].cpu_seconds is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("61", 61), ("00:01:01", 61), ("1-00:00:02", 86402), ("01:05", 65), ("", None), ("x", None)],
)
def test_elapsed(text: str, seconds: int | None) -> None:
    assert parse_elapsed(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("512", 512), ("2048K", 2097152), ("1.5M", 1572864), ("1G", 1 << 30), ("", None)],
)
def test_sizes(text: str, size: int | None) -> None:
    assert parse_size_bytes(text) == size


def test_usage_reads_steps_in_one_sacct() -> None:
    line = "5|COMPLETED|0:0|1|2|1|1|cpu=1|\n5.batch|COMPLETED|0:0|1|2|1|1|cpu=1|100K\n"
    runner = Answers(sacct=(0, line, ""))
    client = CliSlurmClient(runner, work_dir="/w", accounting="sacct")
    states = run(client.usage(["5", "6"]))
    assert states["5"].max_rss_bytes == 102400
    assert "6" not in states
    (argv,) = runner.calls
    assert "--allocations" not in argv  # the steps carry MaxRSS
    assert "--jobs=5,6" in argv
    assert "--format=JobID,State,ExitCode,Start,End,ElapsedRaw,AllocCPUS,AllocTRES,MaxRSS" in argv
    assert run(CliSlurmClient(runner, work_dir="/w", accounting="none").usage(["5"])) == {}


# -------------------------------------------------------------------- certificates
def test_certificate_validity_is_read_from_the_cert_line() -> None:
    ca = asyncssh.generate_private_key("ssh-ed25519")
    key = asyncssh.generate_private_key("ssh-ed25519")
    cert = ca.generate_user_certificate(
        key, "alice@nersc", principals=["alice"], valid_before="+1h"
    )
    validity = certificate_validity(cert.export_certificate())
    assert validity.key_id == "alice@nersc"
    assert validity.principals == ("alice",)
    assert validity.valid_before is not None
    assert timedelta(minutes=59) < validity.valid_before - datetime.now(UTC) <= timedelta(hours=1)
    assert not validity.expired()
    assert validity.expired(validity.valid_before)
    old = ca.generate_user_certificate(key, "old", valid_after=1577836800, valid_before=1577923200)
    past = certificate_validity(old.export_certificate())
    assert past.expired()
    assert past.valid_before == datetime(2020, 1, 2, tzinfo=UTC)
    assert "2020-01-02" in past.describe()
    for junk in (b"", b"ssh-ed25519 AAAA", key.export_public_key(), b"x y z"):
        with pytest.raises(ValueError, match="certificate"):
            certificate_validity(junk)


def test_credentials_expired_is_an_unavailable_with_its_deadline() -> None:
    when = datetime(2020, 1, 2, tzinfo=UTC)
    error = CredentialsExpired("expired", valid_before=when)
    assert isinstance(error, SlurmUnavailable)
    assert error.valid_before == when
