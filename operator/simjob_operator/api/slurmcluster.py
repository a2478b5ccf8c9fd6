"""The SlurmCluster API: pydantic models of a Slurm site (cluster-scoped, ``slc``).

The other half of the API's single source of truth, beside ``models`` (SimJob,
SimTier, and the ``ApiModel`` base and CEL helper used here).
``crd_generation`` makes the SlurmCluster CRD from ``SlurmCluster``; the Slurm
backend (``backends.slurm_sites``, ``backends.slurm_polling``) reads and writes
these objects. See docs/slurm.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, JsonValue

from simjob_operator.api.base import DNS_SUBDOMAIN_PATTERN, ApiModel, cel
from simjob_operator.api.containers import ContainerOptions, ContainerRuntime
from simjob_operator.api.simjob import Condition

# A Slurm work directory: absolute, plain path characters (it ends up in sbatch's
# --output pattern, where '%' is special); slurm_bridge.specs.check_work_dir agrees.
SLURM_WORK_DIR_PATTERN = r"^/[A-Za-z0-9_./@+=,-]*$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
HOST_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$"
SITE_USER_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"


def _ssh_requires(field: str, why: str = "") -> dict[str, JsonValue]:
    return cel(f"self.mode != 'ssh' || has(self.{field})", f"{field} is required in ssh mode{why}")


class SecretRef(ApiModel):
    """A Secret in a given namespace."""

    namespace: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description="Namespace of the Secret.",
    )
    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the Secret.",
    )


class SlurmClusterSpec(ApiModel):
    """How the operator reaches a Slurm site and where jobs keep their files."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _ssh_requires("host"),
                _ssh_requires("user"),
                _ssh_requires("credentialsSecretRef"),
                _ssh_requires("knownHostsSecretRef", " (host keys are always verified)"),
                cel(
                    "self.mode != 'ssh' || self.client == 'cli'",
                    "the pyslurm client works in local mode only",
                ),
            ],
        },
    )

    mode: Literal["local", "ssh"] = Field(
        default="local",
        description="local: Slurm's commands run on the operator's host (with its "
        "SLURM_CONF); ssh: on a login node over SSH.",
    )
    host: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=HOST_PATTERN,
        description="Login node host name or address (ssh mode).",
    )
    port: int = Field(default=22, ge=1, le=65535, description="SSH port of the login node.")
    user: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=SITE_USER_PATTERN,
        description="Site account the operator logs in as (ssh mode).",
    )
    credentials_secret_ref: SecretRef | None = Field(
        default=None,
        description="Secret with the SSH private key of user (key ssh-privatekey), "
        "required in ssh mode.",
    )
    known_hosts_secret_ref: SecretRef | None = Field(
        default=None,
        description="Secret with the login node's host keys in known_hosts format "
        "(key known_hosts; '[host]:port key' for a port other than 22), required in ssh mode.",
    )
    work_dir: str = Field(
        min_length=1,
        max_length=4096,
        pattern=SLURM_WORK_DIR_PATTERN,
        description="Absolute directory, shared with the compute nodes, for job output "
        "(simjob-<jobid>.out); created when missing.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!(self + '/').contains('/../')", "workDir must not contain '..'"),
            ],
        },
    )
    poll_interval_seconds: int = Field(
        default=10,
        ge=1,
        le=3600,
        description="How often the states of all tracked jobs are read (one squeue, "
        "plus one sacct for jobs that left squeue).",
    )
    client: Literal["cli", "pyslurm"] = Field(
        default="cli",
        description="cli: Slurm's command-line tools; pyslurm: pyslurm's API (local mode, "
        "and only where pyslurm matches the site's Slurm release).",
    )
    accounting: Literal["auto", "sacct", "completion", "none"] = Field(
        default="auto",
        description="Where finished jobs are read once squeue forgets them: sacct "
        "(slurmdbd), completion (sacct --completion, jobcomp/filetxt), none, or auto "
        "(detected from scontrol show config).",
    )
    orphan_grace_seconds: int = Field(
        default=300,
        ge=10,
        le=86400,
        description="The orphan sweep cancels an unfinished Slurm job marked as a SimJob's "
        "of this Kubernetes cluster (in a namespace this operator serves, under the "
        "cluster's own credentials) once its SimJob has been gone this long (e.g. its "
        "finalizer was removed by hand); swept every min(60, grace/3) seconds.",
    )
    gpu_request: Literal["gres", "gpus"] = Field(
        default="gres",
        description="How a tier's GPUs are asked of Slurm: gres (--gres=gpu:N, every "
        "GRES-enabled Slurm) or gpus (--gpus=N, select/cons_tres sites that prefer it).",
    )
    container_runtime: ContainerRuntime = Field(
        default="none",
        description="The container runtime of the compute nodes: a SimJob with an image "
        "runs in it with its command, args, env, inputs and workspace as on Kubernetes "
        "(podman, podman-hpc, apptainer, shifter); none: the command runs on the node "
        "itself and the image is not used.",
        json_schema_extra={"maxLength": 16},
    )
    container_options: ContainerOptions | None = Field(
        default=None,
        description="How the container runtime is called where its defaults do not fit "
        "the site (docs/slurm.md, Containers).",
    )


class SlurmClusterCondition(Condition):
    """A standard Kubernetes condition of a SlurmCluster."""

    type: str = Field(description="Condition type: Reachable or CredentialsExpired.")


class CertificateStatus(ApiModel):
    """The OpenSSH certificate of the SlurmCluster's own credentials (its Secret's
    ssh-certificate), as last read."""

    secret: str = Field(description="namespace/name of the Secret it was read from.")
    key_id: str = Field(default="", description="The certificate's key id.")
    principals: list[str] = Field(default_factory=list, description="Its principals.")
    valid_after: str | None = Field(default=None, description="Valid from (unset: always).")
    valid_before: str | None = Field(
        default=None, description="Valid until (unset: forever); renew the Secret before."
    )


class SlurmClusterStatus(ApiModel):
    """Observed state of a SlurmCluster, written only by the operator."""

    conditions: list[SlurmClusterCondition] = Field(
        default_factory=list,
        description="Reachable: whether the last call to Slurm succeeded (message: the "
        "last error); CredentialsExpired (with a certificate): whether it has expired.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    observed_generation: int | None = Field(
        default=None, description="The generation last acted on."
    )
    certificate: CertificateStatus | None = Field(
        default=None, description="The SSH certificate of the cluster's credentials, if any."
    )


class SlurmCluster(ApiModel):
    """A Slurm site (cluster-scoped) that SimJobs name in spec.slurm.cluster."""

    spec: SlurmClusterSpec = Field(description="How to reach the site.")
    status: SlurmClusterStatus | None = Field(default=None, description="Observed state.")
