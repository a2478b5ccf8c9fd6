"""An in-memory Slurm for the Slurm backend's unit tests (no Slurm, no cluster).

``FakeSlurm`` implements the ``slurm_bridge.SlurmClient`` protocol over a dict of jobs
and counts every call, so tests can prove batching ("one query per poll") and "no
duplicate sbatch". It can be made unreachable (every call raises
``SlurmUnavailable``), can refuse submissions (``SlurmRejected``), and can create the
job and then fail sbatch (the ambiguous case). The Kubernetes side (SimJobs,
SlurmClusters, Secrets) is ``tests/support/fake_kube.FakeKube``. Its files (run
directories, output tails) are reached through ``runner`` (a ``RecordingRunner`` that
answers every command with success, or a real ``LocalRunner`` over a temporary
``work_dir``, as a test chooses).
Neighbours: tests/unit/test_slurm_backend.py, test_slurm_jobs.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from slurm_bridge import (
    JobKind,
    JobSpec,
    JobState,
    Runner,
    RunResult,
    SlurmRejected,
    SlurmUnavailable,
    map_state,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2025, 1, 1, 12, 5, tzinfo=UTC)


class RecordingRunner:
    """A ``slurm_bridge.Runner`` that records each command and answers success."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], bytes | None]] = []

    @property
    def where(self) -> str:
        return "fake"

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout_s: float = 60.0
    ) -> RunResult:
        self.calls.append((tuple(argv), stdin))
        return RunResult(tuple(argv), 0, "", "")

    async def close(self) -> None:
        return None


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
        self.tail_directories: list[str | None] = []
        self.work_dir = "/fake/work"
        self.runner: Runner = RecordingRunner()
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

    async def output_tail(
        self, job_id: str, lines: int = 20, max_bytes: int = 4096, *, directory: str | None = None
    ) -> str:
        self._check("tail")
        self.tail_directories.append(directory)
        return self.tails.get(job_id, "")

    async def ping(self) -> None:
        self._check("ping")

    async def close(self) -> None:
        return None
