"""``wait`` and ``watch`` on a Kubernetes watch, never by polling.

``wait_for_end`` GETs the SimJob, then watches it (``fieldSelector=metadata.name``) from
that GET's ``resourceVersion``; when the API server says the version is too old (410
Gone, ``Expired``) it GETs again and resumes from there, and when the connection drops
(an API server restart) it retries with a short backoff until the deadline. Every
change of phase, queue position, reason, message, progress or exit code is reported
to ``on_change``. ``watch_events`` LISTs once (reported as ADDED), then watches from the
LIST's version, re-LISTing after an expiry. Used by ``simjob_sdk.client`` (sync) and,
through a worker thread, by ``simjob_sdk.aio``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from kubernetes.watch import Watch

from simjob_operator.api import names as c
from simjob_sdk.connection import Apis
from simjob_sdk.errors import BackendUnavailable, Expired, NotFound, TimedOut, judged
from simjob_sdk.objects import SimJobObject, WatchEvent

ROUND_SECONDS = 50  # one watch request; the server ends it and we resume
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0)

OnChange = Callable[[SimJobObject], None]


def get_raw(apis: Apis, namespace: str, name: str) -> dict[str, Any]:
    with judged(f"GET SimJob {namespace}/{name}"):
        raw: Any = apis.custom.get_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.SIMJOB_PLURAL, name
        )
    return dict(raw)


def _stream(
    apis: Apis,
    namespace: str | None,
    *,
    resource_version: str,
    seconds: float,
    field_selector: str | None = None,
    label_selector: str | None = None,
    watcher: Watch | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """One watch request: (type, raw object) until the server ends it."""
    kwargs: dict[str, Any] = {
        "resource_version": resource_version,
        "timeout_seconds": max(1, int(seconds)),
        "allow_watch_bookmarks": True,
        "_request_timeout": seconds + 30,
    }
    if field_selector:
        kwargs["field_selector"] = field_selector
    if label_selector:
        kwargs["label_selector"] = label_selector
    watch = watcher or Watch()  # type: ignore[no-untyped-call]
    if namespace:
        func: Any = apis.custom.list_namespaced_custom_object
        args: tuple[str, ...] = (c.GROUP, c.VERSION, namespace, c.SIMJOB_PLURAL)
    else:
        func = apis.custom.list_cluster_custom_object
        args = (c.GROUP, c.VERSION, c.SIMJOB_PLURAL)
    with judged("WATCH SimJobs"):
        for event in watch.stream(func, *args, **kwargs):  # type: ignore[no-untyped-call]
            kind = str(event.get("type"))
            raw = event.get("raw_object") or event.get("object")
            if kind == "ERROR":
                code = raw.get("code") if isinstance(raw, dict) else None
                if code == 410:
                    raise Expired(str(raw.get("message", "resourceVersion too old")), status=410)
                raise BackendUnavailable(f"watch error: {raw}")
            if isinstance(raw, dict):
                yield kind, raw


def wait_for_end(
    apis: Apis,
    namespace: str,
    name: str,
    *,
    timeout: float | None,
    on_change: OnChange | None,
) -> SimJobObject:
    """Block until the SimJob is in a terminal phase; return it as it ended."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last: tuple[Any, ...] | None = None

    def report(job: SimJobObject) -> None:
        nonlocal last
        if job.state() != last:
            last = job.state()
            if on_change is not None:
                on_change(job)

    def remaining() -> float:
        if deadline is None:
            return ROUND_SECONDS
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimedOut(f"SimJob {namespace}/{name} did not finish within {timeout} s")
        return min(left, ROUND_SECONDS)

    failures = 0
    current: SimJobObject | None = None
    while True:
        try:
            if current is None:  # first pass, after an expiry, or after a dropped connection
                current = SimJobObject.from_api(get_raw(apis, namespace, name))
                report(current)
            if current.finished:
                return current
            for kind, raw in _stream(
                apis,
                namespace,
                resource_version=current.resource_version,
                seconds=remaining(),
                field_selector=f"metadata.name={name}",
            ):
                if kind == "DELETED":
                    raise NotFound(f"SimJob {namespace}/{name} was deleted while waiting")
                if kind == "BOOKMARK":
                    version = (raw.get("metadata") or {}).get("resourceVersion")
                    if version:
                        current = _with_version(current, str(version))
                    continue
                current = SimJobObject.from_api(raw)
                report(current)
                failures = 0
                if current.finished:
                    return current
            remaining()  # the round ended: give up at the deadline, else watch again
        except Expired:
            current = None
        except BackendUnavailable:
            remaining()
            time.sleep(BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)])
            failures += 1
            current = None


def _with_version(job: SimJobObject, version: str) -> SimJobObject:
    raw = {**job.raw, "metadata": {**(job.raw.get("metadata") or {}), "resourceVersion": version}}
    return SimJobObject.from_api(raw)


def watch_events(
    apis: Apis,
    namespace: str | None,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
    stop: threading.Event | None = None,
    round_seconds: float = ROUND_SECONDS,
) -> Iterator[WatchEvent]:
    """Every SimJob matching the selectors (ADDED first), then their changes, forever
    (or until ``stop`` is set: checked between events and at the end of each round)."""
    halt = stop or threading.Event()
    version: str | None = None
    failures = 0
    while not halt.is_set():
        try:
            if version is None:
                version = yield from _initial(apis, namespace, label_selector, field_selector)
            for kind, raw in _stream(
                apis,
                namespace,
                resource_version=version,
                seconds=round_seconds,
                field_selector=field_selector,
                label_selector=label_selector,
            ):
                version = str((raw.get("metadata") or {}).get("resourceVersion") or version)
                failures = 0
                if kind != "BOOKMARK":
                    yield WatchEvent(kind, SimJobObject.from_api(raw))
                if halt.is_set():
                    return
        except Expired:
            version = None
        except BackendUnavailable:
            if failures >= len(BACKOFF_SECONDS):
                raise
            halt.wait(BACKOFF_SECONDS[failures])
            failures += 1
            version = None


def _initial(
    apis: Apis, namespace: str | None, label_selector: str | None, field_selector: str | None
) -> Generator[WatchEvent, None, str]:
    kwargs: dict[str, Any] = {}
    if label_selector:
        kwargs["label_selector"] = label_selector
    if field_selector:
        kwargs["field_selector"] = field_selector
    listed: Any
    with judged("LIST SimJobs"):
        if namespace:
            listed = apis.custom.list_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.SIMJOB_PLURAL, **kwargs
            )
        else:
            listed = apis.custom.list_cluster_custom_object(
                c.GROUP, c.VERSION, c.SIMJOB_PLURAL, **kwargs
            )
    for raw in listed.get("items") or []:
        yield WatchEvent("ADDED", SimJobObject.from_api(raw))
    return str((listed.get("metadata") or {}).get("resourceVersion", ""))
