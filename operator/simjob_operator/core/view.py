"""A SimJob as the operator sees it: identity, parsed spec, parsed status.

``SimJobRecord.from_body`` turns a raw API object (a dict from the API server or
a kopf body) into typed fields once, so that ``admission``, ``validation`` and
``reconciling`` never dig through nested dicts. A spec that does not parse
(an old object, or a CRD installed without its schema) is kept with its error so
that the SimJob can be failed with reason InvalidSpec instead of crashing the
operator.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import pydantic

from simjob_operator.api import names as c
from simjob_operator.api.simjob import SimJobSpec, SimJobStatus
from simjob_operator.api.simtier import SimTierSpec
from simjob_operator.core.phases import Phase

Key = tuple[str, str]  # (namespace, name): how queues and caches name a SimJob


def plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A deep, plain-dict copy of a body (kopf bodies are live views)."""
    return {key: copy.deepcopy(value) for key, value in body.items()}


def _summary(error: pydantic.ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(x) for x in item["loc"]) or "spec"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


@dataclasses.dataclass(frozen=True)
class SimJobRecord:
    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    creation_timestamp: str
    deletion_timestamp: str | None
    spec: SimJobSpec | None
    spec_error: str | None
    status: SimJobStatus
    body: dict[str, Any] = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SimJobRecord:
        """From a body someone else may still change (a kopf body): parsed from a copy."""
        return cls.from_plain(plain(body))

    @classmethod
    def from_plain(cls, raw: dict[str, Any]) -> SimJobRecord:
        """From a plain dict handed over by its only holder (a fresh API response,
        e.g. each item of a LIST): kept as it is, without the cost of a deep copy."""
        meta = raw.get("metadata") or {}
        spec: SimJobSpec | None = None
        spec_error: str | None = None
        try:
            spec = SimJobSpec.model_validate(raw.get("spec") or {})
        except pydantic.ValidationError as exc:
            spec_error = _summary(exc)
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 0),
            resource_version=str(meta.get("resourceVersion", "")),
            creation_timestamp=str(meta.get("creationTimestamp", "")),
            deletion_timestamp=meta.get("deletionTimestamp"),
            spec=spec,
            spec_error=spec_error,
            status=SimJobStatus.model_validate(raw.get("status") or {}),
            body=raw,
        )

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def tier_name(self) -> str | None:
        if self.spec is not None:
            return self.spec.tier
        tier = (self.body.get("spec") or {}).get("tier")
        return tier if isinstance(tier, str) else None

    @property
    def owner(self) -> str:
        """Slot and accounting identity: spec.owner, defaulting to the namespace."""
        if self.spec is not None and self.spec.owner:
            return self.spec.owner
        return self.namespace

    @property
    def cancel(self) -> bool:
        return bool(self.spec.cancel) if self.spec is not None else False

    @property
    def replaced_by(self) -> str | None:
        """The newer run of its runKey that cancelled it (``ANNOTATION_REPLACED_BY``)."""
        annotations = (self.body.get("metadata") or {}).get("annotations") or {}
        found = annotations.get(c.ANNOTATION_REPLACED_BY)
        return str(found) if found and self.cancel else None

    @property
    def phase(self) -> Phase | None:
        return Phase(self.status.phase) if self.status.phase else None

    @property
    def deleting(self) -> bool:
        return self.deletion_timestamp is not None

    @property
    def finalizers(self) -> tuple[str, ...]:
        meta = self.body.get("metadata") or {}
        return tuple(str(name) for name in meta.get("finalizers") or ())

    @property
    def admitted(self) -> bool:
        """Holds (or held, if terminal) a slot: condition Admitted=True."""
        conditions = self.status.conditions
        return any(cond.type == c.COND_ADMITTED and cond.status == "True" for cond in conditions)

    def with_status(self, status: SimJobStatus) -> SimJobRecord:
        return dataclasses.replace(self, status=status)


def parse_tier(body: Mapping[str, Any] | None) -> tuple[SimTierSpec | None, str | None]:
    """A SimTier's spec, or (None, why) when it is missing or malformed."""
    if body is None:
        return None, None
    try:
        return SimTierSpec.model_validate(body.get("spec") or {}), None
    except pydantic.ValidationError as exc:
        return None, _summary(exc)
