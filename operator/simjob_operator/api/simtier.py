"""The SimTier API (cluster-scoped, ``st``): what a tier grants a SimJob.

CPU, memory, GPUs, the maximum runtime, slots per owner, the TTL, a priority class,
Slurm options and node placement. Admission copies what the tier grants into the
SimJob's ``status.grant`` (``api.simjob.Grant``), so a tier edited later never
changes an admitted SimJob. Built on ``api.base``; CRD by ``api.crd_generation``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, JsonValue

from simjob_operator.api.base import (
    DNS_SUBDOMAIN_PATTERN,
    PARSEABLE_QUANTITY_RULE,
    POSITIVE_QUANTITY_RULE,
    QUANTITY_PATTERN,
    SLURM_NAME_PATTERN,
    ApiModel,
    cel,
    quantity_at_least_if_positive,
    quantity_at_most,
)
from simjob_operator.api.data import TierWorkspace
from simjob_operator.api.names import MAX_RUNTIME_SECONDS_CEILING, SIMTIER_NAME_MAX_LENGTH

# Upper bounds of what a tier may grant: the usage arithmetic (cpuSeconds = wall x cpu)
# and the Job's limits stay finite and meaningful.
MAX_CPU = "1024"
MIN_CPU = "1m"
MAX_MEMORY = "64Ti"
MIN_MEMORY = "1Mi"
MAX_GPU = 64
MAX_TTL_SECONDS = 365 * 24 * 3600


def quantity_rules(field: str, low: str, high: str) -> list[JsonValue]:
    """CEL for a quantity field: parseable, above zero, within [low, high]."""
    return [
        cel(PARSEABLE_QUANTITY_RULE, f"{field} is not a quantity the API server can read"),
        cel(POSITIVE_QUANTITY_RULE, f"{field} must be above 0"),
        cel(quantity_at_least_if_positive(low), f"{field} must be at least {low}"),
        cel(quantity_at_most(high), f"{field} must be at most {high}"),
    ]


class SlurmTierSpec(ApiModel):
    """How a tier maps onto sbatch options at a Slurm site."""

    partition: str | None = Field(
        default=None,
        max_length=64,
        pattern=SLURM_NAME_PATTERN,
        description="Slurm partition (sbatch --partition).",
    )
    qos: str | None = Field(
        default=None,
        max_length=64,
        pattern=SLURM_NAME_PATTERN,
        description="Slurm quality of service (sbatch --qos).",
    )
    account: str | None = Field(
        default=None,
        max_length=64,
        pattern=SLURM_NAME_PATTERN,
        description="Slurm account charged for the job (sbatch --account).",
    )
    cpus_per_task: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="sbatch --cpus-per-task; defaults to the tier's cpu rounded up.",
    )
    memory: str | None = Field(
        default=None,
        max_length=32,
        pattern=QUANTITY_PATTERN,
        description="sbatch --mem as a quantity (e.g. 4Gi), from 1Mi to 64Ti; defaults to "
        "the tier's memory.",
        json_schema_extra={
            "x-kubernetes-validations": quantity_rules("slurm.memory", MIN_MEMORY, MAX_MEMORY)
        },
    )


class Toleration(ApiModel):
    """A toleration of the pods of a tier (core/v1 Toleration)."""

    key: str | None = Field(default=None, max_length=316, description="Taint key; empty: all.")
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (default Equal)."
    )
    value: str | None = Field(default=None, max_length=63, description="Taint value (Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty: all."
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_TTL_SECONDS,
        description="NoExecute only: how long the pod stays bound (at most 365 days).",
    )


class SimTierSpec(ApiModel):
    """Resources, time limit and concurrency that a tier grants to each SimJob."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.outputRetentionSeconds) || !has(self.ttlSecondsAfterFinished)"
                    " || self.outputRetentionSeconds <= self.ttlSecondsAfterFinished",
                    "outputRetentionSeconds must not exceed ttlSecondsAfterFinished: a SimJob "
                    "is the record of its outputs, which cannot outlive it (unset "
                    "ttlSecondsAfterFinished keeps SimJobs, unset outputRetentionSeconds "
                    "keeps outputs)",
                ),
            ],
        },
    )

    cpu: str = Field(
        max_length=32,
        pattern=QUANTITY_PATTERN,
        description="CPU per SimJob as a Kubernetes quantity (e.g. 2 or 500m), from 1m to "
        "1024 cores; the pod's request and limit.",
        json_schema_extra={"x-kubernetes-validations": quantity_rules("cpu", MIN_CPU, MAX_CPU)},
    )
    memory: str = Field(
        max_length=32,
        pattern=QUANTITY_PATTERN,
        description="Memory per SimJob as a Kubernetes quantity (e.g. 4Gi), from 1Mi to "
        "64Ti; the pod's request and limit.",
        json_schema_extra={
            "x-kubernetes-validations": quantity_rules("memory", MIN_MEMORY, MAX_MEMORY)
        },
    )
    gpu: int = Field(
        default=0, ge=0, le=MAX_GPU, description="GPUs per SimJob (nvidia.com/gpu), 0 to 64."
    )
    max_runtime_seconds: int = Field(
        gt=0,
        le=MAX_RUNTIME_SECONDS_CEILING,
        description="Longest wall time a SimJob of this tier may run; "
        "SimJobs may ask for less, never more.",
    )
    max_concurrent_per_owner: int = Field(
        default=1,
        ge=1,
        le=100000,
        description="How many SimJobs of one owner may run at once in this tier; "
        "the rest wait in phase Queued (reason WaitingForSlot).",
    )
    max_pending_seconds: int | None = Field(
        default=None,
        gt=0,
        le=MAX_RUNTIME_SECONDS_CEILING,
        description="How long an admitted SimJob may wait on its backend without starting "
        "(unschedulable, image missing, Slurm pending) before it fails with reason "
        "Unschedulable; unset: 600 s. This wait never counts against maxRuntimeSeconds.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=MAX_TTL_SECONDS,
        description="Delete finished SimJobs of this tier after this many seconds (at most "
        "365 days); unset keeps them.",
    )
    priority_class_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="PriorityClass given to the pods of this tier.",
    )
    slurm: SlurmTierSpec | None = Field(
        default=None, description="Slurm options used when a SimJob runs on Slurm."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Node labels the pods of this tier must match (a node pool, e.g. "
        "simjob.io/pool: gpu); copied into each SimJob's grant at admission.",
        json_schema_extra={
            "x-kubernetes-map-type": "atomic",
            "additionalProperties": {"type": "string", "description": "A node label value."},
        },
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=32,
        description="Taints the pods of this tier tolerate (so they may land on a "
        "tainted pool); copied into each SimJob's grant at admission.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    workspace: TierWorkspace | None = Field(
        default=None,
        description="Default workspace of this tier's SimJobs on Kubernetes (a claim in "
        "each SimJob's namespace); a SimJob's spec.workspace.claimName wins.",
    )
    progress_interval_seconds: int = Field(
        default=10,
        ge=1,
        le=3600,
        description="Progress is read and written at most this often per SimJob (and only "
        "when it changed).",
    )
    output_retention_seconds: int | None = Field(
        default=None,
        ge=0,
        le=10 * 365 * 24 * 3600,
        description="Remove a run's outputs (its workspace sub-directory or Slurm run "
        "directory) this long after it ended; unset keeps them. Independent of "
        "ttlSecondsAfterFinished (how long the SimJob object stays).",
    )


class SimTierStatus(ApiModel):
    """Observed state of a SimTier (reserved; the operator may fill it)."""

    observed_generation: int | None = Field(
        default=None, description="The generation last seen by the operator."
    )


class SimTier(ApiModel):
    """A resource tier (cluster-scoped) that SimJobs name in spec.tier."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.metadata.name.size() <= {SIMTIER_NAME_MAX_LENGTH}",
                    f"metadata.name must be at most {SIMTIER_NAME_MAX_LENGTH} characters "
                    "(it is used as the label value simjob.io/tier)",
                ),
            ],
        },
    )

    spec: SimTierSpec = Field(description="What the tier grants.")
    status: SimTierStatus | None = Field(default=None, description="Observed state.")
