"""Containers on Slurm, for real: podman from Debian under the local Slurm's slurmd.

hack/slurm/podman.sh installs podman (and runc) when missing, loads the simulation image
(hack/images/build.sh's OCI archive, docker.io/simjob/simulation:local) into a podman
store of its own (a cache hit once loaded) and says which podman options this machine
needs. Then:

* the bridge: a batch job whose argv and environment carry the hostile corpus runs
  ``printf`` / ``printenv`` INSIDE the image through podman, and its output is the
  corpus byte for byte (no value split, expanded or taken for a podman option);
* the operator: a SimJob with that image on a SlurmCluster with ``containerRuntime:
  podman`` runs heat.py in the container with its inputs (a ConfigMap) at
  /simjob/inputs and its workspace at /simjob/workspace, to Succeeded, its outputs in
  the run directory's outputs/ and its own output (progress lines too) in the batch
  output; a cancel reaches heat.py through podman and leaves no container behind.

Neighbours: tests/unit/test_slurm_containers.py (every runtime's command line, a
stand-in runtime), test_slurm_operator.py, slurm_operator_helpers.py.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slurm_bridge import CliSlurmClient, JobKind, JobSpec, LocalRunner
from slurm_bridge.containers import Container, ContainerRuntime, Mount, containerize
from tests.integration.conftest import Kube, OperatorProcess, wait_for
from tests.integration.slurm_operator_helpers import (
    apply_slurm_tiers,
    jobs_named,
    marker_of,
    output_file,
    run_dir,
    slurm_cluster,
    slurm_simjob,
    wait_reachable,
)
from tests.support.slurm_bridge_helpers import finished, run, scancel_all, wait_for_state
from tests.support.slurm_hostile import ACCEPTED

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
IMAGE = "docker.io/simjob/simulation:local"
CLUSTER = "it-podman"
FINISH_S = 180.0
# The local Slurm is shared with other tests: a job may queue a while before it starts.
START_S = 600.0
MULTILINE = ("a\nb", "\n#SBATCH --wrap=id", "trailing newline\n", "tab\there")


@pytest.fixture(scope="module")
def podman_options() -> dict[str, list[str]]:
    """The simulation image in podman's store; the podman options this machine needs."""
    done = subprocess.run(
        [str(REPO / "hack" / "slurm" / "podman.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    options: dict[str, list[str]] = json.loads(done.stdout)
    return options


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slurm-podman-work")


@pytest.fixture(scope="module")
def submitted(slurm_env: dict[str, str]) -> Iterator[list[str]]:
    ids: list[str] = []
    yield ids
    scancel_all(slurm_env, ids)


def in_podman(spec: JobSpec, options: dict[str, list[str]], *mounts: Mount) -> JobSpec:
    container = Container(
        runtime=ContainerRuntime.PODMAN,
        image=IMAGE,
        mounts=mounts,
        global_args=options["globalArgs"],
        run_args=options["runArgs"],
    )
    return containerize(spec, container)


def submit_and_wait(client: CliSlurmClient, spec: JobSpec, submitted: list[str]) -> str:
    async def scenario() -> str:
        job_id = await client.submit(spec)
        submitted.append(job_id)
        state = await wait_for_state(client, job_id, finished, timeout_s=START_S)
        tail = await client.output_tail(job_id, lines=20, max_bytes=4096)
        assert (state.kind, state.exit_code) == (JobKind.SUCCEEDED, 0), (state, tail)
        return job_id

    return run(scenario())


def test_hostile_argv_reaches_the_program_in_the_container_literally(
    slurm_env: dict[str, str],
    podman_options: dict[str, list[str]],
    work_dir: Path,
    submitted: list[str],
) -> None:
    values = (*ACCEPTED, *MULTILINE)
    client = CliSlurmClient(LocalRunner(env=slurm_env), work_dir=str(work_dir))
    spec = JobSpec(
        marker=f"simjob-test-podman-argv-{uuid.uuid4().hex[:12]}",
        command=["printf", "%s\\n"],
        args=list(values),
        comment="$(id)",
    )
    job_id = submit_and_wait(client, in_podman(spec, podman_options), submitted)
    output = (work_dir / f"simjob-{job_id}.out").read_bytes()
    assert output == "".join(f"{value}\n" for value in values).encode("utf-8")
    assert not Path("/tmp/simjob-pwned").exists()


def test_hostile_env_and_workspace_reach_the_container(
    slurm_env: dict[str, str],
    podman_options: dict[str, list[str]],
    work_dir: Path,
    submitted: list[str],
) -> None:
    values = (*ACCEPTED, *MULTILINE)
    env = {f"V{index}": value for index, value in enumerate(values)}
    # Meant for the container: on the node they would break podman itself.
    env.update(PATH="/nonexistent:/usr/bin:/bin", LD_PRELOAD="/nonexistent.so", HOME="/nowhere")
    workspace = work_dir / "workspace"
    workspace.mkdir(mode=0o700)
    script = (
        'pwd; printf "%s\\n" "$PATH" "$HOME"; for n in "$@"; do printenv "$n"; done; echo hi > out'
    )
    client = CliSlurmClient(LocalRunner(env=slurm_env), work_dir=str(work_dir))
    spec = JobSpec(
        marker=f"simjob-test-podman-env-{uuid.uuid4().hex[:12]}",
        command=["sh", "-c", script, "sh", *[name for name in env if name.startswith("V")]],
        env=env,
        working_dir="/simjob/workspace",
    )
    job = in_podman(spec, podman_options, Mount(str(workspace), "/simjob/workspace"))
    job_id = submit_and_wait(client, job, submitted)
    text = (work_dir / f"simjob-{job_id}.out").read_text(encoding="utf-8")
    # LD_PRELOAD reached the programs in the container (their loader says it cannot
    # preload the file), not podman on the node, which ran the job.
    preload = "ERROR: ld.so: object '/nonexistent.so' from LD_PRELOAD cannot be preloaded"
    lines = text.split("\n")
    assert any(line.startswith(preload) for line in lines)
    kept = "\n".join(line for line in lines if not line.startswith(preload))
    expected = ["/simjob/workspace", env["PATH"], env["HOME"], *values]
    assert kept == "".join(f"{line}\n" for line in expected)
    assert (workspace / "out").read_text() == "hi\n"


# ------------------------------------------------------------------ the operator


@pytest.fixture(scope="module")
def podman_cluster(
    kube: Kube,
    operator: OperatorProcess,
    slurm_env: dict[str, str],
    podman_options: dict[str, list[str]],
    work_dir: Path,
) -> Iterator[str]:
    apply_slurm_tiers(kube)
    manifest = slurm_cluster(
        CLUSTER,
        mode="local",
        workDir=str(work_dir / "operator"),
        containerRuntime="podman",
        containerOptions=podman_options,
    )
    kube.apply(manifest)
    wait_reachable(kube, CLUSTER, "True", timeout=60)
    yield CLUSTER
    kube.run("delete", "slurmclusters.simjob.io", CLUSTER, "--ignore-not-found", check=False)


def heat(name: str, cluster: str, **spec: Any) -> dict[str, Any]:
    return slurm_simjob(
        name,
        cluster,
        "python3",
        "/opt/simulation/heat.py",
        "--progress-every",
        "20",
        image=IMAGE,
        inputs=[{"configMap": {"name": "heat-params"}}],
        **spec,
    )


def test_heat_runs_in_podman_to_succeeded_with_inputs_and_workspace(
    kube: Kube, namespace: str, podman_cluster: str, slurm_env: dict[str, str]
) -> None:
    params = {"grid": 48, "steps": 120, "alpha": 0.2, "seconds": 3}
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "heat-params"},
            "data": {"params.json": json.dumps(params)},
        },
        namespace=namespace,
    )
    kube.apply(heat("heat", podman_cluster), namespace=namespace)
    kube.wait_phase(namespace, "heat", {"Running", "Succeeded", "Failed"}, timeout=START_S)
    status = kube.wait_phase(namespace, "heat", {"Succeeded", "Failed"}, timeout=FINISH_S)
    log = output_file(kube, namespace, "heat").read_text(encoding="utf-8")
    assert status["phase"] == "Succeeded", (status, log)
    assert (status["reason"], status["exitCode"]) == ("Completed", 0)
    assert jobs_named(slurm_env, marker_of(kube, namespace, "heat")) == {status["backendRef"]["id"]}
    # heat.py read params.json from /simjob/inputs and wrote into /simjob/workspace.
    assert "heat: grid 48x48, 120 steps" in log, log
    assert "SIMJOB_PROGRESS" in log
    outputs = run_dir(kube, namespace, "heat") / "outputs"
    summary = json.loads((outputs / "summary.json").read_text())
    assert (summary["grid"], summary["steps"]) == (48, 120), summary
    assert (outputs / "field.npy").stat().st_size > 48 * 48 * 8


def test_without_image_the_command_runs_on_the_node_of_a_podman_cluster(
    kube: Kube, namespace: str, podman_cluster: str
) -> None:
    # The node's own PID 1, not a container's: no container was started.
    kube.apply(slurm_simjob("plain", podman_cluster, "cat", "/proc/1/comm"), namespace=namespace)
    status = kube.wait_phase(namespace, "plain", {"Succeeded", "Failed"}, timeout=START_S)
    assert status["phase"] == "Succeeded", status
    node_init = Path("/proc/1/comm").read_text()
    assert output_file(kube, namespace, "plain").read_text() == node_init


def podman_containers(options: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Every container of the test's podman store, running or not."""
    done = subprocess.run(
        ["podman", *options["globalArgs"], "ps", "--all", "--format=json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    containers: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return containers


def test_cancel_while_running_stops_and_removes_the_container(
    kube: Kube,
    namespace: str,
    podman_cluster: str,
    slurm_env: dict[str, str],
    podman_options: dict[str, list[str]],
) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "heat-params"},
            "data": {"params.json": json.dumps({"grid": 32, "steps": 100000, "seconds": 300})},
        },
        namespace=namespace,
    )
    kube.apply(
        heat(
            "long",
            podman_cluster,
            env=[{"name": "SIMJOB_TERM_MARKER", "value": "/simjob/workspace/term"}],
        ),
        namespace=namespace,
    )
    kube.wait_phase(namespace, "long", "Running", timeout=START_S)
    log = output_file(kube, namespace, "long")
    wait_for(
        lambda: log.exists() and "SIMJOB_PROGRESS" in log.read_text(),
        timeout=60,
        what="heat.py to run in its container",
    )
    image_of = {c.get("Id"): c.get("Image") for c in podman_containers(podman_options)}
    assert IMAGE in image_of.values(), image_of
    kube.patch_simjob(namespace, "long", {"spec": {"cancel": True}})
    status = kube.wait_phase(namespace, "long", {"Cancelled", "Failed", "Succeeded"}, timeout=60)
    assert (status["phase"], status["reason"]) == ("Cancelled", "CancelRequested"), status
    # scancel's SIGTERM reached heat.py through podman (its marker file), and podman's
    # --rm removed the container: none is left running or stopped.
    marker = run_dir(kube, namespace, "long") / "outputs" / "term"
    wait_for(marker.exists, timeout=30, what="heat.py's SIGTERM marker")
    wait_for(
        lambda: not [c for c in podman_containers(podman_options) if c.get("Image") == IMAGE],
        timeout=60,
        what="the container to be gone",
        detail=lambda: podman_containers(podman_options),
    )
