"""The SDK's exception tree, and the one place where Kubernetes client failures are judged.

``SimJobError`` > ``NotFound``, ``Rejected`` (the API server's own message), ``Conflict``,
``TimedOut``, ``BackendUnavailable``. ``judged`` turns every ``ApiException`` and every
urllib3/socket failure raised inside it into one of these, so no raw ``ApiException``
leaves the SDK. Used by ``simjob_sdk.client`` and ``simjob_sdk.watching``; mirrors the
operator's ``simjob_operator.kube.translate`` without importing it (that layer is the
operator's, and may need more than a gateway installs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

MESSAGE_LIMIT = 1024


class SimJobError(Exception):
    """Base of every error the SDK raises. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NotFound(SimJobError):
    """The SimJob (or its pod, or the namespace) does not exist."""


class Rejected(SimJobError):
    """The API server refused the request (400/401/403/422…); ``message`` is its own."""


class Conflict(SimJobError):
    """A SimJob of that name exists with a different spec, or a write raced another."""


class TimedOut(SimJobError):
    """``wait`` gave up before the SimJob finished (the SimJob itself goes on)."""


class BackendUnavailable(SimJobError):
    """No answer: the API server (or the Slurm site) is unreachable, overloaded (429)
    or failing (5xx). Retrying later may succeed."""


class Expired(SimJobError):
    """Internal: a watch's resourceVersion is too old (410 Gone); the watch restarts."""


def server_message(exc: ApiException) -> str:
    """The API server's message (the Status object's ``message``), else its reason."""
    try:
        status = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        status = {}
    message = status.get("message") if isinstance(status, dict) else None
    return str(message or exc.reason or f"HTTP {exc.status}")[:MESSAGE_LIMIT]


def is_already_exists(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 409 and "AlreadyExists" in str(exc.body)


def translate(exc: BaseException, what: str) -> SimJobError:
    """One judgement of a client failure: what the caller can do about it."""
    if isinstance(exc, SimJobError):
        return exc
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        message = f"{what}: {server_message(exc)}"
        if status == 404:
            return NotFound(message, status=status)
        if status == 409:
            return Conflict(message, status=status)
        if status == 410:
            return Expired(message, status=status)
        if status == 429 or status >= 500 or status == 0:
            return BackendUnavailable(message, status=status)
        return Rejected(message, status=status)
    return BackendUnavailable(f"{what}: {type(exc).__name__}: {exc}"[:MESSAGE_LIMIT])


@contextmanager
def judged(what: str) -> Iterator[None]:
    """Run a block of client calls; failures leave it as ``SimJobError``s."""
    try:
        yield
    except SimJobError:
        raise
    except (ApiException, HTTPError, OSError, TimeoutError) as exc:
        raise translate(exc, what) from exc
