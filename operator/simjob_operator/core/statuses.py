"""The status a verdict produces: conditions, timestamps, usage, and the patch.

``phases.next_phase`` decides *what* happens; ``build_status`` writes it down as
a ``models.SimJobStatus`` (standard conditions whose lastTransitionTime only
moves when their status changes, queuedTime/startTime/completionTime, exit code,
usage = wall time x granted CPUs, GPUs and GiB; so far while running, when a write
happens anyway), and ``status_patch`` reduces old -> new to a JSON
merge patch (``None`` deletes a key). Pure; used by ``reconciling`` and
``admitting``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.data import Progress, WorkspaceStatus
from simjob_operator.api.simjob import BackendRef, Condition, Grant, Resources, SimJobStatus, Usage
from simjob_operator.core.observations import MeasuredUsage
from simjob_operator.core.phases import (
    TERMINAL_PHASES,
    ConditionChange,
    Observation,
    Phase,
    Verdict,
)
from simjob_operator.core.progress import ProgressReport
from simjob_operator.core.quantities import QuantityError, cpu_cores, memory_bytes
from simjob_operator.core.times import format_time, parse_time

_CONDITION_ORDER = (c.COND_ADMITTED, c.COND_RUNNING, c.COND_FINISHED)


def get_condition(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((cond for cond in conditions if cond.type == type_), None)


def set_conditions(
    existing: list[Condition],
    changes: Iterable[ConditionChange],
    *,
    now: datetime,
    generation: int,
) -> list[Condition]:
    """Apply changes; lastTransitionTime moves only when a condition's status does."""
    by_type = {cond.type: cond.model_copy() for cond in existing}
    for change in changes:
        old = by_type.get(change.type)
        if old is not None and old.status == change.status:
            transition = old.last_transition_time
        else:
            transition = format_time(now)
        by_type[change.type] = Condition(
            type=change.type,
            status=change.status,  # validated by pydantic (a Literal)
            reason=change.reason,
            message=change.message,
            last_transition_time=transition,
            observed_generation=generation,
        )
    known = [by_type.pop(name) for name in _CONDITION_ORDER if name in by_type]
    return known + [by_type[name] for name in sorted(by_type)]


def _rates(status: SimJobStatus) -> tuple[float, int, float]:
    """The granted CPUs, GPUs and GiB of memory (zeros when unknown)."""
    if status.resources is None:
        return 0.0, 0, 0.0
    try:
        cores = cpu_cores(status.resources.cpu)
        gib = memory_bytes(status.resources.memory) / 2**30
    except QuantityError:
        cores = gib = 0.0
    return cores, status.resources.gpu, gib


def _usage(status: SimJobStatus, end: datetime) -> Usage:
    start = parse_time(status.start_time)
    wall = max(0.0, (end - start).total_seconds()) if start is not None else 0.0
    cores, gpus, gib = _rates(status)
    return Usage(
        wall_seconds=round(wall, 3),
        cpu_seconds=round(wall * cores, 3),
        gpu_seconds=round(wall * gpus, 3),
        memory_gib_seconds=round(wall * gib, 3),
    )


def build_status(
    status: SimJobStatus,
    verdict: Verdict,
    *,
    now: datetime,
    generation: int,
    owner: str | None = None,
    observation: Observation | None = None,
    grant: Grant | None = None,
    backend_ref: BackendRef | None = None,
    workspace: WorkspaceStatus | None = None,
    progress: ProgressReport | None = None,
) -> SimJobStatus:
    """The status after ``verdict``. Pure; ``status`` is not modified. A running
    SimJob's usage so far rides along when the status is written anyway (a progress
    or reason change): it never causes a write of its own."""
    new = status.model_copy(deep=True)
    old_phase = Phase(status.phase) if status.phase else None
    phase = verdict.phase
    if old_phase in TERMINAL_PHASES:
        return new  # terminal is forever (next_phase guarantees it; be defensive)
    if backend_ref is not None:
        new.backend_ref = backend_ref
    if workspace is not None:
        new.workspace = workspace
    if progress is not None and verdict.phase == Phase.RUNNING:
        new.progress = Progress(
            percent=progress.percent, message=progress.message, update_time=format_time(now)
        )
    if not verdict.conditions and phase == (old_phase or Phase.PENDING):
        # Nothing decided (e.g. waiting for admission or an observation).
        return _with_usage_so_far(new, status, now)
    if phase == Phase.SUCCEEDED and new.progress is not None:
        new.progress = new.progress.model_copy(update={"percent": 100.0})

    new.phase = phase.value
    if verdict.reason is not None:
        new.reason = verdict.reason
    if verdict.message is not None:
        new.message = verdict.message
    if verdict.conditions:
        new.conditions = set_conditions(
            status.conditions, verdict.conditions, now=now, generation=generation
        )
    new.observed_generation = generation
    new.queue_position = verdict.queue_position
    if owner is not None:
        new.owner = owner  # the effective owner, shown in the OWNER column

    if phase == Phase.QUEUED and new.queued_time is None:
        new.queued_time = format_time(now)
    if verdict.admitted_now and grant is not None:
        new.grant = grant.model_copy(deep=True)
        new.resources = Resources(cpu=grant.cpu, memory=grant.memory, gpu=grant.gpu)
        new.effective_max_runtime_seconds = grant.max_runtime_seconds

    started = observation.start_time if observation is not None else None
    if phase == Phase.RUNNING and new.start_time is None:
        new.start_time = format_time(started or now)
    if phase in TERMINAL_PHASES:
        if new.start_time is None and started is not None:
            new.start_time = format_time(started)
        finished = observation.finish_time if observation is not None else None
        end = finished or now
        new.completion_time = format_time(end)
        if verdict.exit_code is not None:
            new.exit_code = verdict.exit_code
        new.usage = _usage(new, end)
        if observation is not None and observation.usage is not None:
            new.usage = measured_usage(new.usage, observation.usage)
            _cores, gpus, gib = _rates(new)  # GPUs and memory over the measured wall time
            wall = new.usage.wall_seconds
            new.usage.gpu_seconds = round(wall * gpus, 3)
            new.usage.memory_gib_seconds = round(wall * gib, 3)
    return _with_usage_so_far(new, status, now)


def _with_usage_so_far(new: SimJobStatus, old: SimJobStatus, now: datetime) -> SimJobStatus:
    """A Running status that is written anyway carries the usage so far."""
    if new.phase == Phase.RUNNING.value and new.start_time is not None and new != old:
        new.usage = _usage(new, now)
    return new


def measured_usage(estimate: Usage, measured: MeasuredUsage) -> Usage:
    """The operator's estimate with what the backend's accounting measured instead: its
    wall time, its CPU seconds (else the estimate's CPUs over the measured wall time),
    its peak memory. Pure."""
    cpus = estimate.cpu_seconds / estimate.wall_seconds if estimate.wall_seconds > 0 else 0.0
    cpu = measured.cpu_seconds if measured.cpu_seconds is not None else measured.wall_seconds * cpus
    return estimate.model_copy(
        update={
            "wall_seconds": round(measured.wall_seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "max_rss_bytes": measured.max_rss_bytes,
            "source": measured.source,
        }
    )


def status_patch(old: SimJobStatus, new: SimJobStatus) -> dict[str, Any]:
    """A JSON merge patch turning ``old`` into ``new`` (empty when equal)."""
    before = old.to_api()
    after = new.to_api()
    patch: dict[str, Any] = {key: value for key, value in after.items() if before.get(key) != value}
    patch.update({key: None for key in before if key not in after})
    return patch
