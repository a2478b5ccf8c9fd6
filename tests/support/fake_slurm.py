"""In-memory stand-ins for the Slurm backend's unit tests (no Slurm, no cluster).

``FakeSlurm`` implements the ``slurm_bridge.SlurmClient`` protocol over a dict of jobs
and counts every call, so tests can prove batching ("one query per poll") and "no
duplicate sbatch". It can be made unreachable (every call raises
``SlurmUnavailable``), can refuse submissions (``SlurmRejected``), and can create the
job and then fail sbatch (the ambiguous case). ``FakeKube`` holds SimJobs and serves
the few ``kube.Kube`` calls the backend and its ``Recorder`` make; ``FakeApi`` the
SlurmCluster/Secret calls of ``slurm_api.SlurmApi``.
Neighbours: tests/unit/test_slurm_backend.py, test_slurm_polling.py.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from simjob_operator.kube.client import Conflict, Gone
from slurm_bridge import JobKind, JobSpec, JobState, SlurmRejected, SlurmUnavailable, map_state

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2025, 1, 1, 12, 5, tzinfo=UTC)


class FakeSlurm:
    """A Slurm site in a dict: job id -> (marker, JobState)."""

    def __init__(self) -> None:
        self.jobs: dict[str, tuple[str, JobState]] = {}
        self.specs: dict[str, JobSpec] = {}
        self.calls: Counter[str] = Counter()
        self.query_sizes: list[int] = []
        self.unreachable: str | None = None
        self.reject: str | None = None
        self.fail_after_submit = False
        self.during_submit: Callable[[], None] | None = None  # runs while "sbatch" runs
        self.tails: dict[str, str] = {}
        self._next = 100

    def _check(self, call: str) -> None:
        self.calls[call] += 1
        if self.unreachable is not None:
            raise SlurmUnavailable(self.unreachable)

    def set_state(self, job_id: str, state: str, **fields: Any) -> None:
        marker, _ = self.jobs[job_id]
        self.add(job_id, marker, state, **fields)

    def add(self, job_id: str, marker: str, state: str, **fields: Any) -> None:
        """A job that exists in Slurm (e.g. submitted by an earlier operator run)."""
        self.jobs[job_id] = (
            marker,
            JobState(job_id=job_id, state=state, kind=map_state(state), source="fake", **fields),
        )

    def markers(self) -> Counter[str]:
        return Counter(marker for marker, _ in self.jobs.values())

    async def submit(self, spec: JobSpec) -> str:
        self._check("sbatch")
        if self.reject is not None:
            raise SlurmRejected(self.reject)
        self._next += 1
        job_id = str(self._next)
        self.specs[job_id] = spec
        self.jobs[job_id] = (
            spec.marker,
            JobState(job_id=job_id, state="PENDING", kind=JobKind.QUEUED, source="fake"),
        )
        if self.during_submit is not None:
            self.during_submit()
        if self.fail_after_submit:
            self.fail_after_submit = False
            raise SlurmUnavailable("sbatch: connection reset after the job was created")
        return job_id

    async def query(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        ids = list(job_ids)
        self._check("query")
        self.query_sizes.append(len(ids))
        return {
            job_id: self.jobs[job_id][1] if job_id in self.jobs else JobState.missing(job_id, "x")
            for job_id in ids
        }

    async def cancel(self, job_id: str) -> JobState:
        self._check("scancel")
        _marker, state = self.jobs[job_id]
        if not state.finished:
            self.set_state(job_id, "CANCELLED", start_time=T0, end_time=T1)
        return self.jobs[job_id][1]

    async def find(self, marker: str) -> str | None:
        self._check("find")
        found = sorted(job_id for job_id, (m, _) in self.jobs.items() if m == marker)
        return found[0] if found else None

    async def output_tail(self, job_id: str, lines: int = 20, max_bytes: int = 4096) -> str:
        self._check("tail")
        return self.tails.get(job_id, "")

    async def close(self) -> None:
        return None


class FakeKube:
    """SimJobs by key; status patches honour resourceVersion like the API server."""

    def __init__(self) -> None:
        self.simjobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.status_patches: list[dict[str, Any]] = []
        self.conflicts = 0  # the next N status patches fail with Conflict
        self.namespaces: tuple[str, ...] = ()

    def add(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        self.simjobs[(meta["namespace"], meta["name"])] = copy.deepcopy(body)

    async def get_simjob(self, namespace: str, name: str) -> dict[str, Any] | None:
        body = self.simjobs.get((namespace, name))
        return copy.deepcopy(body) if body is not None else None

    async def list_simjobs(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(body) for body in self.simjobs.values()]

    async def patch_simjob_status(
        self, namespace: str, name: str, status: dict[str, Any], *, resource_version: str
    ) -> dict[str, Any]:
        body = self.simjobs.get((namespace, name))
        if body is None:
            raise Gone(f"{namespace}/{name}")
        if self.conflicts or body["metadata"]["resourceVersion"] != resource_version:
            self.conflicts = max(0, self.conflicts - 1)
            raise Conflict(f"{namespace}/{name}")
        self.status_patches.append(copy.deepcopy(status))
        merged = dict(body.get("status") or {})
        for key, value in status.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        body["status"] = merged
        body["metadata"]["resourceVersion"] = str(int(body["metadata"]["resourceVersion"]) + 1)
        return copy.deepcopy(body)

    async def post_event(self, regarding: Any, **_: Any) -> None:
        return None

    async def get_simtier(self, name: str) -> dict[str, Any] | None:
        return None


class FakeApi:
    """SlurmClusters and Secrets for ``slurm_sites.Sites`` and the poller."""

    def __init__(self) -> None:
        self.clusters: dict[str, dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, bytes]] = {}
        self.status_writes: list[tuple[str, dict[str, Any]]] = []

    def add_cluster(self, name: str, generation: int = 1, **spec: Any) -> None:
        spec.setdefault("workDir", "/tmp/simjob-work")
        self.clusters[name] = {
            "metadata": {"name": name, "generation": generation},
            "spec": spec,
        }

    async def get_cluster(self, name: str) -> dict[str, Any] | None:
        body = self.clusters.get(name)
        return copy.deepcopy(body) if body is not None else None

    async def list_clusters(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(body) for body in self.clusters.values()]

    async def patch_cluster_status(
        self, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        self.status_writes.append((name, copy.deepcopy(status)))
        body = self.clusters.get(name)
        if body is None:
            return None
        body["status"] = copy.deepcopy(status)
        return copy.deepcopy(body)

    async def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.secrets.get((namespace, name))
