"""Builders of SimJob/SimTier API bodies for the pure unit tests (no cluster)."""

from __future__ import annotations

from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason


def simjob_body(
    name: str = "sim",
    *,
    namespace: str = "lab",
    uid: str | None = None,
    created: str = "2025-01-01T12:00:00Z",
    status: dict[str, Any] | None = None,
    deleting: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    spec.setdefault("tier", "small")
    spec.setdefault("image", "busybox:1.36")
    spec.setdefault("command", ["sleep", "1"])
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or f"uid-{namespace}-{name}",
        "generation": 1,
        "resourceVersion": "100",
        "creationTimestamp": created,
    }
    if deleting:
        metadata["deletionTimestamp"] = "2025-01-01T13:00:00Z"
    body: dict[str, Any] = {
        "apiVersion": c.API_VERSION,
        "kind": c.SIMJOB_KIND,
        "metadata": metadata,
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


def admitted_status(phase: str = "Running") -> dict[str, Any]:
    return {
        "phase": phase,
        "conditions": [{"type": c.COND_ADMITTED, "status": "True", "reason": Reason.ADMITTED}],
    }


def tier_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"cpu": "2", "memory": "4Gi", "maxRuntimeSeconds": 600}
    spec.update(overrides)
    return spec
