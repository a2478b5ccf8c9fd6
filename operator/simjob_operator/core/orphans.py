"""Orphaned Slurm jobs: the mark that proves a job ours, and when the sweep cancels one.

Every Slurm job of a SimJob is named ``simjob-<uid>`` and carries the comment
``job_comment``: ``cluster=<id> simjob=<namespace>/<name>``, where ``<id>`` is the
identity of this Kubernetes cluster (the uid of its kube-system namespace). Several
Kubernetes clusters may share one Slurm site (and one site account): a job is only
ever judged by the operator whose cluster identity it carries (``parse_mark``).

``OrphanTracker`` decides, from what the sweep saw, which jobs to cancel: a job of
ours, in a namespace this operator serves, whose SimJob (the uid of its name) has been
absent from the API server for ``grace`` seconds — counted from the first sweep that
missed it, so a restart of the operator starts the count again (safe side). The caller
(``backends.slurm.sweep``) re-reads each SimJob with a fresh GET right before
cancelling. Pure: no I/O, times are given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable

from simjob_operator.api import names as c

COMMENT_CLUSTER = "cluster="
COMMENT_SIMJOB = "simjob="


def job_comment(cluster_id: str | None, namespace: str, name: str) -> str:
    """The Slurm comment of a SimJob's job; without a cluster identity the job is
    marked ``namespace/name`` only (and no sweep ever cancels it)."""
    if not cluster_id:
        return f"{namespace}/{name}"
    return f"{COMMENT_CLUSTER}{cluster_id} {COMMENT_SIMJOB}{namespace}/{name}"


@dataclasses.dataclass(frozen=True)
class MarkedJob:
    """A Slurm job carrying SimJob's mark: its id, the SimJob's uid (from the job
    name), the Kubernetes cluster and the SimJob's namespace and name (from the comment)."""

    job_id: str
    uid: str
    cluster_id: str
    namespace: str
    name: str

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    def describe(self) -> str:
        return f"Slurm job {self.job_id} of SimJob {self.namespace}/{self.name} (uid {self.uid})"


def parse_mark(job_id: str, job_name: str, comment: str) -> MarkedJob | None:
    """The mark of a job, or None when it is not a SimJob's job with a cluster identity."""
    if not job_name.startswith(c.SLURM_MARKER_PREFIX):
        return None
    uid = job_name.removeprefix(c.SLURM_MARKER_PREFIX)
    fields = comment.split()
    if len(fields) != 2 or not fields[0].startswith(COMMENT_CLUSTER):
        return None
    if not fields[1].startswith(COMMENT_SIMJOB):
        return None
    cluster_id = fields[0].removeprefix(COMMENT_CLUSTER)
    namespace, slash, name = fields[1].removeprefix(COMMENT_SIMJOB).partition("/")
    if not (uid and cluster_id and namespace and slash and name):
        return None
    return MarkedJob(job_id, uid, cluster_id, namespace, name)


def serves(namespaces: Collection[str], namespace: str) -> bool:
    """Whether an operator serving ``namespaces`` (empty: all) serves ``namespace``."""
    return not namespaces or namespace in namespaces


class OrphanTracker:
    """When each job was first seen without its SimJob; which are due for cancelling."""

    def __init__(self, cluster_id: str, namespaces: Collection[str], grace: float) -> None:
        self.cluster_id = cluster_id
        self.namespaces = tuple(namespaces)
        self.grace = grace
        self._absent_since: dict[str, float] = {}  # job id -> first sweep that missed it

    def ours(self, job: MarkedJob) -> bool:
        """The job belongs to this Kubernetes cluster and to a namespace served here."""
        return job.cluster_id == self.cluster_id and serves(self.namespaces, job.namespace)

    def candidates(self, jobs: Iterable[MarkedJob]) -> list[MarkedJob]:
        """The jobs of ours (the only ones whose SimJob is looked up)."""
        return [job for job in jobs if self.ours(job)]

    def observe(
        self, jobs: Iterable[MarkedJob], present_uids: Collection[str], now: float
    ) -> list[MarkedJob]:
        """One sweep: ``jobs`` are the unfinished marked jobs seen, ``present_uids`` the
        uids of their SimJobs that exist. Returns the jobs absent for ``grace`` seconds
        (to be re-checked with a fresh GET, then cancelled); forgets jobs no longer seen
        or whose SimJob is back."""
        due: list[MarkedJob] = []
        seen: dict[str, float] = {}
        for job in self.candidates(jobs):
            if job.uid in present_uids:
                continue
            since = self._absent_since.get(job.job_id, now)
            seen[job.job_id] = since
            if now - since >= self.grace:
                due.append(job)
        self._absent_since = seen
        return due

    def absent_since(self, job_id: str) -> float | None:
        return self._absent_since.get(job_id)

    def done(self, job_id: str) -> None:
        """The job was cancelled (or found gone)."""
        self._absent_since.pop(job_id, None)
