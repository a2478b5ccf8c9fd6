"""Removing a run's expired outputs from a claim: a small batch/v1 Job per removal.

The operator cannot reach the files of a PersistentVolume itself, so ``ClaimCleaner``
(a ``core.retention.OutputRemover``) runs ``removal_job`` — a busybox pod that mounts the
same claim and removes exactly the run's sub-path — and reports ``Removing`` until the
Job ended, then ``Removed`` (Complete) or ``Refused`` (Failed; the pod's last output
lines say why). The Job's name is derived from the SimJob's uid (``removal_job_name``),
so a restarted operator adopts the Job it created before and creates nothing twice; it
is owned by the SimJob (garbage-collected with it) and deletes itself an hour after it
ended (``ttlSecondsAfterFinished``: should the operator only look after that, the
removal runs once more and finds nothing to remove).

The path is checked twice: here (``core.retention.check_sub_path``: relative, plain
names, no ``..``) and in the pod (``REMOVE_PROGRAM``), on the volume by real path: the
sub-path is passed as an argument (never spliced into the program), every directory on
the way is entered with ``cd -P`` and must be the real child of the previous one (a
symlink planted in the claim is refused, even one pointing inside), the last component
must not be a symlink, and ``rm -rf`` runs from its real parent. The pod passes the
``restricted`` Pod Security Standard (uid 65532, fsGroup 65532 like the simulation's
pods, so it may remove what they wrote) and runs where the grant placed the run
(nodeSelector, tolerations). Pure builders plus one small class over ``kube.seam``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from simjob_operator.api import names as c
from simjob_operator.api.data import WorkspaceStatus
from simjob_operator.api.simjob import Grant
from simjob_operator.backends.kubernetes.manifests import (
    container_security_context,
    owner_reference,
    pod_security_context,
)
from simjob_operator.core.retention import (
    Refused,
    Removal,
    Removed,
    Removing,
    UnsafeOutputPath,
    check_sub_path,
)
from simjob_operator.core.settings import DEFAULT, Retention
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import AlreadyExists, KubeApi

LABEL_OUTPUTS_OF: Final = f"{c.GROUP}/outputs-of"  # the SimJob uid whose outputs go
CLAIM_MOUNT: Final = "/simjob/claim"
JOB_TTL_SECONDS: Final = 3600
JOB_DEADLINE_SECONDS: Final = 600
EXIT_REFUSED: Final = 3

# sh -c REMOVE_PROGRAM sh <claim mount> <sub-path>. Exit 3: refused, nothing removed.
REMOVE_PROGRAM: Final = r"""
set -u
fail() { printf 'simjob-outputs: refused: %s\n' "$1" >&2; exit 3; }
say() { echo "$1"; echo "$1" > /dev/termination-log 2>/dev/null || true; }
rel=$2
case "$rel" in ''|/*|-*|*//*|*/) fail "'$rel' is not a relative path" ;; esac
cd -P -- "$1" || exit 1
here=$(pwd -P) || exit 1
set -f
IFS=/
set -- $rel
unset IFS
while [ "$#" -gt 1 ]; do
  case "$1" in .|..|-*) fail "'$rel': component '$1' is not allowed" ;; esac
  [ -L "$1" ] && fail "'$rel': '$1' is a symlink"
  if [ ! -d "$1" ]; then say "'$rel' did not exist"; exit 0; fi
  cd -P -- "$1" || exit 1
  now=$(pwd -P) || exit 1
  [ "$now" = "${here%/}/$1" ] || fail "'$rel': '$1' leaves the workspace"
  here=$now
  shift
done
case "$1" in .|..|-*) fail "'$rel': component '$1' is not allowed" ;; esac
[ -L "$1" ] && fail "'$rel' is a symlink"
if [ ! -e "$1" ]; then say "'$rel' did not exist"; exit 0; fi
rm -rf -- "./$1" || exit 1
[ -e "$1" ] && { echo "simjob-outputs: '$rel' is still there" >&2; exit 1; }
say "removed '$rel'"
"""


def removal_job_name(uid: str) -> str:
    """``sjrm-<uid>``: deterministic, so a restart adopts the Job (41 characters)."""
    return f"sjrm-{uid}"


def removal_job(
    *,
    namespace: str,
    name: str,
    uid: str,
    claim: str,
    path: str,
    grant: Grant | None,
    image: str,
    pull_policy: str = DEFAULT.retention.removal_pull_policy,
) -> dict[str, Any]:
    """The Job that removes ``path`` from ``claim`` for SimJob ``namespace/name``. Pure;
    raises ``UnsafeOutputPath`` for a path that could leave the claim."""
    check_sub_path(path)
    labels = {LABEL_OUTPUTS_OF: uid, c.LABEL_MANAGED_BY: c.MANAGED_BY}
    amounts = {"cpu": "50m", "memory": "32Mi"}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {**pod_security_context(), "fsGroup": c.POD_RUN_AS_USER},
        "containers": [
            {
                "name": "remove-outputs",
                "image": image,
                "imagePullPolicy": pull_policy,
                "command": ["sh", "-c", REMOVE_PROGRAM, "sh", CLAIM_MOUNT, path],
                "resources": {"requests": dict(amounts), "limits": dict(amounts)},
                "securityContext": container_security_context(),
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "claim", "mountPath": CLAIM_MOUNT}],
            }
        ],
        "volumes": [{"name": "claim", "persistentVolumeClaim": {"claimName": claim}}],
    }
    if grant is not None and grant.node_selector:
        pod_spec["nodeSelector"] = dict(grant.node_selector)
    if grant is not None and grant.tolerations:
        pod_spec["tolerations"] = [toleration.to_api() for toleration in grant.tolerations]
    return {
        "apiVersion": c.JOB_API_VERSION,
        "kind": c.JOB_KIND,
        "metadata": {
            "name": removal_job_name(uid),
            "namespace": namespace,
            "labels": labels,
            "annotations": {f"{c.GROUP}/outputs-path": f"{claim}:{path}"},
            "ownerReferences": [owner_reference(name=name, uid=uid)],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def _ended(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Job's Complete or Failed condition, once it ended."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return dict(cond)
    return None


def pod_output(pods: list[dict[str, Any]]) -> str:
    """The removal pod's termination message (its last lines of output). Pure."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if terminated.get("message"):
                return str(terminated["message"]).strip()
    return ""


class ClaimCleaner:
    """``OutputRemover`` for outputs in a PersistentVolumeClaim (``status.workspace``
    with ``claimName`` and ``path``)."""

    def __init__(self, kube: KubeApi, settings: Retention = DEFAULT.retention) -> None:
        self.kube = kube
        self.image = settings.removal_image
        self.pull_policy = settings.removal_pull_policy
        self.poll = settings.removal_poll

    async def remove(self, record: SimJobRecord, workspace: WorkspaceStatus) -> Removal:
        if workspace.claim_name is None or workspace.path is None:
            return Refused("status.workspace names no claim and path")
        try:
            manifest = removal_job(
                namespace=record.namespace,
                name=record.name,
                uid=record.uid,
                claim=workspace.claim_name,
                path=workspace.path,
                grant=record.status.grant,
                image=self.image,
                pull_policy=self.pull_policy,
            )
        except UnsafeOutputPath as exc:
            return Refused(str(exc))
        name = removal_job_name(record.uid)
        job = await self.kube.get_job(record.namespace, name)
        if job is None:
            try:
                job = await self.kube.create_job(record.namespace, manifest)
            except AlreadyExists:  # created meanwhile (another look): the next look reads it
                return Removing(self.poll, f"Job {name} was just created")
        labels = (job.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_OUTPUTS_OF) != record.uid:
            return Refused(f"Job {name} exists and is not this SimJob's removal")
        ended = _ended(job)
        where = f"{workspace.claim_name}:{workspace.path}"
        if ended is None:
            return Removing(self.poll, f"Job {name} removes {where}")
        pods = await self.kube.list_pods(record.namespace, f"{LABEL_OUTPUTS_OF}={record.uid}")
        output = pod_output(pods)
        if ended.get("type") == "Complete":
            return Removed(f"{where}: {output or 'removed'} (Job {name})")
        why = output or f"{ended.get('reason') or 'Failed'}: {ended.get('message') or 'it failed'}"
        return Refused(f"Job {name} did not remove {where}: {why}")
