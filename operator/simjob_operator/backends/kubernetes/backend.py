"""The Kubernetes backend: one batch/v1 Job per SimJob.

``submit`` creates the Job built by ``manifests`` under its deterministic name;
AlreadyExists means an earlier operator run created it, and it is adopted when
its ``simjob.io/uid`` label is this SimJob's uid (a Job left by a deleted
SimJob of the same name blocks until the garbage collector removes it).
``observe`` takes the Job from the watch event that triggered the reconcile
(``sightings.Seen``, if it is this SimJob's Job) or GETs it, reads its pods (by
the Job's controller-uid label) only when the Job alone cannot tell
(``needs_pods``: a failed Job's exit code and reason, or why an active pod is not
running yet), and ``interpret`` (pure) maps them to an ``Observation``: the
Job's final conditions Complete/Failed decide the outcome, Failed with reason
DeadlineExceeded is a timeout, the pod's terminated state gives the exit code
and reason (e.g. OOMKilled), a pending pod gives the reason it waits, and a
ready (or succeeded) pod counted in the Job's status means it runs (ran).
``cancel`` deletes the Job (background propagation) and the SimJob's pods and
reports True only once none is left; likewise ``observe`` reports "absent"
only when neither the Job nor any pod labelled with the SimJob's uid exists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.data import WorkspaceStatus
from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import BackendRef, Grant
from simjob_operator.backends.base import RetryAfter, SubmitResult, Submitted
from simjob_operator.backends.kubernetes.manifests import build_job_manifest, job_name
from simjob_operator.backends.kubernetes.progress import ProgressReader
from simjob_operator.backends.kubernetes.volumes import workspace_of
from simjob_operator.core.phases import Observation, ObservedState
from simjob_operator.core.sightings import Seen
from simjob_operator.core.times import parse_time
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import AlreadyExists, KubeApi

Body = Mapping[str, Any]


def _true_conditions(job: Body) -> dict[str, Body]:
    conditions = (job.get("status") or {}).get("conditions") or []
    return {cond.get("type", ""): cond for cond in conditions if cond.get("status") == "True"}


def _container_status(pod: Body) -> Body:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == c.CONTAINER_NAME:
            return dict(status)
    return dict(statuses[0]) if statuses else {}


def _newest(pods: Sequence[Body]) -> Body | None:
    if not pods:
        return None
    return max(pods, key=lambda pod: (pod.get("metadata") or {}).get("creationTimestamp") or "")


def _pending_detail(pod: Body | None) -> tuple[str, str]:
    if pod is None:
        return Reason.STARTING, "waiting for the Job controller to create the pod"
    waiting = (_container_status(pod).get("state") or {}).get("waiting") or {}
    if waiting.get("reason"):
        return str(waiting["reason"]), str(waiting.get("message") or "the container is waiting")
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return str(cond.get("reason") or "Unschedulable"), str(cond.get("message") or "")
    return Reason.STARTING, "the pod is starting"


def _pods_ran(status: Body) -> bool:
    """The Job's status counts a pod that ran to success (the Complete condition
    comes a moment later)."""
    uncounted = status.get("uncountedTerminatedPods") or {}
    return bool(status.get("succeeded") or uncounted.get("succeeded"))


def needs_pods(job: Body) -> bool:
    """Whether ``interpret`` needs the Job's pods: the Job's status says neither
    the outcome with all its detail nor whether the pod runs. Pure."""
    conditions = _true_conditions(job)
    if "Complete" in conditions:
        return False
    if "Failed" in conditions:  # the exit code and reason are on the pod
        return conditions["Failed"].get("reason") != Reason.DEADLINE_EXCEEDED
    status = job.get("status") or {}
    if status.get("ready") or _pods_ran(status):
        return False
    # A pod exists (or failed) and is not ready: why (Unschedulable, image pull...)?
    uncounted = status.get("uncountedTerminatedPods") or {}
    return bool(status.get("active") or status.get("failed") or uncounted.get("failed"))


def interpret(job: Body | None, pods: Sequence[Body]) -> Observation:
    """What a Job and its pods say about the simulation; ``pods`` may be empty when
    ``needs_pods`` said the Job is enough. Pure."""
    if job is None:
        return Observation(ObservedState.ABSENT)
    status = job.get("status") or {}
    conditions = _true_conditions(job)
    pod = _newest(pods)
    container = _container_status(pod) if pod is not None else {}
    state = container.get("state") or {}
    terminated = state.get("terminated") or {}
    job_start = parse_time(status.get("startTime"))
    if "Complete" in conditions:
        return Observation(
            ObservedState.SUCCEEDED,
            exit_code=int(terminated.get("exitCode", 0)),
            reason=terminated.get("reason"),
            start_time=parse_time(terminated.get("startedAt")) or job_start,
            finish_time=parse_time(terminated.get("finishedAt"))
            or parse_time(status.get("completionTime")),
        )
    if "Failed" in conditions:
        failed = conditions["Failed"]
        if failed.get("reason") == Reason.DEADLINE_EXCEEDED:
            return Observation(
                ObservedState.DEADLINE_EXCEEDED,
                reason=Reason.DEADLINE_EXCEEDED,
                start_time=parse_time((state.get("running") or {}).get("startedAt"))
                or parse_time(terminated.get("startedAt"))
                or job_start,
                finish_time=parse_time(failed.get("lastTransitionTime")),
            )
        pod_status = (pod or {}).get("status") or {}
        exit_code = terminated.get("exitCode")
        return Observation(
            ObservedState.FAILED,
            exit_code=int(exit_code) if exit_code is not None else None,
            reason=terminated.get("reason") or pod_status.get("reason") or failed.get("reason"),
            message=failure_message(exit_code, terminated.get("message"))
            or pod_status.get("message")
            or (None if exit_code is not None else failed.get("message")),
            start_time=parse_time(terminated.get("startedAt")) or job_start,
            finish_time=parse_time(terminated.get("finishedAt"))
            or parse_time(failed.get("lastTransitionTime")),
        )
    running = state.get("running")
    pod_phase = ((pod or {}).get("status") or {}).get("phase")
    ran = pod_phase in ("Running", "Succeeded", "Failed") or _pods_ran(status)
    if running or ran or status.get("ready"):
        return Observation(
            ObservedState.RUNNING,
            start_time=parse_time((running or {}).get("startedAt"))
            or parse_time(terminated.get("startedAt")),
        )
    reason, message = _pending_detail(pod)
    return Observation(ObservedState.PENDING, reason=reason, message=message)


def runtime_limit(obs: Observation, record: SimJobRecord, now: datetime) -> Observation:
    """The runtime limit counts from the start of the simulation, never from the Job's
    creation (a Job's activeDeadlineSeconds includes the time its pod waited to be
    scheduled; the Job gets runtime + maxPendingSeconds as a backstop). Running past the
    grant's limit is a timeout decided here, with the pod still running. Pure."""
    grant = record.status.grant
    limit = grant.max_runtime_seconds if grant else record.status.effective_max_runtime_seconds
    if obs.state != ObservedState.RUNNING or limit is None:
        return obs
    start = obs.start_time or parse_time(record.status.start_time)
    if start is None:
        return obs
    left = limit - (now - start).total_seconds()
    if left > 0:
        return dataclasses.replace(obs, recheck_after=left)
    return Observation(
        ObservedState.DEADLINE_EXCEEDED,
        reason=Reason.DEADLINE_EXCEEDED,
        start_time=start,
        finish_time=start + timedelta(seconds=limit),
        still_running=True,
    )


def failure_message(exit_code: Any, tail: Any) -> str | None:
    """The message of a failed run: its exit code and the last lines of its output (the
    container's termination message, FallbackToLogsOnError). Pure."""
    if not tail:
        return None
    text = str(tail).strip()
    if exit_code is None:
        return text
    return f"the simulation exited with code {exit_code}; the last lines of its output:\n{text}"


def leftover_observation(pods: Sequence[Body]) -> Observation:
    """No Job: absent, unless pods of the SimJob are still there (e.g. terminating)."""
    if not pods:
        return Observation(ObservedState.ABSENT)
    phases = {((pod.get("status") or {}).get("phase")) for pod in pods}
    state = ObservedState.RUNNING if "Running" in phases else ObservedState.PENDING
    return Observation(
        state, reason="Terminating", message=f"{len(pods)} pod(s) of a deleted Job still exist"
    )


def _is_ours(job: Body | None, record: SimJobRecord) -> bool:
    labels = ((job or {}).get("metadata") or {}).get("labels") or {}
    return job is not None and labels.get(c.LABEL_UID) == record.uid


class KubernetesBackend:
    kind = c.JOB_KIND

    def __init__(
        self,
        kube: KubeApi,
        *,
        retry_delay: float = 1.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        progress: ProgressReader | None = None,
    ) -> None:
        self.kube = kube
        self.retry_delay = retry_delay
        self._now = now
        self.progress = progress

    def backend_id(self, record: SimJobRecord) -> str:
        return job_name(record.name)

    async def _own_job(self, record: SimJobRecord) -> tuple[Body | None, Body | None]:
        """(our Job, a foreign Job of the same name); at most one is set."""
        job = await self.kube.get_job(record.namespace, self.backend_id(record))
        if job is None:
            return None, None
        return (job, None) if _is_ours(job, record) else (None, job)

    def planned_ref(self, record: SimJobRecord) -> BackendRef:
        return BackendRef(kind=c.JOB_KIND, name=self.backend_id(record))

    def planned_workspace(self, record: SimJobRecord, grant: Grant) -> WorkspaceStatus | None:
        if record.spec is None:
            return None
        return workspace_of(
            record.spec, grant, namespace=record.namespace, name=record.name, uid=record.uid
        )

    async def submit(self, record: SimJobRecord, grant: Grant) -> SubmitResult:
        assert record.spec is not None
        name = self.backend_id(record)
        manifest = build_job_manifest(
            namespace=record.namespace,
            name=record.name,
            uid=record.uid,
            spec=record.spec,
            owner=record.owner,
            grant=grant,
        )
        ref = self.planned_ref(record)
        try:
            await self.kube.create_job(record.namespace, manifest)
        except AlreadyExists:
            ours, foreign = await self._own_job(record)
            if ours is not None:
                return Submitted(ref, created=False, message=f"adopted the existing Job {name}")
            if foreign is not None:
                other = ((foreign.get("metadata") or {}).get("labels") or {}).get(c.LABEL_UID)
                return RetryAfter(
                    self.retry_delay,
                    f"Job {name} belongs to another SimJob (uid {other}); waiting for its removal",
                )
            return RetryAfter(self.retry_delay, f"Job {name} is being deleted; retrying")
        return Submitted(ref, created=True, message=f"created Job {name}")

    async def observe(self, record: SimJobRecord, seen: Seen | None = None) -> Observation:
        if seen is not None and seen.nothing_for(record.resource_version):
            return Observation(ObservedState.ABSENT)  # just admitted: no Job was ever made
        job = seen.body if seen is not None and _is_ours(seen.body, record) else None
        if job is None:  # no event, a deleted or foreign Job: look it up
            job, _foreign = await self._own_job(record)
        if job is None:
            if self.progress is not None:
                self.progress.untrack(record.key)
            # No Job; but "absent" must also mean no pod of ours still terminating.
            leftovers = await self.kube.list_pods(record.namespace, f"{c.LABEL_UID}={record.uid}")
            return leftover_observation(leftovers)
        job_uid = str((job.get("metadata") or {}).get("uid"))
        if needs_pods(job):
            selector = f"{c.POD_LABEL_CONTROLLER_UID}={job_uid}"
            pods = await self.kube.list_pods(record.namespace, selector)
            observation = runtime_limit(interpret(job, pods), record, self._now())
        else:
            observation = runtime_limit(interpret(job, ()), record, self._now())
        self._follow_progress(record, job_uid, observation)
        return observation

    def _follow_progress(self, record: SimJobRecord, job_uid: str, obs: Observation) -> None:
        if self.progress is None:
            return
        if obs.state != ObservedState.RUNNING or obs.still_running:
            self.progress.untrack(record.key)
            return
        grant = record.status.grant
        interval = (grant.progress_interval_seconds if grant is not None else None) or 10
        self.progress.track(record.key, record.namespace, job_uid, float(interval))

    async def cancel(self, record: SimJobRecord) -> bool:
        job, _foreign = await self._own_job(record)
        if job is not None:
            uid = (job.get("metadata") or {}).get("uid")
            await self.kube.delete_job(record.namespace, self.backend_id(record), uid=uid)
        selector = f"{c.LABEL_UID}={record.uid}"
        pods = await self.kube.list_pods(record.namespace, selector)
        if pods:
            await self.kube.delete_pods(record.namespace, selector)
        # Gone only when a look found neither: a deleted Job may linger, pods terminate.
        return job is None and not pods
