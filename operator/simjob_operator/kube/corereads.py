"""The named core/v1 reads of ``kube.client.Kube`` (Secrets, ConfigMaps, Namespaces), as a
mixin.

Each reads one object by name (RBAC ``get``; never ``list`` or ``watch``) through
``Kube._core`` (the rate limit, ``kube.rest.core_request`` and ``kube.translate``'s
errors) and answers None when it is absent. Kept apart so ``kube.client`` stays small;
``kube.usage`` is the other mixin. Used by the Slurm backend: credentials, run-directory
inputs, and the cluster's identity (kube-system's uid) in job comments.
"""

from __future__ import annotations

import base64
import binascii
from typing import Protocol
from urllib.parse import quote

from simjob_operator.kube.seam import Body, Gone, SecretData


class _Core(Protocol):
    async def _core(
        self, what: str, method: str, path: str, query: list[tuple[str, str]]
    ) -> Body: ...

    async def get_secret(self, namespace: str, name: str) -> SecretData | None: ...


class CoreReads:
    """``get_secret``, ``get_secret_data``, ``get_configmap_data``, ``get_namespace_uid``."""

    async def get_secret_data(self: _Core, namespace: str, name: str) -> dict[str, bytes] | None:
        secret = await self.get_secret(namespace, name)  # the data alone
        return None if secret is None else secret.data

    async def get_secret(self: _Core, namespace: str, name: str) -> SecretData | None:
        """A Secret's data (decoded) and labels; None when there is no such Secret. Only
        the named Secret is read (RBAC ``get``; never ``list`` or ``watch``)."""
        path = f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}"
        try:
            secret = await self._core(f"GET Secret {namespace}/{name}", "GET", path, [])
        except Gone:
            return None
        decoded: dict[str, bytes] = {}
        for key, value in (secret.get("data") or {}).items():
            try:
                decoded[key] = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                continue  # the API server only stores valid base64; be defensive
        labels = (secret.get("metadata") or {}).get("labels") or {}
        return SecretData(decoded, {str(k): str(v) for k, v in labels.items()})

    async def get_configmap_data(self: _Core, namespace: str, name: str) -> dict[str, bytes] | None:
        """A ConfigMap's ``data`` (UTF-8) and ``binaryData`` as bytes; None when there is
        no such ConfigMap. Only the named one is read (RBAC ``get``; Slurm inputs)."""
        path = f"/api/v1/namespaces/{quote(namespace)}/configmaps/{quote(name)}"
        try:
            body = await self._core(f"GET ConfigMap {namespace}/{name}", "GET", path, [])
        except Gone:
            return None
        found = {key: str(value).encode() for key, value in (body.get("data") or {}).items()}
        for key, value in (body.get("binaryData") or {}).items():
            found[key] = base64.b64decode(str(value))
        return found

    async def get_namespace_uid(self: _Core, name: str) -> str | None:
        """The uid of namespace ``name`` (kube-system's names the cluster); None if absent."""
        path = f"/api/v1/namespaces/{quote(name)}"
        try:
            body = await self._core(f"GET Namespace {name}", "GET", path, [])
        except Gone:
            return None
        return str((body.get("metadata") or {}).get("uid") or "") or None
