"""A SimJob as a Slurm job and back: the pure translations of the Slurm backend.

``marker`` names a SimJob's Slurm job (``simjob-<uid>``: the job name that
``SlurmClient.find`` looks up, so a job submitted before a crash is adopted, never
submitted twice). ``job_spec`` turns a SimJob and its ``api.simjob.Grant`` (what the
tier granted at admission, including the tier's ``slurm`` section; never a re-read
tier) into a ``slurm_bridge.JobSpec``: --cpus-per-task (the grant's
``slurm.cpusPerTask`` or its cpu rounded up), --mem in MiB (the grant's
``slurm.memory`` or its memory), --time (the runtime limit in minutes, rounded up),
partition/QOS/account (the SimJob's ``spec.slurm`` over the grant's), the grant's GPUs
(``--gres=gpu:N`` or ``--gpus=N`` as the SlurmCluster's ``gpuRequest`` says) and a
comment naming the Kubernetes cluster and the SimJob (``core.orphans.job_comment``: the
orphan sweep's proof of ownership). ``interpret``
maps a ``slurm_bridge.JobState`` to a ``core.phases.Observation`` (see the table in
docs/slurm.md); ``failure_message`` says how a job failed, with the tail of its
output. ``job_id_of`` reads the job id recorded in status.backendRef, ``login_of``
whose credentials the job runs under. Used by ``backend`` and ``supervisor``.
"""

from __future__ import annotations

import math

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import Grant, SimJobSlurmSpec, SimJobSpec
from simjob_operator.api.simtier import SlurmTierSpec
from simjob_operator.backends.slurm.credentials import DEFAULT_LOGIN, Login
from simjob_operator.core.observations import Observation, ObservedState
from simjob_operator.core.orphans import job_comment
from simjob_operator.core.quantities import cpu_cores, memory_bytes
from simjob_operator.core.view import SimJobRecord
from slurm_bridge import JobKind, JobSpec, JobState

MIB = 2**20
# Slurm's pending reasons that only say "about to start" (the rest is shown to the user).
ROUTINE_SLURM_REASONS = frozenset({"None", ""})
# Reasons of the failed states (the issue: "reason from the state").
FAILURE_REASONS = {
    "FAILED": Reason.ERROR,
    "OUT_OF_MEMORY": Reason.OOM_KILLED,
    "NODE_FAIL": "NodeFail",
    "BOOT_FAIL": "BootFail",
    "RECONFIG_FAIL": "ReconfigFail",
}
# What Slurm's commonest pending reasons mean, for the SimJob's message.
PENDING_EXPLAINED = {
    "Resources": "waits for resources in use by other jobs (CPUs, memory{gpus})",
    "Priority": "waits behind jobs of higher priority",
    "ReqNodeNotAvail": "waits for a node it needs, which is down, drained or reserved",
    "PartitionNodeLimit": "asks more nodes than its partition allows per job",
    "QOSMaxGRESPerUser": "waits: its QOS allows this user no more GPUs (GRES) at once",
    "JobHeldUser": "is held by its user (scontrol release to let it run)",
    "JobHeldAdmin": "is held by an administrator",
}


def marker(uid: str) -> str:
    """The Slurm job name of the SimJob with ``uid``."""
    return f"{c.SLURM_MARKER_PREFIX}{uid}"


def memory_mib(quantity: str) -> int:
    """A memory quantity in whole MiB, rounded up (at least 1)."""
    return max(1, math.ceil(memory_bytes(quantity) / MIB))


def job_spec(
    *,
    namespace: str,
    name: str,
    uid: str,
    spec: SimJobSpec,
    slurm: SimJobSlurmSpec,
    grant: Grant,
    cluster_id: str | None = None,
) -> JobSpec:
    """The Slurm job of a SimJob, run with exactly its ``grant``; ``cluster_id`` (the
    Kubernetes cluster's identity) goes into the job's comment. Raises
    ``slurm_bridge.InvalidJobSpec`` for values that cannot be passed safely (newlines,
    a relative workingDir...)."""
    tier = grant.slurm or SlurmTierSpec()
    cpus = tier.cpus_per_task or max(1, math.ceil(cpu_cores(grant.cpu)))
    return JobSpec(
        marker=marker(uid),
        command=list(spec.command),
        args=list(spec.args),
        env={var.name: var.value for var in spec.env},
        working_dir=spec.working_dir,
        comment=job_comment(cluster_id, namespace, name),
        cpus_per_task=cpus,
        memory_mib=memory_mib(tier.memory or grant.memory),
        time_limit_seconds=grant.max_runtime_seconds,
        partition=slurm.partition or tier.partition,
        qos=slurm.qos or tier.qos,
        account=slurm.account or tier.account,
        gpus=grant.gpu or None,
    )


def _what_happened(state: JobState) -> str:
    if state.exit_code is not None:
        return f"exited with code {state.exit_code}"
    if state.signal:
        return f"was killed by signal {state.signal}"
    return "failed"


def failure_message(state: JobState, tail: str) -> str:
    """How a failed job ended, with the (bounded) tail of its output."""
    message = f"the simulation {_what_happened(state)} (Slurm job {state.job_id}: {state.state})"
    if state.state == "OUT_OF_MEMORY":
        message += " (out of memory: killed at its memory limit)"
    tail = tail.strip("\n")
    return f"{message}; last output:\n{tail}" if tail else message


def pending_message(job: str, state: JobState, gpus: int) -> str:
    """Why a queued job waits, in words, with Slurm's own reason."""
    reason = state.reason or ""
    explained = PENDING_EXPLAINED.get(reason)
    if explained is None:
        return f"{job} is {state.state.lower()} (reason {reason})"
    asked = f" or GPUs: it asks {gpus}" if gpus else ""
    return f"{job} {explained.format(gpus=asked)} (Slurm reason {reason})"


def interpret(state: JobState, *, stopping: bool, cluster: str, gpus: int = 0) -> Observation:
    """What a Slurm job state means for the SimJob. Pure.

    ``stopping``: we asked for the job to be cancelled (spec.cancel, deletion), so a
    cancelled or vanished job means "nothing is left" (absent), not an outside event.
    A failed job's message is completed with its output by the caller
    (``failure_message``). ``gpus``: how many GPUs the job asked (for the message of a
    job waiting for resources).
    """
    job = f"Slurm job {state.job_id} on {cluster}"
    kind = state.kind
    if kind is JobKind.QUEUED:
        reason = state.reason or ""
        if reason in ROUTINE_SLURM_REASONS:
            return Observation(ObservedState.PENDING, reason=Reason.STARTING)
        return Observation(
            ObservedState.PENDING, reason=reason, message=pending_message(job, state, gpus)
        )
    if kind is JobKind.RUNNING:
        return Observation(ObservedState.RUNNING, start_time=state.start_time)
    if kind is JobKind.SUCCEEDED:
        return Observation(
            ObservedState.SUCCEEDED,
            exit_code=state.exit_code if state.exit_code is not None else 0,
            start_time=state.start_time,
            finish_time=state.end_time,
        )
    if kind is JobKind.FAILED:
        return Observation(
            ObservedState.FAILED,
            exit_code=state.exit_code,
            reason=FAILURE_REASONS.get(state.state, Reason.ERROR),
            message=failure_message(state, ""),
            start_time=state.start_time,
            finish_time=state.end_time,
        )
    if kind is JobKind.TIMED_OUT:
        return Observation(
            ObservedState.DEADLINE_EXCEEDED,
            reason=Reason.DEADLINE_EXCEEDED,
            start_time=state.start_time,
            finish_time=state.end_time,
        )
    if kind is JobKind.CANCELLED:
        if stopping:
            return Observation(ObservedState.ABSENT)
        return Observation(
            ObservedState.CANCELLED,
            reason=Reason.CANCELLED_IN_SLURM,
            message=f"{job} was cancelled in Slurm, not through SimJob "
            "(e.g. scancel by its user or an administrator)",
            start_time=state.start_time,
            finish_time=state.end_time,
        )
    if kind is JobKind.MISSING:
        if stopping:
            return Observation(ObservedState.ABSENT)
        return Observation(
            ObservedState.FAILED,
            reason=Reason.BACKEND_LOST,
            message=f"{job} is known neither to squeue nor to accounting any more "
            f"(answered by {state.source or 'Slurm'})",
        )
    # JobKind.UNKNOWN: a state this operator does not know; never guess an outcome.
    return Observation(
        ObservedState.PENDING,
        reason="UnknownSlurmState",
        message=f"{job} is in state {state.state}, which SimJob does not know",
    )


def job_id_of(record: SimJobRecord) -> str | None:
    """The Slurm job id recorded in status.backendRef, if any."""
    ref = record.status.backend_ref
    if ref is None or ref.kind != c.SLURM_JOB_KIND or not ref.id:
        return None
    return ref.id


def login_of(record: SimJobRecord) -> Login:
    slurm = record.spec.slurm if record.spec is not None else None
    if slurm is None or slurm.credentials_secret_ref is None:
        return DEFAULT_LOGIN
    return Login(record.namespace, slurm.credentials_secret_ref.name)
