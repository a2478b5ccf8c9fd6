"""A SimJob's Slurm job inside the site's container runtime. Pure.

``in_container`` takes the job ``jobs.job_spec`` built (the command run on the node) and,
when the SlurmCluster names a container runtime (``spec.containerRuntime``) and the
SimJob an image, returns the same job run in that image by
``slurm_bridge.containerize``: the run directory's ``outputs/`` (``rundir``: the run
directory is ``JobSpec.directory``) mounted read-write at ``api.data.WORKSPACE_DIR``,
its ``inputs/`` read-only at ``api.data.INPUT_DIR`` when the SimJob has inputs, and
``$SIMJOB_OUTPUT_DIR`` / ``$SIMJOB_INPUT_DIR`` pointing there — the paths a pod sees
on Kubernetes (a variable of ``spec.env`` of the same name still wins). Otherwise
the job is returned unchanged: without an image, or on a cluster with runtime
``none``, the command runs on the node as it always did (``image_ignored`` says when
an image goes unused, for the submit message). Used by ``backend``; the command lines
are ``slurm_bridge.containers``'.
"""

from __future__ import annotations

import dataclasses

from simjob_operator.api.containers import ContainerOptions
from simjob_operator.api.data import INPUT_DIR, WORKSPACE_DIR
from simjob_operator.api.simjob import SimJobSpec
from simjob_operator.api.slurmcluster import SlurmClusterSpec
from simjob_operator.backends.slurm.rundir import INPUTS, OUTPUTS, data_env
from slurm_bridge import JobSpec
from slurm_bridge.containers import Container, ContainerRuntime, Mount, containerize


def container_of(spec: SimJobSpec, site: SlurmClusterSpec, run_dir: str | None) -> Container | None:
    """The container a SimJob's job runs in on this site, or None (no image, or none)."""
    if site.container_runtime == "none" or spec.image is None:
        return None
    mounts: list[Mount] = []
    if run_dir is not None:
        mounts.append(Mount(f"{run_dir}/{OUTPUTS}", WORKSPACE_DIR))
        if spec.inputs:
            mounts.append(Mount(f"{run_dir}/{INPUTS}", INPUT_DIR, read_only=True))
    options = site.container_options or ContainerOptions()
    return Container(
        runtime=ContainerRuntime(site.container_runtime),
        image=spec.image,
        mounts=mounts,
        binary=options.binary,
        global_args=options.global_args,
        run_args=options.run_args,
        gpu_args=options.gpu_args,
    )


def in_container(job: JobSpec, spec: SimJobSpec, site: SlurmClusterSpec) -> JobSpec:
    """``job`` run in the site's container runtime (unchanged when there is none).
    Raises ``slurm_bridge.InvalidJobSpec`` for what the runtime cannot take."""
    container = container_of(spec, site, job.directory)
    if container is None:
        return job
    env = dict(job.env)
    if job.directory is not None:
        inside = {"SIMJOB_OUTPUT_DIR": WORKSPACE_DIR, "SIMJOB_INPUT_DIR": INPUT_DIR}
        on_node = data_env(job.directory, with_inputs=bool(spec.inputs))
        for name, path in on_node.items():
            if env.get(name) == path:  # not one of spec.env's own
                env[name] = inside[name]
    return containerize(dataclasses.replace(job, env=env), container)


def image_ignored(spec: SimJobSpec, site: SlurmClusterSpec) -> bool:
    """The SimJob names an image the site runs no container for."""
    return spec.image is not None and site.container_runtime == "none"
