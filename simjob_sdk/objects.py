"""What the SDK hands back: a SimJob with its metadata, parsed once.

``SimJobObject`` pairs the operator's own pydantic models (``SimJobSpec`` and
``SimJobStatus`` from ``simjob_operator.api.simjob``, reused, never copied) with the
metadata a client needs (name, namespace, uid, resourceVersion, creationTimestamp,
labels) and keeps the raw object for fields newer than the installed models
(``status.progress``, ``status.workspace``: read from the raw status until the models
carry them). ``WatchEvent`` is one watch notification; ``Outputs`` what ``outputs()``
finds. Built by ``simjob_sdk.client``, ``simjob_sdk.watching`` and ``simjob_sdk.aio``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from simjob_operator.api.simjob import SimJobSpec, SimJobStatus

TERMINAL_PHASES = frozenset({"Succeeded", "Failed", "Cancelled", "TimedOut"})


@dataclasses.dataclass(frozen=True)
class Progress:
    """``status.progress``: how far a running simulation says it is."""

    percent: float | None
    message: str | None

    @classmethod
    def from_raw(cls, raw: Any) -> Progress | None:
        if not isinstance(raw, dict):
            return None
        percent = raw.get("percent")
        message = raw.get("message")
        return cls(
            percent=float(percent) if isinstance(percent, int | float) else None,
            message=str(message) if message is not None else None,
        )


@dataclasses.dataclass(frozen=True)
class SimJobObject:
    """One SimJob as the API server returned it."""

    name: str
    namespace: str
    uid: str
    resource_version: str
    creation_timestamp: str
    labels: dict[str, str]
    spec: SimJobSpec
    status: SimJobStatus
    raw: dict[str, Any] = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> SimJobObject:
        meta = raw.get("metadata") or {}
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            uid=str(meta.get("uid", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            creation_timestamp=str(meta.get("creationTimestamp", "")),
            labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
            spec=SimJobSpec.model_validate(raw.get("spec") or {}),
            status=SimJobStatus.model_validate(raw.get("status") or {}),
            raw=raw,
        )

    @property
    def phase(self) -> str | None:
        return self.status.phase

    @property
    def finished(self) -> bool:
        return self.status.phase in TERMINAL_PHASES

    @property
    def succeeded(self) -> bool:
        return self.status.phase == "Succeeded"

    @property
    def owner(self) -> str:
        """The slot identity: spec.owner, else the namespace (as the operator decides)."""
        return self.spec.owner or self.namespace

    @property
    def raw_status(self) -> dict[str, Any]:
        status = self.raw.get("status")
        return status if isinstance(status, dict) else {}

    @property
    def progress(self) -> Progress | None:
        """``status.progress`` ({percent, message}) when the simulation reports one."""
        return Progress.from_raw(self.raw_status.get("progress"))

    @property
    def workspace(self) -> str | None:
        """``status.workspace`` as one string: ``pvc://<claimName>/<path>`` (Kubernetes) or
        ``<cluster>:<directory>`` (Slurm); None until the operator writes it."""
        found = self.raw_status.get("workspace")
        if not isinstance(found, dict) or not found:
            return None if found is None else str(found)
        if found.get("claimName"):
            return f"pvc://{found['claimName']}/{str(found.get('path') or '').lstrip('/')}"
        if found.get("directory"):
            return f"{found.get('cluster') or ''}:{found['directory']}"
        return str(found.get("path") or found)

    @property
    def workspace_directory(self) -> str | None:
        """Slurm: ``status.workspace.directory``, the run directory the operator chose."""
        found = self.raw_status.get("workspace")
        directory = found.get("directory") if isinstance(found, dict) else None
        return str(directory) if directory else None

    def state(self) -> tuple[Any, ...]:
        """What ``wait``'s ``on_change`` reports a change of."""
        progress = self.progress
        return (
            self.status.phase,
            self.status.queue_position,
            self.status.reason,
            self.status.message,
            progress.percent if progress else None,
            progress.message if progress else None,
            self.status.exit_code,
        )


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """One watch notification: ``type`` is ADDED, MODIFIED or DELETED."""

    type: str
    object: SimJobObject


@dataclasses.dataclass(frozen=True)
class OutputFile:
    path: str
    kind: str
    size: int


@dataclasses.dataclass(frozen=True)
class Outputs:
    """Where a SimJob's outputs are: ``location`` (a Kubernetes workspace, or the Slurm run
    directory) and, for Slurm, the files found there."""

    backend: str
    location: str | None
    files: tuple[OutputFile, ...] = ()
