"""A SimJob's Slurm job in the site's container runtime (backends.slurm.containers). Pure.

The job that jobs.job_spec + rundir.in_run_dir build is moved into the SlurmCluster's
runtime with the run directory's outputs/ and inputs/ at the paths a pod sees on
Kubernetes; without an image, or on a cluster with runtime none, it is left as it was.
"""

from __future__ import annotations

from typing import Any

import pytest

from simjob_operator.api.data import INPUT_DIR, WORKSPACE_DIR
from simjob_operator.api.simjob import SimJobSpec
from simjob_operator.api.slurmcluster import SlurmClusterSpec
from simjob_operator.backends.slurm.containers import container_of, image_ignored, in_container
from simjob_operator.backends.slurm.jobs import job_spec
from simjob_operator.backends.slurm.rundir import in_run_dir
from slurm_bridge import InvalidJobSpec, JobSpec, batch_script
from slurm_bridge.containers import PODMAN_SUPERVISOR
from tests.unit.test_slurm_jobs import UID, grant

RUN_DIR = f"/scratch/simjob/lab/heat-{UID}"
IMAGE = "docker.io/simjob/simulation:local"


def simjob(**fields: Any) -> SimJobSpec:
    body: dict[str, Any] = {
        "tier": "small",
        "backend": "slurm",
        "image": IMAGE,
        "command": ["python3", "/opt/simulation/heat.py"],
        "args": ["--steps", "$(id)"],
        "env": [{"name": "OMP_NUM_THREADS", "value": "2"}],
        "slurm": {"cluster": "hpc"},
        "inputs": [{"configMap": {"name": "heat-params"}}],
    }
    body.update(fields)
    return SimJobSpec.model_validate(body)


def site(**fields: Any) -> SlurmClusterSpec:
    return SlurmClusterSpec.model_validate({"workDir": "/scratch/simjob", **fields})


def planned(spec: SimJobSpec) -> JobSpec:
    assert spec.slurm is not None
    job = job_spec(
        namespace="lab", name="heat", uid=UID, spec=spec, slurm=spec.slurm, grant=grant()
    )
    return in_run_dir(job, RUN_DIR, with_inputs=bool(spec.inputs))


def test_the_default_runtime_is_none_and_runs_the_command_on_the_node() -> None:
    spec = simjob()
    job = planned(spec)
    assert site().container_runtime == "none"
    assert in_container(job, spec, site()) is job
    assert image_ignored(spec, site())
    assert not image_ignored(simjob(image=None), site())


def test_a_simjob_without_image_runs_on_the_node_of_a_podman_cluster() -> None:
    spec = simjob(image=None)
    job = planned(spec)
    assert in_container(job, spec, site(containerRuntime="podman")) is job
    assert not image_ignored(spec, site(containerRuntime="podman"))


def test_podman_gets_the_run_directory_at_the_kubernetes_paths() -> None:
    spec = simjob()
    options = {"globalArgs": ["--root=/var/tmp/store"], "runArgs": ["--userns=host"]}
    job = in_container(
        planned(spec), spec, site(containerRuntime="podman", containerOptions=options)
    )
    # The supervisor runs podman; "run" is the 3rd word of podman's command line.
    assert job.argv[:5] == ("/bin/sh", "-c", PODMAN_SUPERVISOR, "sh", "3")
    argv = job.argv[5:]
    assert argv[:3] == ("podman", "--root=/var/tmp/store", "run")
    assert f"--volume={RUN_DIR}/outputs:{WORKSPACE_DIR}" in argv
    assert f"--volume={RUN_DIR}/inputs:{INPUT_DIR}:ro" in argv
    assert f"--env=SIMJOB_OUTPUT_DIR={WORKSPACE_DIR}" in argv
    assert f"--env=SIMJOB_INPUT_DIR={INPUT_DIR}" in argv
    assert "--env=OMP_NUM_THREADS=2" in argv
    assert argv[argv.index("--") + 1 :] == (
        IMAGE,
        "python3",
        "/opt/simulation/heat.py",
        "--steps",
        "$(id)",
    )
    assert argv.index("--userns=keep-id") < argv.index("--userns=host")
    # Started in the run directory (sbatch --chdir, its output file there), as before.
    assert job.directory == RUN_DIR
    assert job.env == {}
    assert "exec /bin/sh -c " in batch_script(job)


def test_without_inputs_nothing_is_mounted_at_the_input_directory() -> None:
    spec = simjob(inputs=[])
    job = in_container(planned(spec), spec, site(containerRuntime="apptainer"))
    assert not any(INPUT_DIR in word for word in job.argv)
    assert not any(name.endswith("SIMJOB_INPUT_DIR") for name in job.env)
    assert job.env["APPTAINERENV_SIMJOB_OUTPUT_DIR"] == WORKSPACE_DIR


def test_a_variable_of_spec_env_still_wins_over_the_data_variables() -> None:
    spec = simjob(env=[{"name": "SIMJOB_OUTPUT_DIR", "value": "/simjob/workspace/run-7"}])
    job = in_container(planned(spec), spec, site(containerRuntime="shifter"))
    assert job.env["SIMJOB_OUTPUT_DIR"] == "/simjob/workspace/run-7"
    assert job.env["SIMJOB_INPUT_DIR"] == INPUT_DIR


def test_working_dir_is_inside_the_container() -> None:
    spec = simjob(workingDir="/opt/simulation")
    job = in_container(planned(spec), spec, site(containerRuntime="podman-hpc"))
    assert "--workdir=/opt/simulation" in job.argv
    assert job.working_dir is None


@pytest.mark.parametrize("runtime", ["podman", "podman-hpc", "apptainer", "shifter"])
def test_gpu_jobs_get_the_runtimes_gpu_flags(runtime: str) -> None:
    spec = simjob()
    assert spec.slurm is not None
    job = job_spec(
        namespace="lab", name="heat", uid=UID, spec=spec, slurm=spec.slurm, grant=grant(gpu=1)
    )
    plain = in_container(planned(spec), spec, site(containerRuntime=runtime))
    gpu = in_container(
        in_run_dir(job, RUN_DIR, with_inputs=True), spec, site(containerRuntime=runtime)
    )
    assert len(gpu.argv) > len(plain.argv)
    assert gpu.gpus == 1


def test_container_of_reads_the_site_options() -> None:
    spec = simjob()
    container = container_of(
        spec,
        site(
            containerRuntime="apptainer",
            containerOptions={"binary": "/opt/apptainer/bin/apptainer", "gpuArgs": []},
        ),
        RUN_DIR,
    )
    assert container is not None
    assert container.binary == "/opt/apptainer/bin/apptainer"
    assert container.gpu_args == ()
    assert container_of(spec, site(), RUN_DIR) is None


def test_a_run_directory_the_runtime_cannot_mount_is_an_invalid_spec() -> None:
    spec = simjob()
    job = planned(spec)
    with pytest.raises(InvalidJobSpec, match="mount source"):
        in_container(
            JobSpec(marker=job.marker, command=job.command, directory="/scratch/a,b/run"),
            spec,
            site(containerRuntime="podman"),
        )
