"""Watching objects from the benchmark: when each was first seen in a state.

``raw_watch`` LISTs then WATCHes a collection as plain JSON (cheap for the benchmark's
own CPU with thousands of pods); ``Tracker`` records per object the first time each tag
was seen (a phase, ``reason:…``, ``terminating``, ``deleted``) and counts MODIFIED events
while asked to. Used by every scenario module; built on ``common``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kubernetes import client

from common import FINISHED
from simjob_operator.api import names as c


def raw_watch(
    api: client.ApiClient, path: str, stop: threading.Event, selector: str = ""
) -> Iterator[tuple[str, dict[str, Any]]]:
    """LIST then WATCH ``path`` (a collection URL) as plain JSON (no model objects, so
    thousands of pods cost the benchmark little CPU); yields (type, object) until
    ``stop``; the LIST's items come as ADDED; relists on 410 Gone."""
    pool, host = api.rest_client.pool_manager, api.configuration.host
    sel = f"&labelSelector={selector}" if selector else ""
    while not stop.is_set():
        listed = json.loads(pool.request("GET", f"{host}{path}?limit=0{sel}").data)
        version = listed["metadata"]["resourceVersion"]
        for item in listed.get("items") or []:
            yield "ADDED", item
        yield "SYNCED", {}
        gone = False
        while not stop.is_set() and not gone:
            url = (
                f"{host}{path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=20"
                f"&resourceVersion={version}{sel}"
            )
            response = pool.request("GET", url, preload_content=False, timeout=30)
            try:
                for line in response:
                    if stop.is_set():
                        return
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        gone = True
                        break
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] != "BOOKMARK":
                        yield event["type"], obj
            finally:
                response.release_conn()


class Tracker:
    """Watches a collection in the background and records, per object name, the first
    time each tag returned by ``tags(object)`` was seen (e.g. ``Running``), when it was
    deleted (tag ``deleted``), and how many MODIFIED events it had (``changes``)."""

    def __init__(
        self,
        api: client.ApiClient,
        path: str,
        key: Callable[[dict[str, Any]], str],
        tags: Callable[[dict[str, Any]], Iterable[str]],
        selector: str = "",
    ) -> None:
        self.seen: dict[str, dict[str, float]] = {}
        self.changes: Counter[str] = Counter()
        self.current: dict[str, set[str]] = {}  # tags of each object's latest version
        self.counting = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._args = (api, path, key, tags, selector)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(30)

    def _run(self) -> None:
        api, path, key, tags, selector = self._args
        while not self._stop.is_set():
            try:
                for kind, obj in raw_watch(api, path, self._stop, selector):
                    if kind == "SYNCED":
                        self._ready.set()
                        continue
                    now = time.monotonic()
                    name = key(obj)
                    with self._lock:
                        marks = self.seen.setdefault(name, {})
                        now_tags = set(tags(obj))
                        self.current[name] = now_tags
                        for tag in now_tags:
                            marks.setdefault(tag, now)
                        if kind == "DELETED":
                            marks.setdefault("deleted", now)
                        if kind == "MODIFIED" and self.counting:
                            self.changes[name] += 1
                    self._ready.set()
            except Exception as exc:  # noqa: BLE001 - a broken watch is reopened
                if self._stop.is_set():
                    return
                print(f"# watch {path}: {exc!r}; reopening", file=sys.stderr)
                time.sleep(1)
            finally:
                self._ready.set()

    def count(self, tag: str, names: Iterable[str] | None = None) -> int:
        with self._lock:
            if names is None:
                return sum(1 for marks in self.seen.values() if tag in marks)
            return sum(1 for n in names if tag in self.seen.get(n, {}))

    def count_now(self, tag: str, names: Iterable[str]) -> int:
        """How many of ``names`` carry ``tag`` in their latest version."""
        with self._lock:
            return sum(1 for n in names if tag in self.current.get(n, ()))

    def marks(self) -> dict[str, dict[str, float]]:
        """A copy of every object's tags and when each was first seen."""
        with self._lock:
            return {name: dict(marks) for name, marks in self.seen.items()}

    def at(self, name: str, tag: str) -> float | None:
        with self._lock:
            return self.seen.get(name, {}).get(tag)

    def times(self, tag: str, names: Iterable[str]) -> dict[str, float]:
        with self._lock:
            return {n: self.seen[n][tag] for n in names if tag in self.seen.get(n, {})}

    def wait(self, tag: str, names: list[str], timeout: float, what: str = "") -> bool:
        """Wait until every name was seen with ``tag``; False (and a message) on timeout."""
        deadline = time.monotonic() + timeout
        while self.count(tag, names) < len(names):
            if time.monotonic() > deadline:
                print(
                    f"# timeout: {what or tag}: {self.count(tag, names)}/{len(names)} "
                    f"after {timeout:.0f}s",
                    file=sys.stderr,
                )
                return False
            time.sleep(0.1)
        return True

    def stop(self) -> None:
        self._stop.set()


def simjob_tags(obj: dict[str, Any]) -> list[str]:
    status = obj.get("status") or {}
    tags = [status.get("phase") or "", f"reason:{status.get('reason') or ''}"]
    if status.get("phase") in ("Running", *FINISHED):
        tags.append("Running")
    if status.get("phase") == "Succeeded":
        tags.append("Succeeded")
    return tags


def pod_tags(obj: dict[str, Any]) -> list[str]:
    phase = obj.get("status", {}).get("phase") or ""
    tags = [phase]
    if phase in ("Running", "Succeeded", "Failed"):
        tags.append("Running")
    if obj["metadata"].get("deletionTimestamp"):
        tags.append("terminating")
    return tags


def simjob_path(namespace: str) -> str:
    return f"/apis/{c.GROUP}/{c.VERSION}/namespaces/{namespace}/{c.SIMJOB_PLURAL}"


def pod_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods"


def track_simjobs(api: client.ApiClient, namespace: str) -> Tracker:
    return Tracker(api, simjob_path(namespace), lambda o: o["metadata"]["name"], simjob_tags)


def track_bare_pods(api: client.ApiClient, namespace: str) -> Tracker:
    """Pods of bare Jobs, keyed by their Job's name."""
    return Tracker(
        api,
        pod_path(namespace),
        lambda o: o["metadata"]["labels"].get("bench-job", ""),
        pod_tags,
        selector="bench%3Dbare",
    )


def track_simjob_pods(api: client.ApiClient, namespace: str) -> Tracker:
    """Pods of SimJobs, keyed by the SimJob's name (label simjob.io/name)."""
    return Tracker(
        api, pod_path(namespace), lambda o: o["metadata"]["labels"].get(c.LABEL_NAME, ""), pod_tags
    )
