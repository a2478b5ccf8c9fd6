"""The Slurm backend's data path without Slurm: run directories, inputs, progress.

Inputs: ``spec.inputs`` read from ConfigMaps and Secrets (only the named ones) become
files of the run directory's ``inputs/`` (0444 / 0400) written on this host's real
filesystem through a ``LocalRunner`` (the same commands as over SSH); hostile keys,
duplicate names and too many bytes fail the SimJob with a clear reason before anything
is written; a missing object is waited for up to maxPendingSeconds after admission,
then fails; one the operator may not read fails at once, saying which grant or chart
value would allow it. The job starts in its run
directory with ``$SIMJOB_INPUT_DIR``/``$SIMJOB_OUTPUT_DIR`` and ``Submitted`` carries
the workspace. Progress: N running jobs of a cluster are read with one command per
interval, a report goes out only when it changed, and never more often than the
interval. Real sh/dd, in-memory Slurm (tests/support/fake_slurm.py) and API server.
"""

from __future__ import annotations

import asyncio
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from simjob_operator.api import names as c
from simjob_operator.api.data import MAX_INPUT_BYTES, InputSource
from simjob_operator.backends.base import Rejected, RetryAfter, Submitted
from simjob_operator.backends.slurm.credentials import DEFAULT_LOGIN
from simjob_operator.backends.slurm.progress import SlurmProgress
from simjob_operator.backends.slurm.rundir import (
    INVALID_INPUTS,
    NOT_FOUND,
    InputError,
    InputMissing,
    Inputs,
    InputWait,
    in_run_dir,
    input_wait,
    prepare,
    read_inputs,
    select,
)
from simjob_operator.core.progress import ProgressReport
from simjob_operator.core.times import format_time, parse_time
from simjob_operator.core.view import Key
from simjob_operator.kube.seam import Refused
from slurm_bridge import JobSpec, LocalRunner
from tests.support.fake_kube import FakeKube
from tests.unit.test_bridge_tails import CountingRunner
from tests.unit.test_slurm_backend import GRANT, Harness

CM = {"params.json": b'{"grid": 8}', "notes": b"n"}


def local_harness(tmp_path: Path, **kw: Any) -> Harness:
    h = Harness(**kw)
    h.slurm.work_dir = str(tmp_path / "work")
    h.slurm.runner = CountingRunner()
    return h


def submit(h: Harness, name: str, **spec: Any) -> Any:
    record = h.simjob(name, **spec)
    return record, asyncio.run(h.backend.submit(record, GRANT))


def test_inputs_are_written_into_the_run_directory(tmp_path: Path) -> None:
    h = local_harness(tmp_path)
    h.kube.configmaps[("lab", "params")] = dict(CM)
    h.kube.secrets[("lab", "token")] = {"token": b"s3cret", "other": b"not chosen"}
    inputs = [
        {"configMap": {"name": "params"}},
        {"secret": {"name": "token", "items": [{"key": "token", "path": "token.txt"}]}},
    ]
    record, result = submit(h, "with-inputs", inputs=inputs)
    assert isinstance(result, Submitted), result
    run_dir = tmp_path / "work" / record.namespace / f"{record.name}-{record.uid}"
    assert result.workspace is not None
    assert (result.workspace.cluster, result.workspace.directory) == ("hpc", str(run_dir))
    folder = run_dir / "inputs"
    assert sorted(p.name for p in folder.iterdir()) == ["notes", "params.json", "token.txt"]
    assert (folder / "params.json").read_bytes() == CM["params.json"]
    assert (folder / "token.txt").read_bytes() == b"s3cret"
    assert stat.S_IMODE((folder / "params.json").stat().st_mode) == 0o444
    assert stat.S_IMODE((folder / "token.txt").stat().st_mode) == 0o400
    assert (run_dir / "outputs").is_dir()
    spec = h.slurm.specs[result.ref.id or ""]
    assert spec.directory == str(run_dir)  # sbatch --chdir and --output go there
    assert spec.env["SIMJOB_INPUT_DIR"] == str(folder)
    assert spec.env["SIMJOB_OUTPUT_DIR"] == str(run_dir / "outputs")
    # Only the named objects were read, by name.
    assert h.kube.calls["get_configmap_data"] == 1
    assert h.kube.calls["get_secret_data"] >= 1


def test_a_simjob_without_inputs_gets_a_run_directory_and_no_input_variable(
    tmp_path: Path,
) -> None:
    h = local_harness(tmp_path)
    _record, result = submit(h, "plain")
    assert isinstance(result, Submitted)
    spec = h.slurm.specs[result.ref.id or ""]
    assert "SIMJOB_INPUT_DIR" not in spec.env
    assert Path(spec.env["SIMJOB_OUTPUT_DIR"]).is_dir()
    assert h.slurm.runner.commands == 1  # type: ignore[attr-defined]  # one mkdir


@pytest.mark.parametrize("key", ["..", "-rf", ".hidden", "a b", "x/y"])
def test_hostile_keys_of_a_whole_object_fail_the_simjob_and_write_nothing(
    tmp_path: Path, key: str
) -> None:
    h = local_harness(tmp_path)
    h.kube.configmaps[("lab", "evil")] = {key: b"payload", "ok": b"fine"}
    _record, result = submit(h, "evil", inputs=[{"configMap": {"name": "evil"}}])
    assert isinstance(result, Rejected)
    assert result.reason == INVALID_INPUTS
    assert repr(key) in result.message
    assert h.slurm.calls["sbatch"] == 0
    assert not (tmp_path / "work").exists()  # nothing was written anywhere


def test_too_many_bytes_are_refused_with_the_limit(tmp_path: Path) -> None:
    h = local_harness(tmp_path)
    half = b"x" * (MAX_INPUT_BYTES // 2 + 1)
    h.kube.configmaps[("lab", "a")] = {"a": half}
    h.kube.secrets[("lab", "b")] = {"b": half}
    inputs = [{"configMap": {"name": "a"}}, {"secret": {"name": "b"}}]
    _record, result = submit(h, "big", inputs=inputs)
    assert isinstance(result, Rejected)
    assert result.reason == INVALID_INPUTS
    assert f"at most {MAX_INPUT_BYTES} bytes" in result.message
    assert h.slurm.calls["sbatch"] == 0


def test_a_missing_input_is_waited_for_up_to_max_pending_seconds_then_fails(
    tmp_path: Path,
) -> None:
    """The Kubernetes rule (a pod waits for its ConfigMap until maxPendingSeconds): the
    submit retries, saying what is missing, soon at first and then every 30 s at most;
    an input created meanwhile is used; one still missing at the end fails the SimJob
    InputNotFound, naming the object or key. Nothing is submitted before."""
    h = local_harness(tmp_path)
    start = h.now.replace(minute=0, second=2)  # 2 s after creation (no admission time)
    h.now = start
    record, result = submit(h, "early", inputs=[{"configMap": {"name": "later"}}])
    assert isinstance(result, RetryAfter)
    assert result.reason == NOT_FOUND
    assert "ConfigMap lab/later does not exist" in result.message
    assert f"{c.DEFAULT_MAX_PENDING_SECONDS} s after admission" in result.message
    assert result.delay == 2.0
    h.now = start.replace(minute=5)  # long past the old 5 s grace: still waiting
    result = asyncio.run(h.backend.submit(h.stored(record), GRANT))
    assert isinstance(result, RetryAfter)
    assert result.delay == 30.0
    assert h.slurm.calls["sbatch"] == 0
    h.kube.configmaps[("lab", "later")] = dict(CM)  # it appears: the job goes
    result = asyncio.run(h.backend.submit(h.stored(record), GRANT))
    assert isinstance(result, Submitted), result
    assert result.workspace is not None
    assert (Path(result.workspace.directory or "") / "inputs" / "params.json").exists()
    # a key that never appears: failed at the end of maxPendingSeconds, naming it
    h.now = start
    inputs = [{"configMap": {"name": "later", "items": [{"key": "grid.json"}]}}]
    record, result = submit(h, "keyless", inputs=inputs)
    assert isinstance(result, RetryAfter)
    assert "ConfigMap later has no key 'grid.json'" in result.message
    h.now = start + timedelta(seconds=c.DEFAULT_MAX_PENDING_SECONDS)
    result = asyncio.run(h.backend.submit(h.stored(record), GRANT))
    assert isinstance(result, Rejected)
    assert result.reason == NOT_FOUND
    assert "ConfigMap later has no key 'grid.json'" in result.message
    assert f"maxPendingSeconds ({c.DEFAULT_MAX_PENDING_SECONDS} s)" in result.message
    assert h.slurm.calls["sbatch"] == 1  # only the SimJob whose input appeared


def test_the_input_wait_counts_from_admission_with_the_grants_limit(tmp_path: Path) -> None:
    h = local_harness(tmp_path)
    grant = GRANT.model_copy(update={"max_pending_seconds": 30})
    record = h.simjob("admitted-late", inputs=[{"secret": {"name": "token"}}])
    admitted_at = parse_time(record.creation_timestamp)
    assert admitted_at is not None
    admitted_at += timedelta(minutes=10)  # it waited for a slot first
    body = h.kube.simjobs[record.key]
    body["status"]["conditions"][0]["lastTransitionTime"] = format_time(admitted_at)
    record = h.stored(record)
    assert input_wait(record, grant, admitted_at + timedelta(seconds=20)) == InputWait(10.0, 30)
    h.now = admitted_at + timedelta(seconds=20)
    result = asyncio.run(h.backend.submit(record, grant))
    assert isinstance(result, RetryAfter)
    assert "Secret lab/token does not exist" in result.message
    assert result.delay == 5.0  # a quarter of the 20 s waited
    h.now = admitted_at + timedelta(seconds=31)
    result = asyncio.run(h.backend.submit(record, grant))
    assert isinstance(result, Rejected)
    assert (result.reason, "maxPendingSeconds (30 s)" in result.message) == (NOT_FOUND, True)
    assert h.slurm.calls["sbatch"] == 0


@pytest.mark.parametrize(
    ("source", "hint"),
    [
        ({"secret": {"name": "token"}}, "need the chart value slurmInputs.secrets=true"),
        ({"configMap": {"name": "params"}}, "needs get on configmaps in lab"),
    ],
)
def test_an_input_the_operator_may_not_read_fails_at_once_saying_what_allows_it(
    tmp_path: Path, source: dict[str, Any], hint: str
) -> None:
    h = local_harness(tmp_path)
    kind = "Secret" if "secret" in source else "ConfigMap"
    call = "get_secret_data" if "secret" in source else "get_configmap_data"
    forbidden = f'{kind.lower()}s "x" is forbidden: User "system:serviceaccount:s:op" cannot get'
    h.kube.fail(call, Refused(forbidden, status=403))
    _record, result = submit(h, "forbidden", inputs=[source])
    assert isinstance(result, Rejected)
    assert result.reason == INVALID_INPUTS
    name = source[next(iter(source))]["name"]
    assert f"the operator may not read {kind} lab/{name} ({forbidden})" in result.message
    assert hint in result.message
    assert h.slurm.calls["sbatch"] == 0
    assert not (tmp_path / "work").exists()


def test_select_chosen_keys_duplicates_and_missing_keys() -> None:
    source = InputSource.model_validate(
        {"configMap": {"name": "m", "items": [{"key": "a", "path": "b"}, {"key": "b"}]}}
    )
    with pytest.raises(InputError, match="'b' twice"):
        select("ConfigMap", "m", {"a": b"1", "b": b"2"}, source)
    with pytest.raises(InputMissing, match="no key 'a'"):
        select("ConfigMap", "m", {"b": b"2"}, source)
    whole = InputSource.model_validate({"secret": {"name": "s"}})
    assert select("Secret", "s", {"z": b"1", "a": b"2"}, whole) == {"a": b"2", "z": b"1"}


def test_two_sources_may_not_give_the_same_file() -> None:
    kube = FakeKube()
    kube.configmaps[("ns", "m")] = {"f": b"1"}
    kube.secrets[("ns", "s")] = {"f": b"2"}
    sources = [
        InputSource.model_validate({"configMap": {"name": "m"}}),
        InputSource.model_validate({"secret": {"name": "s"}}),
    ]
    with pytest.raises(InputError, match="two inputs give the file 'f'"):
        asyncio.run(read_inputs(kube, "ns", sources))


def test_spec_env_wins_over_the_data_variables() -> None:
    job = JobSpec(marker="simjob-x", command=["true"], env={"SIMJOB_OUTPUT_DIR": "/mine"})
    placed = in_run_dir(job, "/w/ns/x-1", with_inputs=True)
    assert placed.env == {"SIMJOB_INPUT_DIR": "/w/ns/x-1/inputs", "SIMJOB_OUTPUT_DIR": "/mine"}
    assert placed.directory == "/w/ns/x-1"


# --------------------------------------------------------------------------- progress


def test_progress_of_many_jobs_is_one_command_per_interval_and_only_changes(
    tmp_path: Path,
) -> None:
    h = local_harness(tmp_path)
    clock = [1000.0]
    seen: list[tuple[Key, ProgressReport]] = []
    progress = SlurmProgress(h.sites, lambda k, r: seen.append((k, r)), clock=lambda: clock[0])
    runner = h.slurm.runner
    assert isinstance(runner, CountingRunner)
    outs = []
    for index in range(40):
        run_dir = tmp_path / "work" / f"r{index}"
        run_dir.mkdir(parents=True)
        out = run_dir / f"simjob-{index}.out"
        out.write_text(f'SIMJOB_PROGRESS {{"percent": {index}}}\n')
        outs.append(out)
        key = ("lab", f"sim-{index}")
        progress.track(key, "hpc", DEFAULT_LOGIN, str(run_dir), str(index), interval=10.0)

    async def tick(at: float) -> None:
        clock[0] = at
        await progress.read_due()

    async def scenario() -> None:
        await tick(1005.0)  # before the first interval: no read (a short run costs none)
        assert runner.commands == 0
        await tick(1010.0)
        assert runner.commands == 1
        assert len(seen) == 40
        assert seen[3] == (("lab", "sim-3"), ProgressReport(percent=3.0))
        await tick(1015.0)  # within the interval: nothing
        await tick(1020.0)  # unchanged: read, but nothing reported
        assert runner.commands == 2
        assert len(seen) == 40
        outs[7].write_text('SIMJOB_PROGRESS {"percent": 70, "message": "step 7"}\n')
        progress.untrack(("lab", "sim-0"))
        await tick(1030.0)
        assert runner.commands == 3
        assert seen[40:] == [(("lab", "sim-7"), ProgressReport(percent=70.0, message="step 7"))]

    asyncio.run(scenario())
    assert progress.commands == 3


def test_a_job_without_progress_lines_is_read_less_and_less_often(tmp_path: Path) -> None:
    h = local_harness(tmp_path)
    clock = [0.0]
    progress = SlurmProgress(h.sites, lambda k, r: None, clock=lambda: clock[0])
    (tmp_path / "quiet").mkdir()
    progress.track(("lab", "quiet"), "hpc", DEFAULT_LOGIN, str(tmp_path / "quiet"), "1", 10.0)

    async def scenario() -> list[float]:
        reads = []
        for second in range(0, 400, 10):
            clock[0] = float(second)
            before = progress.commands
            await progress.read_due()
            if progress.commands > before:
                reads.append(float(second))
        return reads

    assert asyncio.run(scenario()) == [10.0, 30.0, 70.0, 150.0, 310.0]


def test_local_runner_is_the_default_place_for_pyslurm() -> None:
    from simjob_operator.backends.slurm.rundir import place_of

    class Pyslurmish:
        work_dir = "/scratch/w"

    runner, work_dir = place_of(Pyslurmish())  # type: ignore[arg-type]
    assert isinstance(runner, LocalRunner)
    assert work_dir == "/scratch/w"


def test_preparing_again_after_a_crash_rewrites_the_same_read_only_files(tmp_path: Path) -> None:
    # An operator killed between writing the inputs and sbatch prepares again on restart.
    run_dir = str(tmp_path / "w" / "lab" / "again-1")
    inputs = Inputs(config={"params.json": b"{}"}, secret={"token": b"t"})
    asyncio.run(prepare(LocalRunner(), run_dir, inputs, 30.0))
    planted = tmp_path / "elsewhere"
    (tmp_path / "w" / "lab" / "again-1" / "inputs" / "token").unlink()
    (tmp_path / "w" / "lab" / "again-1" / "inputs" / "token").symlink_to(planted)
    asyncio.run(prepare(LocalRunner(), run_dir, inputs, 30.0))
    folder = tmp_path / "w" / "lab" / "again-1" / "inputs"
    assert (folder / "params.json").read_bytes() == b"{}"
    assert not (folder / "token").is_symlink()  # replaced, never written through
    assert (folder / "token").read_bytes() == b"t"
    assert not planted.exists()
    assert stat.S_IMODE((folder / "token").stat().st_mode) == 0o400
