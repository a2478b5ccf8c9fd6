"""Whether a SlurmCluster's Slurm answers: one wrapper around its clients, one condition.

``ReportingClient`` wraps every ``slurm_bridge.SlurmClient`` that ``sites.Sites``
hands out and reports the outcome of each call to the cluster's ``Reachability``:
an answer (a refusal, ``SlurmRejected``, is an answer too) means reachable, a
``SlurmUnavailable`` unreachable. No other code reports after a call; a
configuration problem found before any call (no Secret, an unusable key) is reported
by the poller with ``Reachability.misconfigured``. ``Reachability`` keeps the wanted
``Reachable`` condition and wakes its listener (the cluster's ``poller.ClusterPoller``)
when it changes; the poller's task then calls ``Reachability.write``, which patches
the SlurmCluster's status through ``kube.seam.KubeApi.patch_slurmcluster_status``
(``lastTransitionTime`` moves with its status, ``reachable_condition``, pure).
When the cluster's own credentials carry an SSH certificate, the same write shows it
(``status.certificate``: key id, principals, validAfter/validBefore) and the
``CredentialsExpired`` condition (``credentials_condition``, pure): True once the
certificate's validity has ended by our clock or the login node refused it as expired.
Neighbours: ``sites`` (wraps its clients), ``poller`` (writes the condition).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.slurmcluster import CertificateStatus, SlurmClusterCondition
from simjob_operator.core.times import format_time
from simjob_operator.kube.seam import Body, KubeApi, KubeError
from slurm_bridge import (
    JobSpec,
    JobState,
    ListedJob,
    SlurmClient,
    SlurmRejected,
    SlurmUnavailable,
    list_jobs,
)
from slurm_bridge.clients import DEFAULT_TAIL_BYTES, DEFAULT_TAIL_LINES

logger = logging.getLogger("simjob_operator.slurm")
MESSAGE_LIMIT = 1024
ANSWERED = "Slurm answered"
T = TypeVar("T")


def reachable_condition(
    ok: bool, message: str, *, previous: Mapping[str, Any] | None, now: datetime, generation: int
) -> dict[str, object]:
    """The Reachable condition; its lastTransitionTime moves only with its status. A
    message ``"ConfigurationError: ..."`` gives that reason. Pure."""
    status = "True" if ok else "False"
    transition = _transition(previous, status, now)
    if ok:
        reason = Reason.SLURM_REACHABLE
    elif message.startswith(f"{Reason.SLURM_CONFIG}: "):
        reason, message = Reason.SLURM_CONFIG, message.removeprefix(f"{Reason.SLURM_CONFIG}: ")
    else:
        reason = Reason.SLURM_UNREACHABLE
    return SlurmClusterCondition(
        type=c.COND_REACHABLE,
        status=status,
        reason=reason,
        message=message[:MESSAGE_LIMIT],
        last_transition_time=transition,
        observed_generation=generation,
    ).to_api()


def _transition(previous: Mapping[str, Any] | None, status: str, now: datetime) -> str:
    if previous is not None and previous.get("status") == status:
        return str(previous.get("lastTransitionTime") or format_time(now))
    return format_time(now)


def credentials_condition(
    expired: str | None, *, previous: Mapping[str, Any] | None, now: datetime, generation: int
) -> dict[str, object]:
    """The CredentialsExpired condition: ``expired`` is the message saying why the
    certificate cannot be used, None when it is valid. Pure."""
    status = "True" if expired else "False"
    return SlurmClusterCondition(
        type=c.COND_CREDENTIALS_EXPIRED,
        status=status,
        reason=Reason.CREDENTIALS_EXPIRED if expired else Reason.CREDENTIALS_VALID,
        message=(expired or "the SSH certificate is within its validity window")[:MESSAGE_LIMIT],
        last_transition_time=_transition(previous, status, now),
        observed_generation=generation,
    ).to_api()


def certificate_status(
    secret: str,
    key_id: str,
    principals: Iterable[str],
    after: datetime | None,
    before: datetime | None,
) -> dict[str, object]:
    """``status.certificate`` of a SlurmCluster. Pure."""
    return CertificateStatus(
        secret=secret,
        key_id=key_id,
        principals=list(principals),
        valid_after=format_time(after) if after is not None else None,
        valid_before=format_time(before) if before is not None else None,
    ).to_api()


class Reachability:
    """The wanted ``Reachable`` condition of one SlurmCluster, and its status writer."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self.wanted: tuple[bool, str] | None = None  # (reachable, message)
        # status.certificate and the CredentialsExpired message (None: valid), or None
        # when the cluster's credentials have no certificate.
        self.certificate: tuple[dict[str, object], str | None] | None = None
        self._written: tuple[object, ...] | None = None
        self._listeners: list[Callable[[], None]] = []

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the wanted condition changes."""
        self._listeners.append(callback)

    def answered(self) -> None:
        self._want(True, ANSWERED)

    def unreachable(self, message: str) -> None:
        self._want(False, message)

    def misconfigured(self, message: str) -> None:
        """The cluster's own credentials cannot work (no retry of a call helps)."""
        self._want(False, f"{Reason.SLURM_CONFIG}: {message}")

    def certificate_seen(self, status: dict[str, object] | None, expired: str | None) -> None:
        """The cluster's own certificate (``certificate_status``; None: it has none) and
        why it cannot be used (None: it is valid)."""
        wanted = (status, expired) if status is not None else None
        if wanted != self.certificate:
            self.certificate = wanted
            self._changed()

    def _want(self, ok: bool, message: str) -> None:
        wanted = (ok, message)
        if wanted != self.wanted:
            self.wanted = wanted
            self._changed()

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()

    async def write(
        self, kube: KubeApi, *, generation: int, status: Mapping[str, Any], now: datetime
    ) -> Body | None:
        """Patch the wanted condition into the SlurmCluster's status (``status``: the
        stored one) unless it was written for this generation already; the patched
        SlurmCluster, or None when nothing was written (a failed write is retried by
        the next call)."""
        if self.wanted is None:
            return None
        ok, message = self.wanted
        written = (ok, message, self.certificate, generation)
        if self._written == written:
            return None
        conditions = status.get("conditions") or []
        previous = _condition(conditions, c.COND_REACHABLE)
        condition = reachable_condition(
            ok, message, previous=previous, now=now, generation=generation
        )
        patch: Body = {"conditions": [condition], "observedGeneration": generation}
        patch["certificate"] = None
        if self.certificate is not None:
            certificate, expired = self.certificate
            before = _condition(conditions, c.COND_CREDENTIALS_EXPIRED)
            patch["conditions"].append(
                credentials_condition(expired, previous=before, now=now, generation=generation)
            )
            patch["certificate"] = certificate
        try:
            body = await kube.patch_slurmcluster_status(self.cluster, patch)
        except KubeError as exc:
            logger.warning("[SlurmCluster %s] status write failed: %s", self.cluster, exc.message)
            return None
        self._written = written
        logger.info("[SlurmCluster %s] Reachable=%s %s", self.cluster, condition["status"], message)
        return body


def _condition(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((cond for cond in conditions if cond.get("type") == type_), None)


class ReportingClient:
    """A ``SlurmClient`` that reports every call's outcome to a ``Reachability``."""

    def __init__(self, inner: SlurmClient, reachability: Reachability) -> None:
        self.inner = inner
        self.reachability = reachability

    async def _report(self, call: Awaitable[T]) -> T:
        try:
            result = await call
        except SlurmUnavailable as exc:
            self.reachability.unreachable(exc.message)
            raise
        except SlurmRejected:
            self.reachability.answered()
            raise
        self.reachability.answered()
        return result

    async def submit(self, spec: JobSpec) -> str:
        return await self._report(self.inner.submit(spec))

    async def query(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        return await self._report(self.inner.query(job_ids))

    async def cancel(self, job_id: str) -> JobState:
        return await self._report(self.inner.cancel(job_id))

    async def find(self, marker: str) -> str | None:
        return await self._report(self.inner.find(marker))

    async def output_tail(
        self,
        job_id: str,
        lines: int = DEFAULT_TAIL_LINES,
        max_bytes: int = DEFAULT_TAIL_BYTES,
        *,
        directory: str | None = None,
    ) -> str:
        tail = self.inner.output_tail(job_id, lines, max_bytes, directory=directory)
        return await self._report(tail)

    async def ping(self) -> None:
        await self._report(self.inner.ping())

    async def usage(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        """Accounting records with usage (``CliSlurmClient.usage``); {} where the client
        has no such call."""
        usage = getattr(self.inner, "usage", None)
        if usage is None:
            return {}
        result: dict[str, JobState] = await self._report(usage(job_ids))
        return result

    async def list_jobs(self, name_prefix: str) -> list[ListedJob] | None:
        """The login's unfinished jobs named ``name_prefix...`` (``slurm_bridge.list_jobs``
        through the client's runner); None where the client has no runner (pyslurm)."""
        runner = getattr(self.inner, "runner", None)
        if runner is None:
            return None
        return await self._report(list_jobs(runner, name_prefix))

    async def close(self) -> None:
        await self.inner.close()
