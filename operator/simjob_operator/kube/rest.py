"""Raw core/v1 requests through the ApiClient, without importing CoreV1Api (30k lines,
~20 MiB): a JSON request (pods, Secrets) and a text one (pod logs). Blocking: called in
a worker thread by ``kube.client``; a non-2xx answer raises the client's
``ApiException``, which ``kube.translate`` judges.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client.api_client import ApiClient
from kubernetes.client.exceptions import ApiException

Body = dict[str, Any]


def core_request(
    api_client: ApiClient,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    timeout: tuple[float, float],
) -> Body:
    """A core/v1 request without importing CoreV1Api (30k lines, ~20 MiB)."""
    request = api_client.param_serialize(
        method=method,
        resource_path=path,
        query_params=query,
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(*request, _request_timeout=timeout)
    data = response.read()  # type: ignore[no-untyped-call]
    if not 200 <= response.status <= 299:
        raise ApiException(status=response.status, reason=response.reason, data=data)
    result: Body = json.loads(data)
    return result


def log_request(
    api_client: ApiClient, path: str, query: list[tuple[str, str]], timeout: tuple[float, float]
) -> str:
    request = api_client.param_serialize(
        method="GET",
        resource_path=path,
        query_params=query,
        header_params={"Accept": "*/*"},  # the log endpoint refuses text/plain (406)
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(*request, _request_timeout=timeout)
    data = response.read()  # type: ignore[no-untyped-call]
    if not 200 <= response.status <= 299:
        raise ApiException(status=response.status, reason=response.reason, data=data)
    return bytes(data).decode("utf-8", errors="replace")
