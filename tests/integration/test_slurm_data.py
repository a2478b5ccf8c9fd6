"""The data path on the real local Slurm: inputs, run directory, progress, outputs.

The operator subprocess on the real control plane, a SlurmCluster in local mode, and
the example simulation (examples/simulation/heat.py, run by the host's python3 with
numpy, no container). Its ConfigMap and Secret inputs are written into the run
directory's ``inputs/`` (read-only files) and used (``params.json`` sets the grid),
its progress lines reach ``status.progress`` while it runs, and its outputs are listed
and fetched through the bridge (``slurm_bridge.list_run_dir``/``fetch_file``). Hostile
keys fail the SimJob before anything is written; a missing input is waited for (shown
as the reason) until the tier's maxPendingSeconds; symlinks a job plants in its run
directory (its batch output file, an output) are never read through: not by the
progress reader, not for the failure message, not by a fetch.
The same over SSH: test_slurm_operator_ssh.py. Neighbours: slurm_operator_helpers.py.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slurm_bridge import LocalRunner, RunDirError, fetch_file, list_run_dir
from slurm_bridge.tails import SYMLINK_NOTE
from tests.integration.conftest import Kube, OperatorProcess, wait_for
from tests.integration.slurm_operator_helpers import (
    jobs_named,
    marker_of,
    run_dir,
    slurm_cluster,
    slurm_simjob,
    wait_reachable,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
HEAT = ["/usr/bin/python3", str(REPO / "examples" / "simulation" / "heat.py")]
CLUSTER = "it-data"
TIER = "it-slurm-data"
FINISH_S = 180.0
DATA_TIER = {
    "apiVersion": "simjob.io/v1alpha1",
    "kind": "SimTier",
    "metadata": {"name": TIER},
    "spec": {
        "cpu": "1",
        "memory": "200Mi",
        "maxRuntimeSeconds": 600,
        "maxConcurrentPerOwner": 10,
        "progressIntervalSeconds": 1,
    },
}


def config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


def progress_of(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return dict(kube.status(namespace, name).get("progress") or {})


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slurm-data-work")


@pytest.fixture(scope="module")
def data_cluster(
    kube: Kube, operator: OperatorProcess, slurm_env: dict[str, str], work_dir: Path
) -> Iterator[str]:
    kube.apply(DATA_TIER)
    kube.apply(slurm_cluster(CLUSTER, mode="local", workDir=str(work_dir)))
    wait_reachable(kube, CLUSTER, "True", timeout=60)
    yield CLUSTER
    kube.run("delete", "slurmclusters.simjob.io", CLUSTER, "--ignore-not-found", check=False)


def test_heat_gets_its_inputs_reports_progress_and_its_outputs_are_fetched(
    kube: Kube, namespace: str, data_cluster: str, slurm_env: dict[str, str], work_dir: Path
) -> None:
    kube.apply(
        config_map("heat-params", {"params.json": json.dumps({"grid": 24, "steps": 60})}),
        secret("heat-token", {"token": "s3cret", "unused": "x"}),
        namespace=namespace,
    )
    inputs = [
        {"configMap": {"name": "heat-params"}},
        {"secret": {"name": "heat-token", "items": [{"key": "token", "path": "token.txt"}]}},
    ]
    args = [*HEAT, "--seconds", "12"]
    kube.apply(
        slurm_simjob("heat", data_cluster, *args, tier=TIER, inputs=inputs), namespace=namespace
    )
    kube.wait_phase(namespace, "heat", "Running", timeout=240)  # a shared Slurm
    # Progress reaches status while it runs (heat prints a line every 6 steps, ~1.2 s).
    running = wait_for(
        lambda: (p := progress_of(kube, namespace, "heat")) and 0 < p["percent"] < 100 and p,
        timeout=60,
        what="a progress report between 0 and 100 % while Running",
        detail=lambda: kube.status(namespace, "heat"),
    )
    assert running["message"].startswith("step ")
    assert running["updateTime"]
    status = kube.wait_phase(namespace, "heat", {"Succeeded", "Failed"}, timeout=FINISH_S)
    assert status["phase"] == "Succeeded", status
    assert status["progress"]["percent"] == 100
    uid = kube.simjob(namespace, "heat")["metadata"]["uid"]
    directory = work_dir / namespace / f"heat-{uid}"
    assert status["workspace"] == {"cluster": data_cluster, "directory": str(directory)}
    assert run_dir(kube, namespace, "heat") == directory
    assert jobs_named(slurm_env, marker_of(kube, namespace, "heat")) == {status["backendRef"]["id"]}
    # The inputs, read-only, where $SIMJOB_INPUT_DIR pointed.
    assert (directory / "inputs" / "token.txt").read_text() == "s3cret"
    assert not (directory / "inputs" / "unused").exists()
    assert stat.S_IMODE((directory / "inputs" / "params.json").stat().st_mode) == 0o444
    assert stat.S_IMODE((directory / "inputs" / "token.txt").stat().st_mode) == 0o400

    # The outputs, through the bridge (as a gateway would read them).
    async def fetch() -> tuple[list[str], bytes, bytes]:
        runner = LocalRunner()
        listing = await list_run_dir(runner, str(directory))
        summary = await fetch_file(runner, str(directory), "outputs/summary.json")
        output = await fetch_file(
            runner, str(directory), f"simjob-{status['backendRef']['id']}.out"
        )
        return [entry.path for entry in listing if entry.kind == "file"], summary, output

    files, summary, output = asyncio.run(fetch())
    assert {
        "inputs/params.json",
        "inputs/token.txt",
        "outputs/field.npy",
        "outputs/summary.json",
    } <= set(files)
    assert json.loads(summary)["grid"] == 24  # params.json from the ConfigMap was used
    assert json.loads(summary)["steps"] == 60
    assert b'SIMJOB_PROGRESS {"percent": 100.0, "message": "step 60 of 60"}' in output


def test_hostile_input_keys_fail_the_simjob_and_nothing_is_written(
    kube: Kube, namespace: str, data_cluster: str, slurm_env: dict[str, str], work_dir: Path
) -> None:
    # Keys the API server accepts but that are no safe file name here (same rule as on
    # Kubernetes: ^[A-Za-z0-9_][A-Za-z0-9_.,+=@-]{0,127}$).
    kube.apply(
        config_map("hostile", {"-rf": "one", ".bashrc": "two", "ok": "three"}), namespace=namespace
    )
    kube.apply(
        slurm_simjob(
            "hostile", data_cluster, "true", tier=TIER, inputs=[{"configMap": {"name": "hostile"}}]
        ),
        namespace=namespace,
    )
    status = kube.wait_phase(namespace, "hostile", {"Failed", "Succeeded"}, timeout=60)
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidInputs"), status
    assert "cannot be an input file name" in status["message"]
    assert jobs_named(slurm_env, marker_of(kube, namespace, "hostile")) == set()
    assert not (work_dir / namespace).exists() or not any((work_dir / namespace).iterdir())


def test_a_missing_input_is_waited_for_until_max_pending_seconds(
    kube: Kube, namespace: str, data_cluster: str, slurm_env: dict[str, str], work_dir: Path
) -> None:
    """Like a pod whose ConfigMap does not exist yet: the SimJob waits (Queued,
    InputNotFound, naming it), runs once the ConfigMap is applied, and one whose input
    never comes fails InputNotFound at the end of the tier's maxPendingSeconds, with
    nothing submitted to Slurm."""
    tier = f"{TIER}-wait"
    kube.apply({**DATA_TIER, "metadata": {"name": tier},
                "spec": {**DATA_TIER["spec"], "maxPendingSeconds": 20}})  # fmt: skip
    for name in ("late", "never"):
        inputs = [{"configMap": {"name": f"{name}-params"}}]
        kube.apply(slurm_simjob(name, data_cluster, "true", tier=tier, inputs=inputs),
                   namespace=namespace)  # fmt: skip
    waiting = wait_for(
        lambda: (s := kube.status(namespace, "late")).get("reason") == "InputNotFound" and s,
        timeout=60,
        what="Queued/InputNotFound while late-params is missing",
        detail=lambda: kube.status(namespace, "late"),
    )
    assert waiting["phase"] == "Queued", waiting
    assert f"ConfigMap {namespace}/late-params does not exist" in waiting["message"]
    assert "20 s after admission" in waiting["message"]
    kube.apply(config_map("late-params", {"params.json": "{}"}), namespace=namespace)
    status = kube.wait_phase(namespace, "late", {"Succeeded", "Failed"}, timeout=FINISH_S)
    assert status["phase"] == "Succeeded", status
    directory = Path(status["workspace"]["directory"])
    assert (directory / "inputs" / "params.json").read_text() == "{}"
    status = kube.wait_phase(namespace, "never", {"Succeeded", "Failed"}, timeout=90)
    assert (status["phase"], status["reason"]) == ("Failed", "InputNotFound"), status
    assert f"ConfigMap {namespace}/never-params does not exist" in status["message"]
    assert "did not appear within maxPendingSeconds (20 s)" in status["message"]
    assert jobs_named(slurm_env, marker_of(kube, namespace, "never")) == set()
    kube.run("delete", "simtiers.simjob.io", tier, "--ignore-not-found", check=False)


def test_symlinks_planted_in_the_run_directory_are_never_read_through(
    kube: Kube, namespace: str, data_cluster: str, work_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text('SIMJOB_PROGRESS {"percent": 66, "message": "leaked"}\nTOPSECRET\n')
    script = (
        'echo \'SIMJOB_PROGRESS {"percent": 10, "message": "mine"}\'; sleep 5; '
        f'rm -f "simjob-$SLURM_JOB_ID.out"; ln -s {outside} "simjob-$SLURM_JOB_ID.out"; '
        f"ln -s {outside} outputs/leak; ln -s / outputs/root; sleep 5; exit 3"
    )
    kube.apply(
        slurm_simjob("planter", data_cluster, "sh", "-c", script, tier=TIER), namespace=namespace
    )
    wait_for(
        lambda: progress_of(kube, namespace, "planter").get("message") == "mine",
        timeout=60,
        what="the job's own progress line in status",
        detail=lambda: kube.status(namespace, "planter"),
    )
    status = kube.wait_phase(namespace, "planter", {"Failed", "Succeeded"}, timeout=FINISH_S)
    assert (status["phase"], status["exitCode"]) == ("Failed", 3), status
    assert status["progress"]["message"] == "mine"  # never the planted file's line
    assert "TOPSECRET" not in status["message"]
    assert "leaked" not in status["message"]
    assert SYMLINK_NOTE in status["message"]
    directory = run_dir(kube, namespace, "planter")

    async def look() -> dict[str, str]:
        runner = LocalRunner()
        kinds = {entry.path: entry.kind for entry in await list_run_dir(runner, str(directory))}
        for path in (
            "outputs/leak",
            "outputs/root/etc/passwd",
            f"simjob-{status['backendRef']['id']}.out",
        ):
            with pytest.raises(RunDirError):
                await fetch_file(runner, str(directory), path)
        return kinds

    kinds = asyncio.run(look())
    assert kinds["outputs/leak"] == "symlink"
    assert kinds["outputs/root"] == "symlink"
    assert outside.read_text().endswith("TOPSECRET\n")  # untouched
