"""What ``backend.SlurmBackend.observe`` adds to a job's state, and who we are.

``Annotator.annotate`` completes the ``Observation`` that ``jobs.interpret`` made of a
``slurm_bridge.JobState``: a finished job gets its usage as Slurm's accounting measured
it (``MeasuredUsage``: sacct's elapsed seconds, allocated CPUs x elapsed, MaxRSS where
the steps report it; read by the poll that saw the job end, one ``sacct`` for all the
jobs that ended then — ``with_usage``, called by ``poller`` — else once per job through
``ReportingClient.usage``; none without accounting — then the operator's own
start-to-end estimate stands); an unfinished job whose login's SSH certificate has
expired (``certificates.CredentialWatch.problem``) keeps its state with the reason
``CredentialsExpired`` and the message saying what to renew. ``ClusterIdentity``
reads, once, the uid of the kube-system namespace: the identity of this Kubernetes
cluster that every job's comment carries (``core.orphans.job_comment``) and the orphan
sweep (``sweep``) checks.
Neighbours: ``backend``, ``poller``, ``reachability`` (``ReportingClient``), ``sweep``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from simjob_operator.api.reasons import Reason
from simjob_operator.backends.slurm.reachability import ReportingClient
from simjob_operator.core.logs import SimJobLogger
from simjob_operator.core.observations import MeasuredUsage, Observation, ObservedState
from simjob_operator.kube.seam import KubeApi, Refused
from slurm_bridge import JobState, SlurmClient, SlurmUnavailable

logger = logging.getLogger("simjob_operator.slurm")
MAX_KEPT = 1000  # finished jobs' usage kept (each is read once)
IDENTITY_NAMESPACE = "kube-system"


def measured(state: JobState) -> MeasuredUsage | None:
    """The usage in an accounting record, if it has the elapsed time. Pure."""
    if state.elapsed_seconds is None:
        return None
    cpu = state.cpu_seconds
    return MeasuredUsage(
        source=state.source or "sacct",
        wall_seconds=float(state.elapsed_seconds),
        cpu_seconds=float(cpu) if cpu is not None else None,
        max_rss_bytes=state.max_rss_bytes,
    )


async def with_usage(
    client: SlurmClient, states: dict[str, JobState], known: Mapping[str, JobState | None]
) -> dict[str, JobState]:
    """``states`` of one poll, where the jobs that have just finished (``known``: their
    previous state) carry their usage from accounting: ONE ``usage`` call (sacct) for
    all of them, so that ``Annotator`` needs none per job. A failed read leaves the
    states as they are (``Annotator`` tries again, per job)."""
    new = [
        job_id
        for job_id, state in states.items()
        if state.finished
        and state.elapsed_seconds is None
        and not ((old := known.get(job_id)) is not None and old.finished)
    ]
    if not new or not isinstance(client, ReportingClient):
        return states
    try:
        records = await client.usage(new)
    except SlurmUnavailable as exc:
        logger.info("reading the usage of %d finished Slurm jobs failed: %s", len(new), exc)
        return states
    merged = dict(states)
    for job_id in new:
        record = records.get(job_id)
        if record is not None and record.elapsed_seconds is not None:
            merged[job_id] = dataclasses.replace(
                states[job_id],
                elapsed_seconds=record.elapsed_seconds,
                alloc_cpus=record.alloc_cpus,
                alloc_tres=record.alloc_tres,
                max_rss_bytes=record.max_rss_bytes,
                source=record.source,
            )
    return merged


class Annotator:
    """Usage of finished jobs (cached), expired credentials of unfinished ones."""

    def __init__(self) -> None:
        self._usage: dict[str, MeasuredUsage | None] = {}

    async def annotate(
        self,
        observation: Observation,
        state: JobState,
        client: SlurmClient,
        *,
        problem: str | None,
        where: str,
        log: SimJobLogger,
    ) -> Observation:
        """``observation`` of ``state`` with usage or the credentials' problem;
        ``where``: ``Slurm job <id> on <cluster>``."""
        if state.finished and observation.finished:
            usage = await self.usage(client, state, log)
            return dataclasses.replace(observation, usage=usage) if usage else observation
        if problem is not None and observation.state in (
            ObservedState.PENDING,
            ObservedState.RUNNING,
        ):  # the job runs on; its state is as last read
            return dataclasses.replace(
                observation, reason=Reason.CREDENTIALS_EXPIRED, message=f"{where}: {problem}"
            )
        return observation

    async def usage(
        self, client: SlurmClient, state: JobState, log: SimJobLogger
    ) -> MeasuredUsage | None:
        """The finished job's usage from accounting (read once per job), or None."""
        job_id = state.job_id
        if job_id in self._usage:
            return self._usage[job_id]
        usage = measured(state)
        if usage is None and isinstance(client, ReportingClient):
            try:
                record = (await client.usage([job_id])).get(job_id)
            except SlurmUnavailable as exc:
                log.warning("could not read the usage of Slurm job %s: %s", job_id, exc.message)
                return None  # not kept: the next look tries again
            usage = measured(record) if record is not None else None
        if len(self._usage) >= MAX_KEPT:
            self._usage.clear()
        self._usage[job_id] = usage
        return usage


class ClusterIdentity:
    """This Kubernetes cluster's identity: the uid of its kube-system namespace."""

    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube
        self._uid: str | None = None

    async def get(self) -> str | None:
        """The identity (read once); None if kube-system cannot be read for good (no such
        namespace, or RBAC refuses it) — the jobs' comments then name no cluster and no
        sweep ever cancels them. Raises ``kube.seam.Unavailable`` while the API server
        does not answer (the caller retries)."""
        if self._uid is None:
            try:
                uid = await self._kube.get_namespace_uid(IDENTITY_NAMESPACE)
            except Refused as exc:  # e.g. an older chart's RBAC: run on, without a sweep
                logger.warning(
                    "reading namespace %s refused (%s): Slurm jobs name no cluster and "
                    "the orphan sweep is off",
                    IDENTITY_NAMESPACE,
                    exc.message,
                )
                uid = None
            else:
                if uid is None:
                    logger.warning(
                        "namespace %s not found: Slurm jobs name no cluster and the orphan "
                        "sweep is off",
                        IDENTITY_NAMESPACE,
                    )
            self._uid = uid or ""
        return self._uid or None
