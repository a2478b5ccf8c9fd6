"""The SimUsage calls of ``kube.client.Kube`` (the usage ledger), as a mixin.

GET, CREATE and a status PATCH with a resourceVersion precondition (a fold that lost
a race fails with ``kube.seam.Conflict``; the caller re-reads and folds again). Kept
apart so ``kube.client`` stays small; the protocol that uses them is
``controller.accounting``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from simjob_operator.api import names as c
from simjob_operator.kube.seam import Body


class _Calls(Protocol):
    custom: Any

    async def call(
        self, what: str, func: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any: ...

    async def get_or_none(
        self, what: str, func: Callable[..., Any], /, *args: Any
    ) -> Body | None: ...


class UsageCalls:
    """``get_simusage``, ``create_simusage``, ``patch_simusage_status``."""

    async def get_simusage(self: _Calls, namespace: str, name: str) -> Body | None:
        return await self.get_or_none(
            f"GET SimUsage {namespace}/{name}",
            self.custom.get_namespaced_custom_object,
            c.GROUP,
            c.VERSION,
            namespace,
            c.SIMUSAGE_PLURAL,
            name,
        )

    async def create_simusage(self: _Calls, namespace: str, body: Body) -> Body:
        """Create an (empty) ledger; ``AlreadyExists`` when another pass made it first."""
        result: Body = await self.call(
            f"CREATE SimUsage {namespace}/{body['metadata']['name']}",
            self.custom.create_namespaced_custom_object,
            c.GROUP,
            c.VERSION,
            namespace,
            c.SIMUSAGE_PLURAL,
            body,
            field_manager=c.FIELD_MANAGER,
        )
        return result

    async def patch_simusage_status(
        self: _Calls, namespace: str, name: str, status: Body, *, resource_version: str
    ) -> Body:
        """JSON merge patch of status, refused (``Conflict``) if the ledger changed."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        result: Body = await self.call(
            f"PATCH SimUsage {namespace}/{name} status",
            self.custom.patch_namespaced_custom_object_status,
            c.GROUP,
            c.VERSION,
            namespace,
            c.SIMUSAGE_PLURAL,
            name,
            body,
            field_manager=c.FIELD_MANAGER,
        )
        return result
