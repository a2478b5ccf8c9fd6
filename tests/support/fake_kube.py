"""The one in-memory ``kube.seam.KubeApi`` of the unit tests.

``FakeKube`` holds SimJobs, SimTiers, Jobs, pods, SlurmClusters, Secrets and
SimUsages in dicts and behaves like the API server where the operator depends on it: status
patches are JSON merge patches checked against the resourceVersion precondition
(``Conflict``), writes to a missing object raise ``Gone``, a second create of a
Job raises ``AlreadyExists``, deletes honour the uid precondition. Every call is
counted (``calls``), every status patch and Event kept (``status_patches``,
``events``), and a test can make the next calls fail (``fail``) or lose races
(``conflicts``). Used by the reconciler, runtime, admitter and backend tests.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.kube.seam import AlreadyExists, Body, Conflict, Gone, KubeError, SecretData

Key = tuple[str, str]


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class FakeKube:
    """An API server in dicts (see the module docstring)."""

    def __init__(self, namespaces: tuple[str, ...] = ()) -> None:
        self.namespaces = namespaces
        self.namespace_uids: dict[str, str] = {"kube-system": "fake-cluster-uid"}
        self.simjobs: dict[Key, Body] = {}
        self.simtiers: dict[str, Body] = {}
        self.jobs: dict[Key, Body] = {}
        self.pods: dict[Key, Body] = {}
        self.slurmclusters: dict[str, Body] = {}
        self.secrets: dict[Key, dict[str, bytes]] = {}
        self.configmaps: dict[Key, dict[str, bytes]] = {}
        self.secret_labels: dict[Key, dict[str, str]] = {}  # labels of self.secrets
        self.logs: dict[Key, str] = {}  # pod logs, by (namespace, pod name)
        self.simusages: dict[Key, Body] = {}  # the usage ledger
        self.calls: Counter[str] = Counter()
        self.log: list[str] = []  # "call argument" for the calls tests follow in order
        self.status_patches: list[tuple[Key, Body]] = []
        self.cluster_status_writes: list[tuple[str, Body]] = []
        self.events: list[Body] = []
        self.conflicts = 0  # the next N status patches fail with Conflict
        self.failures: dict[str, list[KubeError]] = {}  # call name -> errors to raise
        self._rv = itertools.count(1000)
        self._uid = itertools.count(1)

    # ------------------------------------------------------------------ test helpers

    def fail(self, call: str, *errors: KubeError) -> None:
        """The next calls of ``call`` (e.g. "create_job") raise these errors in turn."""
        self.failures.setdefault(call, []).extend(errors)

    def _enter(self, call: str) -> None:
        self.calls[call] += 1
        queued = self.failures.get(call)
        if queued:
            raise queued.pop(0)

    def _stamp(self, body: Body) -> Body:
        meta = body.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self._rv))
        meta.setdefault("uid", f"uid-{next(self._uid)}")
        meta.setdefault("generation", 1)
        return body

    def add_simjob(self, body: Body) -> Body:
        stored = copy.deepcopy(body)
        meta = stored.setdefault("metadata", {})
        if "resourceVersion" not in meta:
            self._stamp(stored)
        self.simjobs[(meta["namespace"], meta["name"])] = stored
        return copy.deepcopy(stored)

    add = add_simjob  # the Slurm tests' name

    def add_simtier(self, name: str, spec: Body) -> None:
        self.simtiers[name] = {"metadata": {"name": name}, "spec": copy.deepcopy(spec)}

    def add_pod(self, namespace: str, body: Body) -> None:
        meta = body.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta.setdefault("name", f"pod-{len(self.pods)}")
        self.pods[(namespace, meta["name"])] = copy.deepcopy(body)

    def add_job(self, namespace: str, body: Body) -> None:
        self.jobs[(namespace, body["metadata"]["name"])] = copy.deepcopy(body)

    def add_cluster(self, name: str, generation: int = 1, **spec: Any) -> None:
        spec.setdefault("workDir", "/tmp/simjob-work")
        self.slurmclusters[name] = {
            "metadata": {"name": name, "generation": generation},
            "spec": spec,
        }

    def status_of(self, namespace: str, name: str) -> Body:
        return copy.deepcopy(self.simjobs[(namespace, name)].get("status") or {})

    def patches_of(self, namespace: str, name: str) -> list[Body]:
        return [patch for key, patch in self.status_patches if key == (namespace, name)]

    # ------------------------------------------------------------------ SimJobs

    async def get_simjob(self, namespace: str, name: str) -> Body | None:
        self._enter("get_simjob")
        body = self.simjobs.get((namespace, name))
        return copy.deepcopy(body) if body is not None else None

    async def list_simjobs(self) -> list[Body]:
        self._enter("list_simjobs")
        return [
            copy.deepcopy(body)
            for (namespace, _), body in self.simjobs.items()
            if not self.namespaces or namespace in self.namespaces
        ]

    async def patch_simjob_status(
        self, namespace: str, name: str, status: Body, *, resource_version: str
    ) -> Body:
        self._enter("patch_simjob_status")
        body = self.simjobs.get((namespace, name))
        if body is None:
            raise Gone(f"{namespace}/{name} is gone", status=404)
        if self.conflicts or body["metadata"]["resourceVersion"] != resource_version:
            self.conflicts = max(0, self.conflicts - 1)
            raise Conflict(f"{namespace}/{name} changed since {resource_version}", status=409)
        self.status_patches.append(((namespace, name), copy.deepcopy(status)))
        body["status"] = _merge(body.get("status") or {}, status)
        self._stamp(body)
        return copy.deepcopy(body)

    async def delete_simjob(self, namespace: str, name: str, *, uid: str) -> None:
        self._enter("delete_simjob")
        body = self.simjobs.get((namespace, name))
        if body is not None and body["metadata"].get("uid") == uid:
            del self.simjobs[(namespace, name)]

    async def cancel_simjob(
        self, namespace: str, name: str, *, uid: str, replaced_by: str | None = None
    ) -> None:
        self._enter("cancel_simjob")
        body = self.simjobs.get((namespace, name))
        if body is None or body["metadata"].get("uid") != uid:
            return
        body.setdefault("spec", {})["cancel"] = True
        if replaced_by is not None:
            annotations = body["metadata"].setdefault("annotations", {})
            annotations[c.ANNOTATION_REPLACED_BY] = replaced_by
        body["metadata"]["generation"] = int(body["metadata"].get("generation", 1)) + 1
        self._stamp(body)

    # ------------------------------------------------------------------ SimTiers

    async def get_simtier(self, name: str) -> Body | None:
        self._enter("get_simtier")
        body = self.simtiers.get(name)
        return copy.deepcopy(body) if body is not None else None

    # ------------------------------------------------------------------ Jobs and pods

    async def get_job(self, namespace: str, name: str) -> Body | None:
        self._enter("get_job")
        self.log.append(f"get {name}")
        body = self.jobs.get((namespace, name))
        return copy.deepcopy(body) if body is not None else None

    async def create_job(self, namespace: str, body: Body) -> Body:
        self._enter("create_job")
        key = (namespace, body["metadata"]["name"])
        if key in self.jobs:
            raise AlreadyExists(f"Job {key[0]}/{key[1]} already exists", status=409)
        stored = self._stamp(copy.deepcopy(body))
        stored["metadata"]["namespace"] = namespace
        self.jobs[key] = stored
        return copy.deepcopy(stored)

    async def delete_job(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        self._enter("delete_job")
        body = self.jobs.get((namespace, name))
        if body is None:
            return False
        if uid is not None and body["metadata"].get("uid") != uid:
            raise Conflict(f"Job {namespace}/{name}: uid precondition failed", status=409)
        del self.jobs[(namespace, name)]
        return True

    def _selected(self, namespace: str, label_selector: str) -> list[Key]:
        wanted = dict(item.split("=", 1) for item in label_selector.split(",") if "=" in item)
        return [
            key
            for key, pod in self.pods.items()
            if key[0] == namespace
            and all(pod["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]

    async def list_pods(self, namespace: str, label_selector: str) -> list[Body]:
        self._enter("list_pods")
        self.log.append(f"list {label_selector}")
        return [copy.deepcopy(self.pods[key]) for key in self._selected(namespace, label_selector)]

    async def delete_pods(self, namespace: str, label_selector: str) -> None:
        self._enter("delete_pods")
        for key in self._selected(namespace, label_selector):
            del self.pods[key]

    async def read_pod_log(
        self, namespace: str, name: str, *, container: str, tail_lines: int, limit_bytes: int
    ) -> str | None:
        self._enter("read_pod_log")
        if (namespace, name) not in self.pods:
            return None
        lines = self.logs.get((namespace, name), "").splitlines(keepends=True)
        return "".join(lines[-tail_lines:])[-limit_bytes:]

    # ------------------------------------------------------------------ SlurmClusters, Secrets

    async def get_slurmcluster(self, name: str) -> Body | None:
        self._enter("get_slurmcluster")
        body = self.slurmclusters.get(name)
        return copy.deepcopy(body) if body is not None else None

    async def list_slurmclusters(self) -> list[Body]:
        self._enter("list_slurmclusters")
        return [copy.deepcopy(body) for body in self.slurmclusters.values()]

    async def patch_slurmcluster_status(self, name: str, status: Body) -> Body | None:
        self._enter("patch_slurmcluster_status")
        self.cluster_status_writes.append((name, copy.deepcopy(status)))
        body = self.slurmclusters.get(name)
        if body is None:
            return None
        body["status"] = copy.deepcopy(status)
        return copy.deepcopy(body)

    async def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        self._enter("get_secret_data")
        data = self.secrets.get((namespace, name))
        return dict(data) if data is not None else None

    async def get_secret(self, namespace: str, name: str) -> SecretData | None:
        self._enter("get_secret")
        data = self.secrets.get((namespace, name))
        if data is None:
            return None
        return SecretData(dict(data), dict(self.secret_labels.get((namespace, name), {})))

    async def get_configmap_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        self._enter("get_configmap_data")
        data = self.configmaps.get((namespace, name))
        return dict(data) if data is not None else None

    # ------------------------------------------------------------------ SimUsages

    async def get_simusage(self, namespace: str, name: str) -> Body | None:
        self._enter("get_simusage")
        body = self.simusages.get((namespace, name))
        return copy.deepcopy(body) if body is not None else None

    async def create_simusage(self, namespace: str, body: Body) -> Body:
        self._enter("create_simusage")
        name = body["metadata"]["name"]
        if (namespace, name) in self.simusages:
            raise AlreadyExists(f"SimUsage {namespace}/{name} exists", status=409)
        stored = self._stamp(copy.deepcopy(body))
        stored.pop("status", None)  # the status subresource: a create sets no status
        self.simusages[(namespace, name)] = stored
        return copy.deepcopy(stored)

    async def patch_simusage_status(
        self, namespace: str, name: str, status: Body, *, resource_version: str
    ) -> Body:
        self._enter("patch_simusage_status")
        body = self.simusages.get((namespace, name))
        if body is None:
            raise Gone(f"SimUsage {namespace}/{name} is gone", status=404)
        if body["metadata"]["resourceVersion"] != resource_version:
            raise Conflict(f"SimUsage {namespace}/{name} changed", status=409)
        body["status"] = _merge(body.get("status") or {}, status)
        self._stamp(body)
        return copy.deepcopy(body)

    # ------------------------------------------------------------------ Events

    async def post_event(
        self, regarding: Body, *, type_: str, reason: str, message: str, action: str
    ) -> None:
        self._enter("post_event")
        meta = regarding.get("metadata") or {}
        self.events.append(
            {
                "regarding": {
                    "kind": regarding.get("kind", c.SIMJOB_KIND),
                    "namespace": meta.get("namespace"),
                    "name": meta.get("name"),
                },
                "type": type_,
                "reason": reason,
                "note": message,
                "action": action,
            }
        )

    # ------------------------------------------------------------------ Namespaces

    async def get_namespace_uid(self, name: str) -> str | None:
        self._enter("get_namespace_uid")
        return self.namespace_uids.get(name)
