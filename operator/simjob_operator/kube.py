"""Typed, async access to the API server through the synchronous ``kubernetes`` client.

Every call runs in a thread (``asyncio.to_thread``) and speaks plain dicts: the
custom-objects API serves SimJobs, SimTiers, batch/v1 Jobs and events.k8s.io
Events (so no generated model classes are built); the two core/v1 pod calls
go through the ApiClient directly, so the huge CoreV1Api module is never
imported (the package is heavy: import only what is used). Errors
become ``Conflict`` (409 on a write with a resourceVersion precondition),
``AlreadyExists`` and ``None`` for 404; everything else propagates as the
client's ``ApiException``. Used by ``backends``, ``admitting``,
``reconciling`` and ``events``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kubernetes.client.api.custom_objects_api import CustomObjectsApi
from kubernetes.client.api_client import ApiClient
from kubernetes.client.configuration import Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config, kube_config
from kubernetes.config.config_exception import ConfigException

from . import constants as c

Body = dict[str, Any]
REQUEST_TIMEOUT = (5.0, 30.0)  # connect, read
POOL_SIZE = 64


class Conflict(Exception):
    """A write lost a race (409): re-read and recompute."""


class AlreadyExists(Exception):
    """A create found an object of that name (409 AlreadyExists)."""


class Gone(Exception):
    """A write found no object to write to (404): it was deleted meanwhile."""


def status_of(exc: BaseException) -> int | None:
    return exc.status if isinstance(exc, ApiException) else None


def load_configuration() -> Configuration:
    """In-cluster service account first, then $KUBECONFIG / ~/.kube/config (as kopf)."""
    configuration = Configuration()
    try:
        incluster_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except ConfigException:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    configuration.connection_pool_maxsize = POOL_SIZE
    return configuration


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Kube:
    """The API calls the operator makes; each one is a coroutine."""

    def __init__(self, api_client: ApiClient, namespaces: Sequence[str] = ()) -> None:
        self.api_client = api_client
        self.custom = CustomObjectsApi(api_client)
        self.instance = os.environ.get("POD_NAME") or socket.gethostname()
        # The namespaces served (empty: all); list_simjobs reads only these.
        self.namespaces = tuple(namespaces)

    @classmethod
    def connect(cls) -> Kube:
        """A client from the kubeconfig, serving $SIMJOB_WATCH_NAMESPACES (or all)."""
        watched = os.environ.get(c.ENV_WATCH_NAMESPACES, "")
        namespaces = [name.strip() for name in watched.split(",") if name.strip()]
        return cls(ApiClient(configuration=load_configuration()), namespaces)

    async def call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """One blocking client call in a worker thread, with the request timeout."""
        return await asyncio.to_thread(func, *args, _request_timeout=REQUEST_TIMEOUT, **kwargs)

    async def get_or_none(self, func: Callable[..., Any], /, *args: Any) -> Body | None:
        """A GET through ``call``; None for 404."""
        try:
            result: Body = await self.call(func, *args)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return result

    # ------------------------------------------------------------------ SimJobs

    async def get_simjob(self, namespace: str, name: str) -> Body | None:
        return await self.get_or_none(
            self.custom.get_namespaced_custom_object,
            c.GROUP,
            c.VERSION,
            namespace,
            c.SIMJOB_PLURAL,
            name,
        )

    async def list_simjobs(self) -> list[Body]:
        """Every SimJob served, read from the API server: one consistent LIST of the
        cluster, or one LIST per namespace in ``namespaces``."""
        if self.namespaces:
            results: list[Body] = [
                await self.call(
                    self.custom.list_namespaced_custom_object,
                    c.GROUP,
                    c.VERSION,
                    namespace,
                    c.SIMJOB_PLURAL,
                )
                for namespace in self.namespaces
            ]
        else:
            results = [
                await self.call(
                    self.custom.list_cluster_custom_object, c.GROUP, c.VERSION, c.SIMJOB_PLURAL
                )
            ]
        kind = c.SIMJOB_KIND
        items: list[Body] = [item for result in results for item in result.get("items") or []]
        for item in items:  # LIST items carry no apiVersion/kind
            item.setdefault("apiVersion", c.API_VERSION)
            item.setdefault("kind", kind)
        return items

    async def patch_simjob_status(
        self, namespace: str, name: str, status: Body, *, resource_version: str
    ) -> Body:
        """JSON merge patch of status, refused (``Conflict``) if the object changed,
        ``Gone`` if it was deleted."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            result: Body = await self.call(
                self.custom.patch_namespaced_custom_object_status,
                c.GROUP,
                c.VERSION,
                namespace,
                c.SIMJOB_PLURAL,
                name,
                body,
                field_manager=c.FIELD_MANAGER,
            )
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"{namespace}/{name} changed since {resource_version}") from exc
            if exc.status == 404:
                raise Gone(f"{namespace}/{name} no longer exists") from exc
            raise
        return result

    async def delete_simjob(self, namespace: str, name: str, *, uid: str) -> None:
        """Delete one SimJob, only if it still is the object with ``uid``."""
        try:
            await self.call(
                self.custom.delete_namespaced_custom_object,
                c.GROUP,
                c.VERSION,
                namespace,
                c.SIMJOB_PLURAL,
                name,
                body={"preconditions": {"uid": uid}},
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    # ------------------------------------------------------------------ SimTiers

    async def get_simtier(self, name: str) -> Body | None:
        return await self.get_or_none(
            self.custom.get_cluster_custom_object, c.GROUP, c.VERSION, c.SIMTIER_PLURAL, name
        )

    # ------------------------------------------------------------------ Jobs and pods

    async def get_job(self, namespace: str, name: str) -> Body | None:
        return await self.get_or_none(
            self.custom.get_namespaced_custom_object, "batch", "v1", namespace, "jobs", name
        )

    async def create_job(self, namespace: str, body: Body) -> Body:
        try:
            result: Body = await self.call(
                self.custom.create_namespaced_custom_object,
                "batch",
                "v1",
                namespace,
                "jobs",
                body,
                field_manager=c.FIELD_MANAGER,
            )
        except ApiException as exc:
            if exc.status == 409:
                raise AlreadyExists(f"{namespace}/{body['metadata']['name']}") from exc
            raise
        return result

    async def delete_job(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete a Job (its pods are deleted in the background); False if absent."""
        options: Body = {"propagationPolicy": "Background"}
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            await self.call(
                self.custom.delete_namespaced_custom_object,
                "batch",
                "v1",
                namespace,
                "jobs",
                name,
                body=options,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _core_request(self, method: str, path: str, query: list[tuple[str, str]]) -> Body:
        """A core/v1 request without importing CoreV1Api (30k lines, ~20 MiB)."""
        request = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
        data = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        result: Body = json.loads(data)
        return result

    async def list_pods(self, namespace: str, label_selector: str) -> list[Body]:
        path = f"/api/v1/namespaces/{quote(namespace)}/pods"
        result = await asyncio.to_thread(
            self._core_request, "GET", path, [("labelSelector", label_selector)]
        )
        items: list[Body] = result.get("items") or []
        return items

    async def delete_pods(self, namespace: str, label_selector: str) -> None:
        path = f"/api/v1/namespaces/{quote(namespace)}/pods"
        await asyncio.to_thread(
            self._core_request, "DELETE", path, [("labelSelector", label_selector)]
        )

    # ------------------------------------------------------------------ Events

    async def post_event(
        self, regarding: Body, *, type_: str, reason: str, message: str, action: str
    ) -> None:
        """An events.k8s.io/v1 Event about ``regarding`` (shown by kubectl describe)."""
        meta = regarding.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        event = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {
                "name": f"{str(meta.get('name', 'simjob'))[:200]}.{secrets.token_hex(8)}",
                "namespace": namespace,
            },
            "eventTime": _micro_time(datetime.now(UTC)),
            "reportingController": c.EVENT_REPORTING_CONTROLLER,
            "reportingInstance": self.instance[:128],
            "action": action,
            "reason": reason,
            "note": message[:1024],
            "type": type_,
            "regarding": {
                "apiVersion": regarding.get("apiVersion", c.API_VERSION),
                "kind": regarding.get("kind", c.SIMJOB_KIND),
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
            },
        }
        await self.call(
            self.custom.create_namespaced_custom_object,
            "events.k8s.io",
            "v1",
            namespace,
            "events",
            event,
        )
