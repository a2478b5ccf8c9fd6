"""``KubeApi`` over the synchronous ``kubernetes`` client, one thread per call.

Every call runs in a worker thread (``asyncio.to_thread``) and speaks plain dicts:
the custom-objects API serves SimJobs, SimTiers, SlurmClusters, batch/v1 Jobs and
events.k8s.io Events (no generated model classes are built); the core/v1 pod and
Secret calls go through the ApiClient directly, so the huge CoreV1Api module is
never imported (the package is heavy: import only what is used). Every failure
becomes one of ``kube.seam``'s errors in ``kube.translate``, the one place where HTTP
statuses are judged. The implementation of ``kube.seam.KubeApi``; built by
``controller.runtime``. Two mixins hold families of calls: ``kube.corereads`` (named
Secret/ConfigMap/Namespace reads) and ``kube.usage`` (SimUsage).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kubernetes.client.api.custom_objects_api import CustomObjectsApi
from kubernetes.client.api_client import ApiClient
from kubernetes.client.configuration import Configuration
from kubernetes.config import incluster_config, kube_config
from kubernetes.config.config_exception import ConfigException

from simjob_operator import metrics
from simjob_operator.api import names as c
from simjob_operator.core.settings import DEFAULT as SETTINGS
from simjob_operator.core.settings import Limits
from simjob_operator.kube.corereads import CoreReads
from simjob_operator.kube.events import event_body
from simjob_operator.kube.ratelimit import TokenBucket
from simjob_operator.kube.rest import core_request, log_request
from simjob_operator.kube.seam import (
    Body,
    Conflict,
    Gone,
    Unavailable,
)
from simjob_operator.kube.translate import judged
from simjob_operator.kube.usage import UsageCalls

RETRY_AFTER_MAX = 10.0  # seconds: a 429's Retry-After is honoured up to this


def load_configuration(limits: Limits = SETTINGS.limits) -> Configuration:
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
    configuration.connection_pool_maxsize = limits.api_pool_size
    return configuration


class Kube(CoreReads, UsageCalls):
    """The API calls the operator makes (``kube.seam.KubeApi``); each one a coroutine.
    Secret/ConfigMap/Namespace reads come from ``CoreReads``, SimUsage calls from
    ``UsageCalls``."""

    def __init__(
        self,
        api_client: ApiClient,
        namespaces: Sequence[str] = (),
        *,
        limits: Limits = SETTINGS.limits,
    ) -> None:
        self.api_client = api_client
        self.custom = CustomObjectsApi(api_client)
        self.instance = os.environ.get("POD_NAME") or socket.gethostname()
        # The namespaces served (empty: all); list_simjobs reads only these.
        self.namespaces = tuple(namespaces)
        self._timeout = (limits.api_connect_timeout, limits.api_read_timeout)
        self.limiter = TokenBucket(limits.api_qps, limits.api_burst)
        self._retries_429 = limits.api_429_retries

    @classmethod
    def connect(cls, limits: Limits = SETTINGS.limits) -> Kube:
        """A client from the kubeconfig, serving $SIMJOB_WATCH_NAMESPACES (or all)."""
        watched = os.environ.get(c.ENV_WATCH_NAMESPACES, "")
        namespaces = [name.strip() for name in watched.split(",") if name.strip()]
        configuration = load_configuration(limits)
        return cls(ApiClient(configuration=configuration), namespaces, limits=limits)

    async def call(self, what: str, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """One blocking client call in a worker thread, through the rate limit; a 429 is
        retried after its Retry-After; failures as ``kube.seam`` errors."""
        return await self._limited(
            what, lambda: func(*args, _request_timeout=self._timeout, **kwargs)
        )

    async def _limited(self, what: str, send: Callable[[], Any]) -> Any:
        for attempt in range(self._retries_429 + 1):
            await self.limiter.acquire()
            try:
                with metrics.api_request(what), judged(what):
                    return await asyncio.to_thread(send)
            except Unavailable as exc:
                if exc.status != 429 or attempt == self._retries_429:
                    raise
                await asyncio.sleep(min(RETRY_AFTER_MAX, exc.retry_after or 1.0))
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_or_none(self, what: str, func: Callable[..., Any], /, *args: Any) -> Body | None:
        """A GET through ``call``; None for 404."""
        try:
            result: Body = await self.call(what, func, *args)
        except Gone:
            return None
        return result

    # ------------------------------------------------------------------ SimJobs

    async def get_simjob(self, namespace: str, name: str) -> Body | None:
        return await self.get_or_none(
            f"GET SimJob {namespace}/{name}",
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
                    f"LIST SimJobs in {namespace}",
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
                    "LIST SimJobs",
                    self.custom.list_cluster_custom_object,
                    c.GROUP,
                    c.VERSION,
                    c.SIMJOB_PLURAL,
                )
            ]
        items: list[Body] = [item for result in results for item in result.get("items") or []]
        for item in items:  # LIST items carry no apiVersion/kind
            item.setdefault("apiVersion", c.API_VERSION)
            item.setdefault("kind", c.SIMJOB_KIND)
        return items

    async def patch_simjob_status(
        self, namespace: str, name: str, status: Body, *, resource_version: str
    ) -> Body:
        """JSON merge patch of status, refused (``Conflict``) if the object changed,
        ``Gone`` if it was deleted."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        result: Body = await self.call(
            f"PATCH SimJob {namespace}/{name} status",
            self.custom.patch_namespaced_custom_object_status,
            c.GROUP,
            c.VERSION,
            namespace,
            c.SIMJOB_PLURAL,
            name,
            body,
            field_manager=c.FIELD_MANAGER,
        )
        return result

    async def delete_simjob(self, namespace: str, name: str, *, uid: str) -> None:
        """Delete one SimJob, only if it still is the object with ``uid``."""
        try:
            await self.call(
                f"DELETE SimJob {namespace}/{name}",
                self.custom.delete_namespaced_custom_object,
                c.GROUP,
                c.VERSION,
                namespace,
                c.SIMJOB_PLURAL,
                name,
                body={"preconditions": {"uid": uid}},
            )
        except (Gone, Conflict):
            return

    async def cancel_simjob(
        self, namespace: str, name: str, *, uid: str, replaced_by: str | None = None
    ) -> None:
        """Set spec.cancel on one SimJob (and, in the same write, the name of the newer
        run that replaces it), only if it still is the object with ``uid``; a gone or
        replaced SimJob needs nothing."""
        meta: dict[str, Any] = {"uid": uid}
        if replaced_by is not None:
            meta["annotations"] = {c.ANNOTATION_REPLACED_BY: replaced_by}
        body = {"metadata": meta, "spec": {"cancel": True}}
        try:
            await self.call(
                f"PATCH SimJob {namespace}/{name} spec.cancel",
                self.custom.patch_namespaced_custom_object,
                c.GROUP,
                c.VERSION,
                namespace,
                c.SIMJOB_PLURAL,
                name,
                body,
                field_manager=c.FIELD_MANAGER,
            )
        except (Gone, Conflict):
            return

    # ------------------------------------------------------------------ SimTiers

    async def get_simtier(self, name: str) -> Body | None:
        return await self.get_or_none(
            f"GET SimTier {name}",
            self.custom.get_cluster_custom_object,
            c.GROUP,
            c.VERSION,
            c.SIMTIER_PLURAL,
            name,
        )

    # ------------------------------------------------------------------ Jobs and pods

    async def get_job(self, namespace: str, name: str) -> Body | None:
        return await self.get_or_none(
            f"GET Job {namespace}/{name}",
            self.custom.get_namespaced_custom_object,
            "batch",
            "v1",
            namespace,
            "jobs",
            name,
        )

    async def create_job(self, namespace: str, body: Body) -> Body:
        result: Body = await self.call(
            f"CREATE Job {namespace}/{body['metadata']['name']}",
            self.custom.create_namespaced_custom_object,
            "batch",
            "v1",
            namespace,
            "jobs",
            body,
            field_manager=c.FIELD_MANAGER,
        )
        return result

    async def delete_job(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete a Job (its pods are deleted in the background); False if absent."""
        options: Body = {"propagationPolicy": "Background"}
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            await self.call(
                f"DELETE Job {namespace}/{name}",
                self.custom.delete_namespaced_custom_object,
                "batch",
                "v1",
                namespace,
                "jobs",
                name,
                body=options,
            )
        except Gone:
            return False
        return True

    async def _core(self, what: str, method: str, path: str, query: list[tuple[str, str]]) -> Body:
        result: Body = await self._limited(
            what, lambda: core_request(self.api_client, method, path, query, self._timeout)
        )
        return result

    async def list_pods(self, namespace: str, label_selector: str) -> list[Body]:
        path = f"/api/v1/namespaces/{quote(namespace)}/pods"
        result = await self._core(
            f"LIST pods in {namespace}", "GET", path, [("labelSelector", label_selector)]
        )
        items: list[Body] = result.get("items") or []
        return items

    async def read_pod_log(
        self, namespace: str, name: str, *, container: str, tail_lines: int, limit_bytes: int
    ) -> str | None:
        """The tail of a container's log; None when the pod is gone."""
        path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}/log"
        query = [
            ("container", container),
            ("tailLines", str(tail_lines)),
            ("limitBytes", str(limit_bytes)),
        ]
        try:
            text: str = await self._limited(
                f"GET log of pod {namespace}/{name}",
                lambda: log_request(self.api_client, path, query, self._timeout),
            )
        except Gone:
            return None
        return text

    async def delete_pods(self, namespace: str, label_selector: str) -> None:
        path = f"/api/v1/namespaces/{quote(namespace)}/pods"
        await self._core(
            f"DELETE pods in {namespace}", "DELETE", path, [("labelSelector", label_selector)]
        )

    # ------------------------------------------------------------------ SlurmClusters

    async def get_slurmcluster(self, name: str) -> Body | None:
        return await self.get_or_none(
            f"GET SlurmCluster {name}",
            self.custom.get_cluster_custom_object,
            c.GROUP,
            c.VERSION,
            c.SLURMCLUSTER_PLURAL,
            name,
        )

    async def list_slurmclusters(self) -> list[Body]:
        result: Body = await self.call(
            "LIST SlurmClusters",
            self.custom.list_cluster_custom_object,
            c.GROUP,
            c.VERSION,
            c.SLURMCLUSTER_PLURAL,
        )
        items: list[Body] = result.get("items") or []
        return items

    async def patch_slurmcluster_status(self, name: str, status: Body) -> Body | None:
        """Merge-patch a SlurmCluster's status; None when the SlurmCluster is gone."""
        try:
            result: Body = await self.call(
                f"PATCH SlurmCluster {name} status",
                self.custom.patch_cluster_custom_object_status,
                c.GROUP,
                c.VERSION,
                c.SLURMCLUSTER_PLURAL,
                name,
                {"status": status},
                field_manager=c.FIELD_MANAGER,
            )
        except Gone:
            return None
        return result

    # ------------------------------------------------------------------ Events

    async def post_event(
        self, regarding: Body, *, type_: str, reason: str, message: str, action: str
    ) -> None:
        """An events.k8s.io/v1 Event about ``regarding`` (shown by kubectl describe)."""
        event = event_body(
            regarding,
            type_=type_,
            reason=reason,
            message=message,
            action=action,
            instance=self.instance,
            now=datetime.now(UTC),
        )
        namespace = event["metadata"]["namespace"]
        await self.call(
            f"CREATE Event in {namespace}",
            self.custom.create_namespaced_custom_object,
            "events.k8s.io",
            "v1",
            namespace,
            "events",
            event,
        )
