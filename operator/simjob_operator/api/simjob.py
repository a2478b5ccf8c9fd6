"""The SimJob API (namespaced, ``sj``): what to run, and what happened.

``SimJobSpec`` (tier, owner, backend, image, command, env, podMetadata, slurm,
cancel) and ``SimJobStatus`` (phase, conditions, the ``Grant`` recorded at
admission, the backend reference, usage). Cross-field rules the API server can
check live here as CEL; rules that need other objects (the tier) are checked by
the operator (``core.validation``). Built on ``api.base``; CRD by
``api.crd_generation``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from simjob_operator.api.base import (
    DNS_SUBDOMAIN_PATTERN,
    ENV_NAME_PATTERN,
    SLURM_NAME_PATTERN,
    ApiModel,
    cel,
)
from simjob_operator.api.names import (
    MAX_RUNTIME_SECONDS_CEILING,
    POD_METADATA_MAX_ENTRIES,
    SIMJOB_NAME_MAX_LENGTH,
    SIMTIER_NAME_MAX_LENGTH,
)
from simjob_operator.api.simtier import SlurmTierSpec, Toleration

# --------------------------------------------------------------------------- SimJob


class EnvVar(ApiModel):
    """One environment variable for the simulation."""

    name: str = Field(
        min_length=1,
        max_length=256,
        pattern=ENV_NAME_PATTERN,
        description="Variable name (letters, digits, underscore; not starting with a digit).",
    )
    value: str = Field(default="", max_length=32768, description="Variable value.")


class PodMetadata(ApiModel):
    """Labels and annotations copied onto the pod that runs the simulation."""

    labels: dict[str, str] = Field(
        default_factory=dict,
        max_length=POD_METADATA_MAX_ENTRIES,
        description="Labels for the pod. Keys under simjob.io/ are reserved.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.all(k, !k.startsWith('simjob.io/'))",
                    "label keys under simjob.io/ are reserved for the operator",
                ),
            ],
        },
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        max_length=POD_METADATA_MAX_ENTRIES,
        description="Annotations for the pod. Keys under simjob.io/ are reserved.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.all(k, !k.startsWith('simjob.io/'))",
                    "annotation keys under simjob.io/ are reserved for the operator",
                ),
            ],
        },
    )


class LocalSecretRef(ApiModel):
    """A Secret in the SimJob's own namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the Secret.",
    )


class SimJobSlurmSpec(ApiModel):
    """Where and how a SimJob with backend slurm runs."""

    cluster: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the SlurmCluster to run on.",
    )
    partition: str | None = Field(
        default=None,
        max_length=64,
        pattern=SLURM_NAME_PATTERN,
        description="Slurm partition; overrides the tier's.",
    )
    qos: str | None = Field(
        default=None,
        max_length=64,
        pattern=SLURM_NAME_PATTERN,
        description="Slurm quality of service; overrides the tier's.",
    )
    account: str | None = Field(
        default=None,
        max_length=64,
        pattern=SLURM_NAME_PATTERN,
        description="Slurm account charged for the job; overrides the tier's.",
    )
    credentials_secret_ref: LocalSecretRef | None = Field(
        default=None,
        description="A Secret in this namespace with the user's own SSH key "
        "(key ssh-privatekey; optional keys username and workDir): the job runs under that "
        "site account instead of the SlurmCluster's. Needs a SlurmCluster in ssh mode.",
    )


class SimJobSpec(ApiModel):
    """What to run, on which tier and backend, and whether to cancel it."""

    # The field rule on owner only runs when old and new both have it; this one
    # also forbids adding or removing it (either would change the slot identity).
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.owner) == has(oldSelf.owner)",
                    "owner cannot be added or removed after creation",
                ),
                cel(
                    "self.backend != 'slurm' || has(self.slurm)",
                    "spec.slurm (with its cluster) is required when backend is slurm",
                ),
            ],
        },
    )

    tier: str = Field(
        min_length=1,
        max_length=SIMTIER_NAME_MAX_LENGTH,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the SimTier that sets resources and limits. Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [cel("self == oldSelf", "tier is immutable")],
        },
    )
    owner: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description="Identity used for slots and accounting; defaults to the namespace. "
        "Immutable once set.",
        json_schema_extra={
            "x-kubernetes-validations": [cel("self == oldSelf", "owner is immutable")],
        },
    )
    backend: Literal["kubernetes", "slurm"] = Field(
        default="kubernetes",
        description="Where the simulation runs: kubernetes (a batch/v1 Job) or slurm. Immutable.",
        json_schema_extra={
            "maxLength": 16,  # bounds the CEL rule's cost (the enum alone does not)
            "x-kubernetes-validations": [cel("self == oldSelf", "backend is immutable")],
        },
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Container image; required when backend is kubernetes.",
    )
    command: list[str] = Field(
        min_length=1,
        max_length=256,
        description="The program and its first arguments (argv, never a shell string).",
        json_schema_extra={"items": {"minLength": 1}},
    )
    args: list[str] = Field(
        default_factory=list, max_length=4096, description="Further arguments after command."
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=1024,
        description="Environment variables for the simulation.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    working_dir: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="Working directory of the simulation.",
    )
    max_runtime_seconds: int | None = Field(
        default=None,
        gt=0,
        le=MAX_RUNTIME_SECONDS_CEILING,
        description="Wall-time limit in seconds; at most the tier's maxRuntimeSeconds, "
        "which is also the default.",
    )
    pod_metadata: PodMetadata | None = Field(
        default=None, description="Labels and annotations for the pod (kubernetes backend)."
    )
    slurm: SimJobSlurmSpec | None = Field(
        default=None,
        description="The SlurmCluster and site options (backend slurm). Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [cel("self == oldSelf", "slurm is immutable")],
        },
    )
    cancel: bool = Field(
        default=False,
        description="Set to true to cancel: the operator stops the simulation and the "
        "SimJob ends Cancelled. Cannot be set back to false.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self || !oldSelf", "cancel cannot be set back to false once true"),
            ],
        },
    )


class Condition(ApiModel):
    """A standard Kubernetes condition."""

    type: str = Field(description="Condition type: Admitted, Running or Finished.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="One-word CamelCase reason.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: str | None = Field(
        default=None, description="When status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, description="The SimJob generation this condition was set for."
    )


class BackendRef(ApiModel):
    """Where the simulation runs."""

    kind: str = Field(description="Job (kubernetes) or SlurmJob (slurm).")
    name: str | None = Field(default=None, description="Name of the batch/v1 Job.")
    id: str | None = Field(default=None, description="Slurm job id.")
    cluster: str | None = Field(default=None, description="SlurmCluster name (slurm).")


class Resources(ApiModel):
    """Effective resources granted by the tier."""

    cpu: str = Field(description="CPU quantity.")
    memory: str = Field(description="Memory quantity.")
    gpu: int = Field(default=0, description="GPUs.")


class Grant(ApiModel):
    """What the tier granted at admission; the backend runs the SimJob with exactly this,
    so a tier edited or deleted later never changes an admitted SimJob."""

    cpu: str = Field(description="CPU quantity (request = limit).")
    memory: str = Field(description="Memory quantity (request = limit).")
    gpu: int = Field(default=0, description="GPUs.")
    max_runtime_seconds: int = Field(description="Runtime limit in seconds.")
    priority_class_name: str | None = Field(default=None, description="The pod's PriorityClass.")
    max_pending_seconds: int | None = Field(
        default=None, description="How long it may wait on the backend without starting."
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, description="The SimJob is deleted this long after it finished."
    )
    slurm: SlurmTierSpec | None = Field(default=None, description="The tier's Slurm options.")
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels the pod must match.",
        json_schema_extra={
            "x-kubernetes-map-type": "atomic",
            "additionalProperties": {"type": "string", "description": "A node label value."},
        },
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        description="Taints the pod tolerates.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )


class Usage(ApiModel):
    """Resource use, for accounting."""

    wall_seconds: float = Field(default=0.0, description="Wall time from start to end.")
    cpu_seconds: float = Field(default=0.0, description="wallSeconds times the tier's CPUs.")


class SimJobStatus(ApiModel):
    """Observed state of a SimJob, written only by the operator."""

    phase: (
        Literal["Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled", "TimedOut"]
        | None
    ) = Field(default=None, description="Where the SimJob is in its life.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Admitted, Running and Finished conditions.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    observed_generation: int | None = Field(
        default=None, description="The generation last acted on."
    )
    owner: str | None = Field(
        default=None,
        description="Effective owner: spec.owner, or the namespace when it is unset "
        "(shown in the OWNER column).",
    )
    queued_time: str | None = Field(default=None, description="When it entered Queued.")
    queue_position: int | None = Field(
        default=None, description="1-based place among this owner's SimJobs waiting for the tier."
    )
    start_time: str | None = Field(default=None, description="When the simulation started.")
    completion_time: str | None = Field(default=None, description="When it finished.")
    exit_code: int | None = Field(default=None, description="Exit code of the simulation.")
    reason: str | None = Field(default=None, description="Reason for the current phase.")
    message: str | None = Field(default=None, description="Human-readable detail.")
    backend_ref: BackendRef | None = Field(default=None, description="The backend object.")
    resources: Resources | None = Field(default=None, description="Effective resources.")
    effective_max_runtime_seconds: int | None = Field(
        default=None, description="The wall-time limit in force."
    )
    grant: Grant | None = Field(
        default=None, description="What the tier granted at admission (never changes after)."
    )
    usage: Usage | None = Field(
        default=None, description="Resource use of the run, written when it finishes."
    )


class SimJob(ApiModel):
    """A simulation run (namespaced)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.metadata.name.size() <= {SIMJOB_NAME_MAX_LENGTH}",
                    f"metadata.name must be at most {SIMJOB_NAME_MAX_LENGTH} characters "
                    "(its Job is named sj-<name> and labelled with it)",
                ),
            ],
        },
    )

    spec: SimJobSpec = Field(description="What to run.")
    status: SimJobStatus | None = Field(default=None, description="Observed state.")
