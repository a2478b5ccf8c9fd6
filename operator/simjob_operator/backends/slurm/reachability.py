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
Neighbours: ``sites`` (wraps its clients), ``poller`` (writes the condition).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.slurmcluster import SlurmClusterCondition
from simjob_operator.core.times import format_time
from simjob_operator.kube.seam import Body, KubeApi, KubeError
from slurm_bridge import JobSpec, JobState, SlurmClient, SlurmRejected, SlurmUnavailable
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
    if previous is not None and previous.get("status") == status:
        transition = str(previous.get("lastTransitionTime") or format_time(now))
    else:
        transition = format_time(now)
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


class Reachability:
    """The wanted ``Reachable`` condition of one SlurmCluster, and its status writer."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self.wanted: tuple[bool, str] | None = None  # (reachable, message)
        self._written: tuple[bool, str, int] | None = None
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

    def _want(self, ok: bool, message: str) -> None:
        wanted = (ok, message)
        if wanted != self.wanted:
            self.wanted = wanted
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
        if self._written == (ok, message, generation):
            return None
        previous = _condition(status.get("conditions") or [], c.COND_REACHABLE)
        condition = reachable_condition(
            ok, message, previous=previous, now=now, generation=generation
        )
        patch: Body = {"conditions": [condition], "observedGeneration": generation}
        try:
            body = await kube.patch_slurmcluster_status(self.cluster, patch)
        except KubeError as exc:
            logger.warning("[SlurmCluster %s] status write failed: %s", self.cluster, exc.message)
            return None
        self._written = (ok, message, generation)
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
        self, job_id: str, lines: int = DEFAULT_TAIL_LINES, max_bytes: int = DEFAULT_TAIL_BYTES
    ) -> str:
        return await self._report(self.inner.output_tail(job_id, lines, max_bytes))

    async def ping(self) -> None:
        await self._report(self.inner.ping())

    async def close(self) -> None:
        await self.inner.close()
