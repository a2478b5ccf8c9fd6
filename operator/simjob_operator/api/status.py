"""The SimJob's status in the API: phase, conditions, the Grant, usage, progress.

``SimJobStatus`` is written only by the operator (``controller.recorder``): the phase
and its conditions, the ``Grant`` recorded at admission (what the tier granted; the
backend runs with exactly that), the backend reference, usage, progress and the
workspace. Built on ``api.base``; ``api.simjob`` puts it into the SimJob.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from simjob_operator.api.base import ApiModel
from simjob_operator.api.data import Progress, WorkspaceStatus
from simjob_operator.api.simtier import SlurmTierSpec, Toleration


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
    workspace_claim: str | None = Field(
        default=None, description="The tier's default workspace claim."
    )
    progress_interval_seconds: int | None = Field(
        default=None, description="How often progress is read and written at most."
    )
    output_retention_seconds: int | None = Field(
        default=None, description="Outputs are removed this long after the end; unset: kept."
    )


class Usage(ApiModel):
    """Resource use, for accounting."""

    wall_seconds: float = Field(default=0.0, description="Wall time from start to end.")
    cpu_seconds: float = Field(
        default=0.0,
        description="wallSeconds times the CPUs (the tier's, or those Slurm allocated).",
    )
    max_rss_bytes: int | None = Field(
        default=None, description="Peak resident memory, where the backend measured it."
    )
    source: str | None = Field(
        default=None,
        description="Who measured: unset (the operator, from start and end times) or the "
        "backend's accounting (e.g. sacct: its elapsed time and allocated CPUs).",
    )
    gpu_seconds: float = Field(default=0.0, description="wallSeconds times the granted GPUs.")
    memory_gib_seconds: float = Field(
        default=0.0,
        alias="memoryGiBSeconds",
        description="wallSeconds times the granted memory in GiB.",
    )


class ReusedFrom(ApiModel):
    """The Succeeded SimJob whose results a reused SimJob stands for."""

    name: str = Field(description="Its name (same namespace).")
    uid: str = Field(description="Its uid.")
    workspace: WorkspaceStatus | None = Field(default=None, description="Its outputs.")


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
        default=None,
        description="Resource use of the run: final once it finished; so far while it runs "
        "(carried by status writes made anyway, e.g. progress).",
    )
    accounted_in: str | None = Field(
        default=None,
        description="The SimUsage (same namespace) this finished SimJob is counted in; "
        "written once, after the count (docs/accounting.md).",
    )
    progress: Progress | None = Field(
        default=None, description="The newest progress the simulation reported."
    )
    workspace: WorkspaceStatus | None = Field(
        default=None, description="Where the outputs of this run are."
    )
    reused_from: ReusedFrom | None = Field(
        default=None, description="Reason Reused: the SimJob whose outputs this one reuses."
    )
