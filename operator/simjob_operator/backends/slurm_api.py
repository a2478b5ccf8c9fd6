"""The Kubernetes API calls of the Slurm backend: SlurmClusters and Secrets.

``SlurmApi`` wraps the operator's ``kube.Kube`` client (same ApiClient, same
thread-per-call rule): GET and LIST of SlurmClusters, a merge patch of a
SlurmCluster's status (the ``Reachable`` condition), and a GET of one named Secret —
the operator needs ``get`` on the Secrets that SlurmClusters and SimJobs name, never
``list`` or ``watch``. The Secret GET goes through the ApiClient directly (like
``kube``'s pod calls) so the CoreV1Api module is never imported. Used by
``slurm_sites`` and ``slurm_polling``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any
from urllib.parse import quote

from kubernetes.client.exceptions import ApiException

from .. import constants as c
from ..kube import REQUEST_TIMEOUT, Kube

Body = dict[str, Any]


class SlurmApi:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def get_cluster(self, name: str) -> Body | None:
        return await self.kube.get_or_none(
            self.kube.custom.get_cluster_custom_object,
            c.GROUP,
            c.VERSION,
            c.SLURMCLUSTER_PLURAL,
            name,
        )

    async def list_clusters(self) -> list[Body]:
        result: Body = await self.kube.call(
            self.kube.custom.list_cluster_custom_object,
            c.GROUP,
            c.VERSION,
            c.SLURMCLUSTER_PLURAL,
        )
        items: list[Body] = result.get("items") or []
        return items

    async def patch_cluster_status(self, name: str, status: Body) -> Body | None:
        """Merge-patch a SlurmCluster's status; None when the SlurmCluster is gone."""
        try:
            result: Body = await self.kube.call(
                self.kube.custom.patch_cluster_custom_object_status,
                c.GROUP,
                c.VERSION,
                c.SLURMCLUSTER_PLURAL,
                name,
                {"status": status},
                field_manager=c.FIELD_MANAGER,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def _get_secret_sync(self, namespace: str, name: str) -> Body | None:
        api = self.kube.api_client
        request = api.param_serialize(
            method="GET",
            resource_path=f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}",
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = api.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
        data = response.read()  # type: ignore[no-untyped-call]
        if response.status == 404:
            return None
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        result: Body = json.loads(data)
        return result

    async def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A Secret's data, decoded; None when there is no such Secret."""
        secret = await asyncio.to_thread(self._get_secret_sync, namespace, name)
        if secret is None:
            return None
        decoded: dict[str, bytes] = {}
        for key, value in (secret.get("data") or {}).items():
            try:
                decoded[key] = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                continue  # the API server only stores valid base64; be defensive
        return decoded
