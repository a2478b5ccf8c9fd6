"""slurm_bridge additions on the real local Slurm (hack/slurm/up.sh, 22.05, local mode).

* ``ping`` answers when slurmctld is up and raises ``SlurmUnavailable`` when it cannot be
  reached;
* ``--export=NONE``: a secret variable in the submitting process's environment does not
  reach the job, which still gets its own ``env`` and Slurm's ``SLURM_*``;
* a multi-line ``sh -c`` script (tabs, newlines) and the multi-line hostile values run;
* GPUs by GRES (up.sh: gres.conf with placeholder devices, AutoDetect=off): a 1-GPU job
  runs with ``CUDA_VISIBLE_DEVICES=0`` and ``TresPerNode=gres:gpu:1``; asking more GPUs
  than the node has is refused by sbatch at once ("Requested node configuration is not
  available"): ``SlurmUnsatisfiable`` with Slurm's words (Slurm records that job as
  FAILED, reason BadConstraints: never runnable);
* usage from accounting (``usage``: elapsed seconds, allocated CPUs);
* a run directory: inputs written, the job reads them and writes outputs, which are
  listed and fetched; removal leaves the neighbour.
Neighbours: tests/integration/test_slurm_bridge.py (the original local-mode tests),
test_bridge_ssh.py (SSH twin), tests/unit/test_bridge_features.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from slurm_bridge import (
    CliSlurmClient,
    JobKind,
    JobSpec,
    LocalRunner,
    RunDirError,
    SlurmUnavailable,
    SlurmUnsatisfiable,
    fetch_file,
    list_run_dir,
    remove_run_dir,
    run_dir_path,
    write_inputs,
)
from tests.support.slurm_bridge_helpers import finished, run, scancel_all, wait_for_state
from tests.support.slurm_hostile import REJECTED

pytestmark = pytest.mark.slurm

FINISH_S = 120.0
SECRET = "SIMJOB_TEST_OPERATOR_SECRET"
MULTILINE = tuple(v for v in REJECTED if all(c in "\n\t" or c.isprintable() for c in v))
SCRIPT = """set -eu
total=0
for i in 1 2 3; do
\ttotal=$((total + i))
done
echo "total=$total"
if [ -n "${SLURM_JOB_ID:-}" ]; then
\techo "in slurm job"
fi
printf '[%s]\\n' "$@"
"""


def marker(tag: str) -> str:
    return f"simjob-bridge-{tag}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bridge-work")


@pytest.fixture(scope="module")
def submitted(slurm_env: dict[str, str]) -> Iterator[list[str]]:
    ids: list[str] = []
    yield ids
    scancel_all(slurm_env, ids)


@pytest.fixture
def client(slurm_env: dict[str, str], work_dir: Path) -> CliSlurmClient:
    runner = LocalRunner(env={**slurm_env, SECRET: "hunter2-token"})
    return CliSlurmClient(runner, work_dir=str(work_dir), cancel_poll_interval=0.25)


def run_job(client: CliSlurmClient, spec: JobSpec, submitted: list[str]) -> tuple[str, str]:
    async def scenario() -> str:
        job_id = await client.submit(spec)
        submitted.append(job_id)
        state = await wait_for_state(client, job_id, finished, timeout_s=FINISH_S)
        assert (state.kind, state.exit_code) == (JobKind.SUCCEEDED, 0), state
        return job_id

    job_id = run(scenario())
    return job_id, (Path(client.work_dir) / f"simjob-{job_id}.out").read_text()


def test_ping(client: CliSlurmClient, slurm_env: dict[str, str], tmp_path: Path) -> None:
    run(client.ping())
    conf = Path(slurm_env["SLURM_CONF"]).read_text().splitlines()
    bad = tmp_path / "slurm.conf"
    bad.write_text(
        "\n".join("SlurmctldPort=1" if x.startswith("SlurmctldPort=") else x for x in conf) + "\n"
    )
    unreachable = CliSlurmClient(
        LocalRunner(env={**slurm_env, "SLURM_CONF": str(bad)}), work_dir=client.work_dir
    )
    with pytest.raises(SlurmUnavailable):
        run(unreachable.ping())


def test_the_job_does_not_see_the_operators_environment(
    client: CliSlurmClient, submitted: list[str]
) -> None:
    program = f'printenv {SECRET} || echo "no secret"; echo "own=$OWN"; echo "job=$SLURM_JOB_ID"'
    spec = JobSpec(marker=marker("env"), command=["sh", "-c", program], env={"OWN": "mine"})
    job_id, output = run_job(client, spec, submitted)
    assert "hunter2" not in output
    assert output.splitlines() == ["no secret", "own=mine", f"job={job_id}"]


def test_a_multiline_script_runs(client: CliSlurmClient, submitted: list[str]) -> None:
    spec = JobSpec(
        marker=marker("multi"),
        command=["sh", "-c", SCRIPT, "sh"],
        args=list(MULTILINE),
        env={"NOTE": "line 1\nline 2\n\tindented"},
    )
    _, output = run_job(client, spec, submitted)
    expected = "total=6\nin slurm job\n" + "".join(f"[{v}]\n" for v in MULTILINE)
    assert output == expected


def test_one_gpu_job_runs_with_its_gres(client: CliSlurmClient, submitted: list[str]) -> None:
    program = (
        'echo "cuda=${CUDA_VISIBLE_DEVICES:-unset} job_gpus=${SLURM_JOB_GPUS:-unset}"; '
        'scontrol show job "$SLURM_JOB_ID" | tr " " "\\n" | grep -E "^Tres"'
    )
    spec = JobSpec(marker=marker("gpu"), command=["sh", "-c", program], gpus=1)
    _, output = run_job(client, spec, submitted)
    lines = output.splitlines()
    assert lines[0] == "cuda=0 job_gpus=0", output
    assert "TresPerNode=gres:gpu:1" in lines[1:], output


def test_more_gpus_than_the_node_has_is_unsatisfiable(
    client: CliSlurmClient, slurm_env: dict[str, str]
) -> None:
    gpus = int(slurm_env.get("SIMJOB_SLURM_GPUS", "2")) + 1
    spec = JobSpec(marker=marker("gpus"), command=["true"], gpus=gpus)
    with pytest.raises(SlurmUnsatisfiable, match="Requested node configuration is not available"):
        run(client.submit(spec))
    # Slurm 22.05 still records the refused job: FAILED at once, reason BadConstraints (so
    # an adoption by marker after the refusal sees a failed job, never a runnable one).
    job_id = run(client.find(spec.marker))
    assert job_id is not None
    state = run(client.query([job_id]))[job_id]
    assert (state.kind, state.reason) == (JobKind.FAILED, "BadConstraints"), state


def test_usage_from_accounting(client: CliSlurmClient, submitted: list[str]) -> None:
    spec = JobSpec(marker=marker("usage"), command=["sleep", "2"], cpus_per_task=2)
    job_id, _ = run_job(client, spec, submitted)
    usage = run(client.usage([job_id]))
    state = usage[job_id]
    assert state.kind is JobKind.SUCCEEDED
    assert state.elapsed_seconds is not None
    assert 1 <= state.elapsed_seconds <= 60, state
    assert state.alloc_cpus == 2, state
    assert state.cpu_seconds == 2 * state.elapsed_seconds


def test_a_run_directory_round_trip(
    client: CliSlurmClient, submitted: list[str], work_dir: Path
) -> None:
    runner = client.runner
    root = str(work_dir / "runs")
    run_dir = run_dir_path(root, "lab", "sim", uuid.uuid4().hex)
    neighbour = run_dir_path(root, "lab", "sim", uuid.uuid4().hex)
    run(write_inputs(runner, run_dir, {"input.txt": b"3\n", "notes\u00a0x.md": b"# n\n"}))
    run(write_inputs(runner, neighbour, {"input.txt": b"9\n"}, mode=0o600))
    program = (
        'mkdir -p out && n=$(cat input.txt) && seq "$n" > out/result.txt && ln -s /etc/passwd leak'
    )
    spec = JobSpec(marker=marker("rundir"), command=["sh", "-c", program], working_dir=run_dir)
    run_job(client, spec, submitted)
    entries = {e.path: e.kind for e in run(list_run_dir(runner, run_dir))}
    assert entries == {
        "input.txt": "file",
        "notes\u00a0x.md": "file",
        "out": "dir",
        "out/result.txt": "file",
        "leak": "symlink",
    }
    assert run(fetch_file(runner, run_dir, "out/result.txt")) == b"1\n2\n3\n"
    with pytest.raises(RunDirError, match="symlink"):
        run(fetch_file(runner, run_dir, "leak"))
    assert run(remove_run_dir(runner, root, run_dir)) is True
    assert not Path(run_dir).exists()
    assert Path(neighbour, "input.txt").read_bytes() == b"9\n"
