"""The base of the SimJob API models: ``ApiModel``, the ``cel`` helper, patterns.

The pydantic models are the single source of truth of the API: ``api.simjob``
(SimJob, with ``api.pod``), ``api.simtier`` (SimTier) and ``api.slurmcluster``
(SlurmCluster) build on ``ApiModel`` (camelCase on the wire, snake_case in Python);
``api.crd_generation`` makes the CRDs from them. The bounds and character rules the
CRDs enforce (argv sizes, control characters, label syntax, annotation size) are
defined here once. Field descriptions become ``kubectl explain`` text;
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


def quantity_at_most(bound: str) -> str:
    """CEL: a quantity no larger than ``bound`` ("1e400" is a quantity too)."""
    return f"!isQuantity(self) || quantity(self).compareTo(quantity('{bound}')) <= 0"


def quantity_at_least_if_positive(bound: str) -> str:
    """CEL: zero is left to POSITIVE_QUANTITY_RULE; anything above it is >= ``bound``."""
    return (
        "!isQuantity(self) || !quantity(self).isGreaterThan(quantity('0')) "
        f"|| quantity(self).compareTo(quantity('{bound}')) >= 0"
    )


# A pattern the Kubernetes quantity parser still refuses (too many digits).
PARSEABLE_QUANTITY_RULE = "isQuantity(self)"

# --- strings that reach a process (argv, environment) or the kubelet ---------------
# Control characters (C0, DEL, C1) except tab and newline: multi-line ``sh -c``
# scripts are legitimate, NUL and the rest are not. A schema pattern, not CEL: a CEL
# regex over 4096 arguments of 128 KiB exceeds the API server's cost budget.
NO_CONTROL_EXCEPT_TAB_NEWLINE_PATTERN = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$"
# A real node refuses one argv or environment string over MAX_ARG_STRLEN = 131072
# bytes, its terminating NUL included. (Kubernetes counts characters; a non-ASCII
# argument of this many characters may still be too long for the kernel.)
MAX_ARG_LENGTH = 131071
MAX_ENV_VALUE_LENGTH = 32768
# command + args + env names and values together (characters): below the API server's
# 1.5 MiB object limit in etcd, and below a node's ARG_MAX of 2 MiB.
MAX_TOTAL_ARGV_ENV = 1024 * 1024
# CEL (single strings): no control character at all / no whitespace either.
NO_CONTROL_RULE = "!self.matches('[\\\\p{Cc}]')"
NO_SPACE_OR_CONTROL_RULE = "!self.matches('[\\\\s\\\\p{Z}\\\\p{Cc}]')"

# --- labels and annotations ------------------------------------------------------
LABEL_VALUE_MAX_LENGTH = 63
LABEL_VALUE_RE = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A qualified name: an optional DNS-subdomain prefix (at most 253 characters, checked
# separately) and "/", then a name of at most 63 characters.
QUALIFIED_NAME_RE = (
    "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
QUALIFIED_NAME_PREFIX_RE = "^[^/]{1,253}/"
# Kubernetes' limit on the annotations of one object (key and value bytes).
MAX_ANNOTATIONS_BYTES = 256 * 1024


def cel(
    rule: str,
    message: str,
    *,
    reason: str | None = None,
    message_expression: str | None = None,
) -> dict[str, JsonValue]:
    """One ``x-kubernetes-validations`` entry. ``message_expression`` (CEL, a string)
    names the offending value; the API server falls back to ``message`` when it fails."""
    entry: dict[str, JsonValue] = {"rule": rule, "message": message}
    if message_expression is not None:
        entry["messageExpression"] = message_expression
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
