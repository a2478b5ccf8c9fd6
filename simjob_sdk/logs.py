"""Where a SimJob's output text comes from: the Job's pod (Kubernetes) or the batch
output file (Slurm).

Kubernetes: the pod of the SimJob's Job (``status.backendRef.name``; pods carry the label
``batch.kubernetes.io/job-name``), newest first, container ``simulation``, read through
core/v1 ``pods/log`` (``follow`` streams until the container ends). Slurm: the seam in
``simjob_sdk.slurm`` (``read_batch_output``); ``follow`` re-reads it every few seconds
until the SimJob finishes and yields what is new. Used by
``simjob_sdk.client.SimJobClient.logs``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from simjob_operator.api import names as c
from simjob_sdk.connection import Apis
from simjob_sdk.errors import NotFound, judged
from simjob_sdk.objects import SimJobObject
from simjob_sdk.slurm import SlurmAccess, read_batch_output

SLURM_FOLLOW_SECONDS = 2.0


def _pod_name(apis: Apis, job: SimJobObject) -> str:
    ref = job.status.backend_ref
    if ref is None or not ref.name:
        raise NotFound(f"SimJob {job.namespace}/{job.name} has no Job yet (phase {job.phase})")
    with judged(f"LIST pods of Job {job.namespace}/{ref.name}"):
        pods = apis.core.list_namespaced_pod(
            job.namespace, label_selector=f"{c.POD_LABEL_JOB_NAME}={ref.name}"
        )
    items: list[Any] = list(pods.items or [])
    if not items:
        raise NotFound(f"Job {job.namespace}/{ref.name} has no pod (yet, or any more)")
    newest = max(items, key=lambda pod: (pod.metadata.creation_timestamp, pod.metadata.name))
    return str(newest.metadata.name)


def pod_logs(apis: Apis, job: SimJobObject, *, follow: bool) -> Iterator[str]:
    """The simulation container's output, line by line (without newlines)."""
    pod = _pod_name(apis, job)
    with judged(f"GET logs of pod {job.namespace}/{pod}"):
        response: Any = apis.core.read_namespaced_pod_log(
            pod,
            job.namespace,
            container=c.CONTAINER_NAME,
            follow=follow,
            _preload_content=False,
        )
        try:
            pending = b""
            for chunk in response.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")
        finally:
            response.release_conn()


def slurm_logs(
    access: SlurmAccess | None,
    job: SimJobObject,
    *,
    follow: bool,
    refresh: Callable[[], SimJobObject],
) -> Iterator[str]:
    """The Slurm batch output, line by line; with ``follow`` until the SimJob finishes."""
    seen = 0
    pending = b""
    while True:
        data = read_batch_output(access, job)
        pending += data[seen:]
        seen = len(data)
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace")
        if not follow or job.finished:
            break
        time.sleep(SLURM_FOLLOW_SECONDS)
        job = refresh()
    if pending:
        yield pending.decode(errors="replace")
