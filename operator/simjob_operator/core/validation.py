"""Resolve a SimJob against its SimTier: what it gets, or why it cannot run.

The CRD schema (see ``models``) rejects what it can see in one object; this
module checks what needs the tier or the operator's capabilities. ``resolve``
is pure and returns either an ``Effective`` (resources, runtime and slot limits
in force) or a ``phases.Rejection`` with one of the reasons

* ``InvalidSpec``: the spec does not parse, a reserved podMetadata key, or the
  kubernetes backend without an image;
* ``BackendUnavailable``: ``backend: slurm`` in an operator without the Slurm backend
  (``runtime`` registers it; the Slurm semantic errors come from ``backends.slurm_backend``);
* ``UnknownTier``: no such SimTier (or an unusable one);
* ``RuntimeAboveTierLimit``: ``spec.maxRuntimeSeconds`` above the tier's.

Checks run in that order, so a SimJob with several problems reports the first.
"""

from __future__ import annotations

import dataclasses

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import Grant, SimJobSpec
from simjob_operator.api.simtier import SimTierSpec
from simjob_operator.core.phases import Rejection
from simjob_operator.core.quantities import QuantityError, cpu_cores


@dataclasses.dataclass(frozen=True)
class Effective:
    """What a valid SimJob gets from its tier: the ``Grant`` admission records, and
    the slot limit admission decides with."""

    tier: str
    owner: str
    backend: str
    grant: Grant
    max_concurrent_per_owner: int


def grant_of(spec: SimJobSpec, tier: SimTierSpec) -> Grant:
    """What ``tier`` grants ``spec``: copied at admission, never re-read. Pure."""
    return Grant(
        cpu=tier.cpu,
        memory=tier.memory,
        gpu=tier.gpu,
        max_runtime_seconds=spec.max_runtime_seconds or tier.max_runtime_seconds,
        priority_class_name=tier.priority_class_name,
        max_pending_seconds=tier.max_pending_seconds or c.DEFAULT_MAX_PENDING_SECONDS,
        ttl_seconds_after_finished=tier.ttl_seconds_after_finished,
        slurm=tier.slurm.model_copy(deep=True) if tier.slurm is not None else None,
        node_selector=dict(tier.node_selector),
        workspace_claim=tier.workspace.claim_name if tier.workspace is not None else None,
        progress_interval_seconds=tier.progress_interval_seconds,
        output_retention_seconds=tier.output_retention_seconds,
        tolerations=[toleration.model_copy() for toleration in tier.tolerations],
    )


def _reserved_keys(spec: SimJobSpec) -> list[str]:
    if spec.pod_metadata is None:
        return []
    keys = [*spec.pod_metadata.labels, *spec.pod_metadata.annotations]
    return sorted(k for k in keys if k.startswith(c.RESERVED_PREFIX))


def resolve(
    spec: SimJobSpec | None,
    *,
    namespace: str,
    tier_name: str | None,
    tier: SimTierSpec | None,
    spec_error: str | None = None,
    tier_error: str | None = None,
    slurm_available: bool = False,
) -> Effective | Rejection:
    """Pure: the effective settings of a SimJob, or the reason it cannot run."""
    if spec is None:
        return Rejection(Reason.INVALID_SPEC, f"invalid spec: {spec_error or 'unparseable'}")
    reserved = _reserved_keys(spec)
    if reserved:
        return Rejection(
            Reason.INVALID_SPEC,
            f"spec.podMetadata uses keys reserved for the operator: {', '.join(reserved)}",
        )
    if spec.backend == c.BACKEND_SLURM and not slurm_available:
        return Rejection(
            Reason.BACKEND_UNAVAILABLE,
            "backend slurm is not available in this operator yet; use backend kubernetes",
        )
    if spec.backend == c.BACKEND_KUBERNETES and not spec.image:
        return Rejection(Reason.INVALID_SPEC, "spec.image is required for backend kubernetes")
    if tier is None:
        name = tier_name or spec.tier
        if tier_error:
            return Rejection(Reason.UNKNOWN_TIER, f"SimTier {name!r} is not usable: {tier_error}")
        return Rejection(Reason.UNKNOWN_TIER, f"SimTier {name!r} does not exist")
    if spec.max_runtime_seconds is not None and spec.max_runtime_seconds > tier.max_runtime_seconds:
        return Rejection(
            Reason.RUNTIME_ABOVE_TIER,
            f"spec.maxRuntimeSeconds {spec.max_runtime_seconds} exceeds the maximum of "
            f"SimTier {spec.tier!r} ({tier.max_runtime_seconds})",
        )
    try:
        cores = cpu_cores(tier.cpu)
    except QuantityError as exc:  # the CRD pattern should have caught it
        return Rejection(Reason.UNKNOWN_TIER, f"SimTier {spec.tier!r} is not usable: {exc}")
    del cores  # a tier whose cpu is no number is unusable (checked above)
    return Effective(
        tier=spec.tier,
        owner=spec.owner or namespace,
        backend=spec.backend,
        grant=grant_of(spec, tier),
        max_concurrent_per_owner=tier.max_concurrent_per_owner,
    )
