"""The SimUsage API: the usage ledger, one object per owner x tier x day (``su``).

A SimUsage lives in the namespace of the SimJobs it counts. Its spec names what it
counts (owner, tier, period: a UTC day); its status holds the sums over the finished
SimJobs of that owner, tier and day: how many, how many per outcome (phase), and the
wall, CPU, GPU and memory seconds as exact decimal strings (``"12.345"``, at most
three decimals: each SimJob's usage is rounded to the millisecond before it is added,
so the sum does not depend on the order of additions). ``pending`` lists the SimJobs
folded in whose own marker (``status.accountedIn``) is not written yet: the
exactly-once protocol of ``core.ledger`` and ``controller.accounting``; it is bounded
by the SimJobs in flight, never by the day's count. Written only by the operator;
gateways read it (docs/accounting.md). ``crd_generation`` makes its CRD.
"""

from __future__ import annotations

from pydantic import Field, JsonValue

from simjob_operator.api.base import DNS_SUBDOMAIN_PATTERN, ApiModel, cel

# At most this many SimJobs folded in but not yet marked (see core.ledger): far above
# the operator's concurrency (16 reconcile workers + deletions in progress); bounds the
# object (~120 bytes an entry: under 64 KiB with everything else).
MAX_PENDING = 512
DECIMAL_PATTERN = r"^[0-9]{1,18}(\.[0-9]{1,3})?$"
PERIOD_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
OUTCOMES = ("Succeeded", "Failed", "Cancelled", "TimedOut")


def _immutable(field: str) -> dict[str, JsonValue]:
    return {"x-kubernetes-validations": [cel("self == oldSelf", f"{field} is immutable")]}


class SimUsageSpec(ApiModel):
    """What this ledger counts: one owner's SimJobs of one tier that finished on one day."""

    owner: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description="The SimJobs' effective owner (spec.owner, else the namespace).",
        json_schema_extra=_immutable("owner"),
    )
    tier: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="The SimTier the SimJobs named (spec.tier).",
        json_schema_extra=_immutable("tier"),
    )
    period: str = Field(
        pattern=PERIOD_PATTERN,
        max_length=10,
        description="The UTC day (YYYY-MM-DD) the SimJobs finished on (status.completionTime).",
        json_schema_extra=_immutable("period"),
    )


class PendingFold(ApiModel):
    """A SimJob already added to the totals whose own marker is not written yet."""

    uid: str = Field(min_length=1, max_length=64, description="The SimJob's uid.")
    name: str = Field(min_length=1, max_length=253, description="The SimJob's name.")


class SimUsageStatus(ApiModel):
    """The sums over the SimJobs folded in so far. Written only by the operator."""

    sim_jobs: int = Field(default=0, ge=0, description="SimJobs counted.")
    outcomes: dict[str, int] = Field(
        default_factory=dict,
        description="SimJobs counted per final phase: Succeeded, Failed, Cancelled, TimedOut.",
        json_schema_extra={
            "maxProperties": 8,
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
    )
    wall_seconds: str = Field(
        default="0",
        pattern=DECIMAL_PATTERN,
        max_length=22,
        description="Wall seconds from start to end, summed (decimal).",
    )
    cpu_seconds: str = Field(
        default="0",
        pattern=DECIMAL_PATTERN,
        max_length=22,
        description="CPU-seconds (wall x CPUs), summed (decimal).",
    )
    gpu_seconds: str = Field(
        default="0",
        pattern=DECIMAL_PATTERN,
        max_length=22,
        description="GPU-seconds (wall x GPUs), summed (decimal).",
    )
    memory_gib_seconds: str = Field(
        default="0",
        alias="memoryGiBSeconds",
        pattern=DECIMAL_PATTERN,
        max_length=22,
        description="Memory GiB-seconds (wall x granted GiB), summed (decimal).",
    )
    pending: list[PendingFold] = Field(
        default_factory=list,
        max_length=MAX_PENDING,
        description="SimJobs counted here whose status.accountedIn is not written yet "
        "(the exactly-once protocol; emptied as their markers are written).",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    update_time: str | None = Field(default=None, description="When a SimJob was last added.")


class SimUsage(ApiModel):
    """The usage ledger of one owner, tier and day (namespaced, beside its SimJobs)."""

    spec: SimUsageSpec = Field(description="What is counted.")
    status: SimUsageStatus | None = Field(default=None, description="The sums.")
