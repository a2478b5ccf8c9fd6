"""A Slurm site's container runtime in the API: ``ContainerRuntime`` and ``ContainerOptions``.

A SlurmCluster names the runtime its compute nodes run containers with
(``spec.containerRuntime``: none, podman, podman-hpc, apptainer, shifter) and, if the
defaults do not fit the site, ``spec.containerOptions`` (the runtime's command, options
before its subcommand, after the defaults, for GPU jobs). A SimJob with an image then
runs in that runtime with the same command, args, env, inputs and workspace as on
Kubernetes (docs/slurm.md, "Containers"). The command lines themselves are built by
``slurm_bridge.containers``; ``backends.slurm.containers`` joins the two. Built on
``api.base``; used by ``api.slurmcluster``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from simjob_operator.api.base import ApiModel

ContainerRuntime = Literal["none", "podman", "podman-hpc", "apptainer", "shifter"]
# One option of the runtime: starts with '-' (so it never takes the image's place),
# no control characters; an option with a value is written --name=value.
CONTAINER_OPTION_PATTERN = "^-[^\\x00-\\x1F\\x7F-\\x9F]*$"
MAX_CONTAINER_OPTIONS = 64
MAX_CONTAINER_OPTION_LENGTH = 1024


def _options(description: str) -> Any:
    return Field(
        default_factory=list,
        max_length=MAX_CONTAINER_OPTIONS,
        description=description,
        json_schema_extra={
            "items": {
                "description": "One option of the runtime, starting with '-'.",
                "maxLength": MAX_CONTAINER_OPTION_LENGTH,
                "pattern": CONTAINER_OPTION_PATTERN,
            },
            "x-kubernetes-list-type": "atomic",
        },
    )


class ContainerOptions(ApiModel):
    """How the site's container runtime is called, where its defaults do not fit."""

    binary: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        pattern="^[A-Za-z0-9_./+][A-Za-z0-9_./+-]*$",
        description="The runtime's command on the compute nodes, a name or an absolute "
        "path (default: podman, podman-hpc, apptainer or shifter, looked up in the job's "
        "PATH).",
    )
    global_args: list[str] = _options(
        "Options before the subcommand (podman: --root=..., --runroot=..., --runtime=...; "
        "apptainer: --quiet). Each starts with '-'; write --name=value for one with a value."
    )
    run_args: list[str] = _options(
        "Options after the defaults of docs/slurm.md and before the image (podman keeps "
        "the last value of a flag, so --userns=host here replaces the default "
        "--userns=keep-id). Each starts with '-'."
    )
    gpu_args: list[str] | None = Field(
        default=None,
        max_length=MAX_CONTAINER_OPTIONS,
        description="Options for a job that asks GPUs (default: podman "
        "--device=nvidia.com/gpu=all --env=CUDA_VISIBLE_DEVICES, podman-hpc --gpu, "
        "apptainer --nv, shifter --module=gpu; [] for none). Each starts with '-'.",
        json_schema_extra={
            "items": {
                "description": "One option of the runtime, starting with '-'.",
                "maxLength": MAX_CONTAINER_OPTION_LENGTH,
                "pattern": CONTAINER_OPTION_PATTERN,
            },
            "x-kubernetes-list-type": "atomic",
        },
    )
