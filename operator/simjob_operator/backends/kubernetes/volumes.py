"""The data of a run on Kubernetes: its inputs and its workspace, as pod volumes. Pure.

Inputs (``spec.inputs``) become one read-only projected volume at ``api.data.INPUT_DIR``
(ConfigMaps and Secrets of the SimJob's namespace, whole or by key); the workspace
(``spec.workspace``, else the grant's claim) is a PersistentVolumeClaim mounted
read-write at ``api.data.WORKSPACE_DIR`` with a sub-path unique to the run
(``<namespace>/<name>-<uid>`` unless the SimJob names one). The pod gets ``fsGroup``
so that its non-root user may write there, and ``$SIMJOB_INPUT_DIR`` /
``$SIMJOB_OUTPUT_DIR`` point at both. Used by ``backends.kubernetes.manifests``; the
same ``workspace_of`` tells status where the outputs are.
"""

from __future__ import annotations

from typing import Any

from simjob_operator.api.data import INPUT_DIR, WORKSPACE_DIR, ObjectInput, WorkspaceStatus
from simjob_operator.api.simjob import Grant, SimJobSpec

INPUTS_VOLUME = "simjob-inputs"
WORKSPACE_VOLUME = "simjob-workspace"


def default_sub_path(namespace: str, name: str, uid: str) -> str:
    return f"{namespace}/{name}-{uid}"


def workspace_of(
    spec: SimJobSpec, grant: Grant, *, namespace: str, name: str, uid: str
) -> WorkspaceStatus | None:
    """Where this run's outputs go on Kubernetes, or None without a claim."""
    chosen = spec.workspace
    claim = (chosen.claim_name if chosen is not None else None) or grant.workspace_claim
    if claim is None:
        return None
    sub_path = (chosen.sub_path if chosen is not None else None) or default_sub_path(
        namespace, name, uid
    )
    return WorkspaceStatus(claim_name=claim, path=sub_path)


def _source(kind: str, source: ObjectInput) -> dict[str, Any]:
    projected: dict[str, Any] = {"name": source.name}
    if source.items:
        projected["items"] = [
            {"key": item.key, "path": item.path or item.key} for item in source.items
        ]
    return {kind: projected}


def data_volumes(
    spec: SimJobSpec, grant: Grant, *, namespace: str, name: str, uid: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, str]]]:
    """(pod volumes, container volumeMounts, container env) for the run's data."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    env: list[dict[str, str]] = []
    if spec.inputs:
        sources: list[dict[str, Any]] = []
        for item in spec.inputs:
            if item.config_map is not None:
                sources.append(_source("configMap", item.config_map))
            elif item.secret is not None:
                sources.append(_source("secret", item.secret))
        volumes.append(
            {"name": INPUTS_VOLUME, "projected": {"sources": sources, "defaultMode": 0o444}}
        )
        mounts.append({"name": INPUTS_VOLUME, "mountPath": INPUT_DIR, "readOnly": True})
        env.append({"name": "SIMJOB_INPUT_DIR", "value": INPUT_DIR})
    workspace = workspace_of(spec, grant, namespace=namespace, name=name, uid=uid)
    if workspace is not None and workspace.claim_name is not None:
        volumes.append(
            {"name": WORKSPACE_VOLUME, "persistentVolumeClaim": {"claimName": workspace.claim_name}}
        )
        mounts.append(
            {"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_DIR, "subPath": workspace.path}
        )
        env.append({"name": "SIMJOB_OUTPUT_DIR", "value": WORKSPACE_DIR})
    return volumes, mounts, env
