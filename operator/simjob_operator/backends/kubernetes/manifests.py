"""The batch/v1 Job that runs one SimJob on Kubernetes: pure builders.

``build_job_manifest`` turns a SimJob and the ``Grant`` recorded at its admission
into a Job dict: a deterministic name (``job_name``), an owner
reference (controller, blockOwnerDeletion) for garbage collection, the
``simjob.io/*`` labels that let ``backends.kubernetes_backend`` find and adopt
it, requests = limits = the tier, the runtime as activeDeadlineSeconds, no
retries, and a pod that passes the ``restricted`` Pod Security Standard.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.simjob import Grant, SimJobSpec
from simjob_operator.backends.kubernetes.volumes import data_volumes

MAX_NAME_LENGTH = 63  # Job names become a pod label value
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def job_name(simjob_name: str) -> str:
    """``sj-<name>``; names that are too long or not DNS labels get a hash suffix.

    Deterministic, so a restarted operator finds the Job it created before.
    """
    candidate = f"{c.JOB_NAME_PREFIX}{simjob_name}"
    if len(candidate) <= MAX_NAME_LENGTH and _DNS_LABEL.match(candidate):
        return candidate
    cleaned = re.sub(r"[^a-z0-9-]", "-", simjob_name.lower())
    suffix = _digest(simjob_name)
    room = MAX_NAME_LENGTH - len(c.JOB_NAME_PREFIX) - len(suffix) - 1
    return f"{c.JOB_NAME_PREFIX}{cleaned[:room]}-{suffix}"


def label_value(text: str) -> str:
    """A valid label value for ``text`` (truncated and hashed when needed)."""
    if len(text) <= MAX_NAME_LENGTH and _LABEL_VALUE.match(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text)
    suffix = _digest(text)
    head = cleaned[: MAX_NAME_LENGTH - len(suffix) - 1].strip("-_.")
    return f"{head}-{suffix}" if head else suffix


def job_labels(*, name: str, uid: str, owner: str, tier: str) -> dict[str, str]:
    return {
        c.LABEL_NAME: label_value(name),
        c.LABEL_OWNER: label_value(owner),
        c.LABEL_TIER: label_value(tier),
        c.LABEL_UID: uid,
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
    }


def owner_reference(*, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.SIMJOB_KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def resources(grant: Grant) -> dict[str, dict[str, str]]:
    """Requests = limits = the grant (Guaranteed QoS), plus GPUs when any."""
    amounts = {"cpu": grant.cpu, "memory": grant.memory}
    if grant.gpu > 0:
        amounts[c.GPU_RESOURCE] = str(grant.gpu)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def deadline_seconds(grant: Grant) -> int:
    """The Job's activeDeadlineSeconds: a backstop only. It counts from the Job's start,
    pending time included, so it is the runtime plus maxPendingSeconds; the operator
    enforces the runtime itself from the moment the simulation started
    (``backend.runtime_limit``) and maxPendingSeconds from admission."""
    pending = grant.max_pending_seconds or c.DEFAULT_MAX_PENDING_SECONDS
    return grant.max_runtime_seconds + pending


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": c.POD_RUN_AS_USER,
        "runAsGroup": c.POD_RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def build_job_manifest(
    *,
    namespace: str,
    name: str,
    uid: str,
    spec: SimJobSpec,
    owner: str,
    grant: Grant,
) -> dict[str, Any]:
    """The Job for SimJob ``namespace/name`` (uid ``uid``). Pure and deterministic."""
    labels = job_labels(name=name, uid=uid, owner=owner, tier=spec.tier)
    user_labels = dict(spec.pod_metadata.labels) if spec.pod_metadata else {}
    user_annotations = dict(spec.pod_metadata.annotations) if spec.pod_metadata else {}
    container: dict[str, Any] = {
        "name": c.CONTAINER_NAME,
        "image": spec.image,
        "command": list(spec.command),
        "resources": resources(grant),
        "securityContext": container_security_context(),
        # A failed run's last lines of output become its termination message, which
        # the backend puts into status.message (kubelet: at most 80 lines / 2 KiB).
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.args:
        container["args"] = list(spec.args)
    volumes, mounts, data_env = data_volumes(spec, grant, namespace=namespace, name=name, uid=uid)
    env = [*data_env, *({"name": var.name, "value": var.value} for var in spec.env)]
    if env:
        container["env"] = env
    if mounts:
        container["volumeMounts"] = mounts
    if spec.working_dir:
        container["workingDir"] = spec.working_dir
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
    }
    if volumes:
        pod_spec["volumes"] = volumes
        # The workspace is written by the pod's non-root user: its group owns it.
        pod_spec["securityContext"]["fsGroup"] = c.POD_RUN_AS_USER
    if grant.priority_class_name:
        pod_spec["priorityClassName"] = grant.priority_class_name
    if grant.node_selector:
        pod_spec["nodeSelector"] = dict(grant.node_selector)
    if grant.tolerations:
        pod_spec["tolerations"] = [toleration.to_api() for toleration in grant.tolerations]
    template_meta: dict[str, Any] = {"labels": {**user_labels, **labels}}
    if user_annotations:
        template_meta["annotations"] = user_annotations
    return {
        "apiVersion": c.JOB_API_VERSION,
        "kind": c.JOB_KIND,
        "metadata": {
            "name": job_name(name),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(name=name, uid=uid)],
        },
        "spec": {
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": deadline_seconds(grant),
            "template": {"metadata": template_meta, "spec": pod_spec},
        },
    }
