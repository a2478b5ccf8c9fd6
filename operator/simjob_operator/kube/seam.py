"""The Kubernetes API as the operator uses it: one protocol, its errors.

``KubeApi`` lists every call the operator makes (SimJobs, SimTiers, Jobs, pods,
SlurmClusters, Secrets, SimUsages, Events), in plain dicts. ``kube.client.Kube`` implements it
over the synchronous ``kubernetes`` client in threads; ``tests/support/fake_kube``
in memory. The errors say what a caller can do about a failure, decided once here
(as crate-operator's ``call_kubeapi`` does) instead of at every call site:

* ``Conflict``: a write with a resourceVersion precondition lost a race: re-read;
* ``AlreadyExists``: a create found an object of that name: adopt or wait;
* ``Gone``: a write found no object: it was deleted meanwhile;
* ``Refused``: the API server will refuse this request however often it is sent
  (400, 403, 422, ...): a permanent error with the server's message;
* ``Unavailable``: the API server did not answer, or answered 429/5xx: retry later.

A 404 on a read is not an error: reads return None.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

Body = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class SecretData:
    """A Secret's data (decoded) and labels, as ``KubeApi.get_secret`` reads them."""

    data: dict[str, bytes]
    labels: dict[str, str]


class KubeError(Exception):
    """Base of the seam's errors; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Conflict(KubeError):
    """A write lost a race (409): re-read and recompute."""


class AlreadyExists(KubeError):
    """A create found an object of that name (409 AlreadyExists)."""


class Gone(KubeError):
    """A write found no object to write to (404): it was deleted meanwhile."""


class Refused(KubeError):
    """The API server refuses the request for good (400, 403, 422, ...)."""


class Unavailable(KubeError):
    """The API server did not answer or asked to come back later (429, 5xx)."""

    retry_after: float | None = None  # seconds, from a 429's Retry-After


class KubeApi(Protocol):
    """Every API call the operator makes; each one is a coroutine."""

    namespaces: tuple[str, ...]  # the namespaces served (empty: all)

    # SimJobs
    async def get_simjob(self, namespace: str, name: str) -> Body | None: ...
    async def list_simjobs(self) -> list[Body]: ...
    async def patch_simjob_status(
        self, namespace: str, name: str, status: Body, *, resource_version: str
    ) -> Body: ...
    async def delete_simjob(self, namespace: str, name: str, *, uid: str) -> None: ...
    async def cancel_simjob(
        self, namespace: str, name: str, *, uid: str, replaced_by: str | None = None
    ) -> None: ...

    # SimTiers
    async def get_simtier(self, name: str) -> Body | None: ...

    # Jobs and pods
    async def get_job(self, namespace: str, name: str) -> Body | None: ...
    async def create_job(self, namespace: str, body: Body) -> Body: ...
    async def delete_job(self, namespace: str, name: str, *, uid: str | None = None) -> bool: ...
    async def list_pods(self, namespace: str, label_selector: str) -> list[Body]: ...
    async def delete_pods(self, namespace: str, label_selector: str) -> None: ...
    async def read_pod_log(
        self, namespace: str, name: str, *, container: str, tail_lines: int, limit_bytes: int
    ) -> str | None: ...

    # SlurmClusters and Secrets
    async def get_slurmcluster(self, name: str) -> Body | None: ...
    async def list_slurmclusters(self) -> list[Body]: ...
    async def patch_slurmcluster_status(self, name: str, status: Body) -> Body | None: ...
    async def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None: ...
    async def get_configmap_data(self, namespace: str, name: str) -> dict[str, bytes] | None: ...
    async def get_secret(self, namespace: str, name: str) -> SecretData | None: ...

    # SimUsages (the usage ledger; kube.usage)
    async def get_simusage(self, namespace: str, name: str) -> Body | None: ...
    async def create_simusage(self, namespace: str, body: Body) -> Body: ...
    async def patch_simusage_status(
        self, namespace: str, name: str, status: Body, *, resource_version: str
    ) -> Body: ...

    # Events
    async def post_event(
        self, regarding: Body, *, type_: str, reason: str, message: str, action: str
    ) -> None: ...

    # Namespaces
    async def get_namespace_uid(self, name: str) -> str | None: ...
