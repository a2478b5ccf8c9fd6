"""How the SDK reaches the API server: one ``kubernetes`` ApiClient, built like kubectl.

``connect`` reads a kubeconfig (``--kubeconfig``/``KUBECONFIG``/``~/.kube/config``, with an
optional ``--context``) or, inside a pod without one, the in-cluster service account.
``Apis`` bundles the two typed APIs the SDK calls (CustomObjectsApi for SimJobs and
SimTiers, CoreV1Api for pods and their logs). Used by ``simjob_sdk.client``; errors
are judged by ``simjob_sdk.errors``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from kubernetes.client.api.core_v1_api import CoreV1Api
from kubernetes.client.api.custom_objects_api import CustomObjectsApi
from kubernetes.client.api_client import ApiClient
from kubernetes.client.configuration import Configuration
from kubernetes.config import incluster_config, kube_config
from kubernetes.config.config_exception import ConfigException

from simjob_sdk.errors import BackendUnavailable


@dataclasses.dataclass(frozen=True)
class Apis:
    api_client: ApiClient
    custom: CustomObjectsApi
    core: CoreV1Api
    default_namespace: str


def _kubeconfig_namespace(path: str | None, context: str | None) -> str | None:
    try:
        contexts, active = kube_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=path
        )
    except (ConfigException, OSError):
        return None
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else None


def connect(kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None) -> Apis:
    """An API connection as kubectl would make it (``BackendUnavailable`` when there is none)."""
    configuration = Configuration()
    path = str(kubeconfig) if kubeconfig else None
    default_file = Path(os.path.expanduser(kube_config.KUBE_CONFIG_DEFAULT_LOCATION))
    use_file = path or context or os.environ.get("KUBECONFIG") or default_file.exists()
    namespace: str | None = None
    try:
        if use_file:
            kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context, client_configuration=configuration
            )
            namespace = _kubeconfig_namespace(path, context)
        else:
            incluster_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            sa_namespace = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            if sa_namespace.exists():
                namespace = sa_namespace.read_text().strip() or None
    except (ConfigException, OSError) as exc:
        raise BackendUnavailable(f"no Kubernetes configuration: {exc}") from exc
    return from_api_client(ApiClient(configuration), default_namespace=namespace or "default")


def from_api_client(api_client: ApiClient, *, default_namespace: str = "default") -> Apis:
    """Wrap an ApiClient someone else configured (tests, or a gateway with its own)."""
    return Apis(
        api_client=api_client,
        custom=CustomObjectsApi(api_client),
        core=CoreV1Api(api_client),
        default_namespace=default_namespace,
    )
