"""The base of the SimJob API models: ``ApiModel``, the ``cel`` helper, patterns.

The pydantic models are the single source of truth of the API: ``api.simjob``
(SimJob), ``api.simtier`` (SimTier) and ``api.slurmcluster`` (SlurmCluster) build on
``ApiModel`` (camelCase on the wire, snake_case in Python); ``api.crd_generation``
makes the CRDs from them. Field descriptions become ``kubectl explain`` text;
``json_schema_extra`` carries the Kubernetes-only schema keys (CEL rules, list/map
types) that pydantic cannot express.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue
from pydantic.alias_generators import to_camel

# A non-negative Kubernetes resource quantity ("500m", "2", "4Gi", "1.5").
QUANTITY_PATTERN = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# RFC 1123 subdomain, the name of a cluster-scoped object such as a SimTier.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Slurm partition / QoS / account names are passed to sbatch: keep them plain.
SLURM_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# CEL (Kubernetes quantity library): a quantity above zero; malformed ones are left
# to the pattern's clearer message.
POSITIVE_QUANTITY_RULE = "!isQuantity(self) || quantity(self).isGreaterThan(quantity('0'))"


def cel(rule: str, message: str, *, reason: str | None = None) -> dict[str, JsonValue]:
    """One ``x-kubernetes-validations`` entry."""
    entry: dict[str, JsonValue] = {"rule": rule, "message": message}
    if reason is not None:
        entry["reason"] = reason
    return entry


class ApiModel(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown keys ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=False,
    )

    def to_api(self) -> dict[str, Any]:
        """The object as the API server stores it (camelCase, no nulls)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --------------------------------------------------------------------------- SimTier
