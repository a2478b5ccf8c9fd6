"""A ledger of everything that happens in one test namespace, kept by watches.

``Ledger`` runs one thread per kind (SimJobs, batch/v1 Jobs, pods) that LISTs, then
WATCHes from that list's resourceVersion, and starts over (after a short pause) when the
API server goes away, stalls (a read timeout) or the watch expires; the threads stop
when the ledger is closed. It records:

* every Job and pod object (by its own ``metadata.uid``) ever seen per SimJob uid (the
  ``simjob.io/uid`` label), so a Job deleted and created again, or a second pod, is
  counted even if it lived for a moment between two polls;
* per (owner, tier), the most SimJobs seen holding a slot at once (Admitted=True and not
  terminal), computed after every watch event and over whole re-lists only, so it is
  never a mix of an old and a new state;
* terminal phases that changed afterwards (phases never go back).

While the API server is down nothing is seen; objects created and deleted inside such a
gap would be missed, so checks.py also reads the Job controller's Events at the end.
Neighbours: checks.py (uses the ledger), conftest.py (the ``ledger`` fixture).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from simjob_operator.api import names as c

TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled", "TimedOut"})
WATCH_S = 30  # server-side watch timeout: a fresh LIST at least this often
READ_TIMEOUT_S = 45  # a stalled (SIGSTOPped) API server ends the watch after this


def _admitted(status: dict[str, Any]) -> bool:
    return any(
        cond.get("type") == c.COND_ADMITTED and cond.get("status") == "True"
        for cond in status.get("conditions") or []
    )


class Ledger:
    """Watches one namespace until ``close()``; see the module docstring."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.namespace = namespace
        self.api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.jobs: dict[str, set[str]] = defaultdict(set)  # SimJob uid -> Job uids
        self.pods: dict[str, set[str]] = defaultdict(set)  # SimJob uid -> pod uids
        self.simjobs: dict[str, dict[str, Any]] = {}  # SimJob uid -> last body seen
        self.max_holders: dict[tuple[str, str], int] = defaultdict(int)
        self.phase_regressions: list[str] = []
        self.reconnects = 0
        batch = client.BatchV1Api(self.api)
        core = client.CoreV1Api(self.api)
        custom = client.CustomObjectsApi(self.api)
        selector = c.LABEL_UID
        self.threads = [
            threading.Thread(
                target=self._follow,
                args=("jobs", lambda **kw: batch.list_namespaced_job(namespace, **kw), selector),
                daemon=True,
            ),
            threading.Thread(
                target=self._follow,
                args=("pods", lambda **kw: core.list_namespaced_pod(namespace, **kw), selector),
                daemon=True,
            ),
            threading.Thread(
                target=self._follow,
                args=(
                    "simjobs",
                    lambda **kw: custom.list_namespaced_custom_object(
                        c.GROUP, c.VERSION, namespace, c.SIMJOB_PLURAL, **kw
                    ),
                    None,
                ),
                daemon=True,
            ),
        ]
        for thread in self.threads:
            thread.start()

    # --- reading ---------------------------------------------------------------------
    def duplicates(self) -> dict[str, dict[str, int]]:
        """SimJob uid -> {"jobs": n, "pods": m} for every SimJob with more than one of either."""
        with self.lock:
            uids = set(self.jobs) | set(self.pods)
            return {
                uid: {"jobs": len(self.jobs[uid]), "pods": len(self.pods[uid])}
                for uid in uids
                if len(self.jobs[uid]) > 1 or len(self.pods[uid]) > 1
            }

    def phases(self) -> dict[str, str]:
        """SimJob name -> phase, as last seen (stale while the API server is away)."""
        with self.lock:
            return {
                str(body["metadata"]["name"]): str((body.get("status") or {}).get("phase"))
                for body in self.simjobs.values()
            }

    def holders_max(self, owner: str, tier: str) -> int:
        with self.lock:
            return self.max_holders[(owner, tier)]

    def reset_holders(self) -> None:
        with self.lock:
            self.max_holders.clear()
            self._count_holders()

    def close(self) -> None:
        """Stop recording. A thread blocked in a watch read ends by itself when that watch
        times out (at most ``WATCH_S``); the threads are daemons, so nothing waits for it."""
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=1.0)

    # --- recording -------------------------------------------------------------------
    def _follow(self, kind: str, lister: Callable[..., Any], selector: str | None) -> None:
        """LIST + WATCH ``kind`` until the ledger closes, starting over after any error."""
        extra = {"label_selector": selector} if selector else {}
        while not self.stopped.is_set():
            try:
                listing = lister(_request_timeout=(5, READ_TIMEOUT_S), **extra)
                items, version = self._items_and_version(kind, listing)
                with self.lock:
                    self._record_list(kind, items)
                for event in self._stream(lister, version, extra):
                    if self.stopped.is_set():
                        return
                    body = event["object"]
                    if not isinstance(body, dict):
                        body = self.api.sanitize_for_serialization(body)
                    if event["type"] == "ERROR":
                        break  # 410 Gone and the like: list again
                    with self.lock:
                        self._record(kind, body, deleted=event["type"] == "DELETED")
                        if kind == "simjobs":
                            self._count_holders()
            except Exception:  # noqa: BLE001 — an outage is expected here: list again
                self.reconnects += 1
                self.stopped.wait(0.5)

    def _stream(
        self, lister: Callable[..., Any], version: str, extra: dict[str, str]
    ) -> Iterator[dict[str, Any]]:
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
            lister,
            resource_version=version,
            timeout_seconds=WATCH_S,
            _request_timeout=(5, READ_TIMEOUT_S),
            allow_watch_bookmarks=False,
            **extra,
        )
        yield from stream

    def _items_and_version(self, kind: str, listing: Any) -> tuple[list[dict[str, Any]], str]:
        if kind == "simjobs":
            return list(listing["items"]), str(listing["metadata"]["resourceVersion"])
        body = self.api.sanitize_for_serialization(listing)
        return list(body.get("items") or []), str(body["metadata"]["resourceVersion"])

    def _record_list(self, kind: str, items: list[dict[str, Any]]) -> None:
        if kind == "simjobs":
            self.simjobs = {}
        for body in items:
            self._record(kind, body, deleted=False)
        if kind == "simjobs":
            self._count_holders()

    def _record(self, kind: str, body: dict[str, Any], *, deleted: bool) -> None:
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if kind in ("jobs", "pods"):
            owner_uid = (meta.get("labels") or {}).get(c.LABEL_UID)
            if owner_uid and uid:
                (self.jobs if kind == "jobs" else self.pods)[owner_uid].add(uid)
            return
        old = self.simjobs.get(uid)
        old_phase = ((old or {}).get("status") or {}).get("phase")
        new_phase = (body.get("status") or {}).get("phase")
        if old_phase in TERMINAL and new_phase != old_phase:
            self.phase_regressions.append(f"{meta.get('name')} ({uid}): {old_phase} -> {new_phase}")
        if deleted:
            self.simjobs.pop(uid, None)
        else:
            self.simjobs[uid] = body

    def _count_holders(self) -> None:
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for body in self.simjobs.values():
            status = body.get("status") or {}
            spec = body.get("spec") or {}
            if _admitted(status) and status.get("phase") not in TERMINAL:
                owner = status.get("owner") or spec.get("owner") or self.namespace
                counts[(str(owner), str(spec.get("tier")))] += 1
        for key, count in counts.items():
            self.max_holders[key] = max(self.max_holders[key], count)
