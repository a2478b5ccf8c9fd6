"""Judging API failures once: every exception of the ``kubernetes`` client (and of
urllib3 under it) becomes one of ``kube.seam``'s errors, with the API server's own
message. The one place where HTTP statuses are read; used by ``kube.client``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from simjob_operator.kube.seam import (
    AlreadyExists,
    Conflict,
    Gone,
    KubeError,
    Refused,
    Unavailable,
)

MESSAGE_LIMIT = 512


def _server_message(exc: ApiException) -> str:
    """The API server's own message (the Status object's ``message``), else the reason."""
    try:
        status = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        status = {}
    message = status.get("message") if isinstance(status, dict) else None
    return str(message or exc.reason or f"HTTP {exc.status}")[:MESSAGE_LIMIT]


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    try:
        return float(headers.get("Retry-After") or headers.get("retry-after") or "")
    except ValueError:
        return None


def translate(exc: BaseException, what: str) -> KubeError:
    """One judgement of every failure: what a caller can do about it."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        message = f"{what}: {_server_message(exc)}"
        if status == 409:
            if "AlreadyExists" in (exc.body or "") or "already exists" in message:
                return AlreadyExists(message, status=status)
            return Conflict(message, status=status)
        if status == 404:
            return Gone(message, status=status)
        if status == 429 or status >= 500 or status == 0:
            error = Unavailable(message, status=status)
            error.retry_after = _retry_after(exc)
            return error
        return Refused(message, status=status)
    return Unavailable(f"{what}: {type(exc).__name__}: {exc}"[:MESSAGE_LIMIT])


@contextmanager
def judged(what: str) -> Iterator[None]:
    try:
        yield
    except KubeError:
        raise
    except (ApiException, HTTPError, OSError, TimeoutError) as exc:
        raise translate(exc, what) from exc
