"""How long a run's outputs stay, and what the operator does when they expire. Pure.

Two clocks start when a SimJob finishes (``status.completionTime``), both recorded in
its ``Grant`` at admission: ``ttlSecondsAfterFinished`` (the SimJob object) and
``outputRetentionSeconds`` (its outputs: the workspace sub-directory of a claim on
Kubernetes, the run directory on Slurm; unset keeps them). Everything here derives from
status, so it is level-triggered and survives restarts:

* ``expires_at``: when the outputs of this SimJob expire (None: kept, or none of its
  own — a Reused SimJob stands for another SimJob's outputs);
* ``removal_of``: the ``OutputsRemoved`` condition once the removal ended (True: removed,
  reason ``OutputsExpired``; False: refused for good, e.g. a path that escapes the
  workspace, reason ``OutputsRemovalRefused``): it is done once;
* ``step``: what is due now (``Wait`` / ``RemoveNow`` / None);
* ``outputs_retained``: whether a reuse may still point at them (``core.runkeys``);
* ``ttl_left``: seconds until the object may be deleted; a deletion waits for a removal
  that is due (the object is the only record of where the outputs are).

A SimTier refuses ``outputRetentionSeconds`` above ``ttlSecondsAfterFinished`` (CEL), so
outputs never outlive the SimJob that records them (docs/data.md "Retention").
``check_sub_path`` is the operator's own check of a workspace path before a removal is
started (the removal program checks it again on the volume, by real path).
The ``OutputRemover`` protocol is what ``backends.*.retention`` implement;
``controller.retention`` drives them.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from typing import Final, Protocol

from simjob_operator.api.data import WorkspaceStatus
from simjob_operator.api.simjob import Condition, SimJobStatus
from simjob_operator.core.phases import ConditionChange, is_terminal
from simjob_operator.core.statuses import get_condition, set_conditions
from simjob_operator.core.times import parse_time
from simjob_operator.core.view import SimJobRecord

COND_OUTPUTS_REMOVED: Final = "OutputsRemoved"
REASON_EXPIRED: Final = "OutputsExpired"
REASON_REFUSED: Final = "OutputsRemovalRefused"
_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MAX_SUB_PATH: Final = 512


class UnsafeOutputPath(ValueError):
    """A workspace path that could leave the workspace: nothing is removed."""


def check_sub_path(path: str | None) -> list[str]:
    """The components of a workspace sub-path that may be removed: relative, each one a
    plain name (no ``.``/``..``, no leading ``-`` or ``.``), as the CRD allows for
    ``spec.workspace.subPath``. Raises ``UnsafeOutputPath``."""
    if not path or len(path) > MAX_SUB_PATH:
        raise UnsafeOutputPath(f"workspace path {path!r} is empty or too long")
    if path.startswith("/"):
        raise UnsafeOutputPath(f"workspace path {path!r} is absolute")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", "..") or not _COMPONENT.match(part):
            raise UnsafeOutputPath(f"workspace path {path!r}: component {part!r} is not allowed")
    return parts


@dataclasses.dataclass(frozen=True)
class Removed:
    """The outputs are gone (removed now, or were never written)."""

    message: str


@dataclasses.dataclass(frozen=True)
class Removing:
    """The removal runs; look again after ``delay`` seconds."""

    delay: float
    message: str


@dataclasses.dataclass(frozen=True)
class Refused:
    """The removal was refused for good (an escaping path, a symlink, a site that
    cannot be used): nothing more is tried; the outputs stay."""

    message: str


Removal = Removed | Removing | Refused


class OutputRemover(Protocol):
    """Removes exactly one run's outputs; idempotent and safe after a crash (a second
    call adopts the removal the first one started)."""

    async def remove(self, record: SimJobRecord, workspace: WorkspaceStatus) -> Removal: ...


@dataclasses.dataclass(frozen=True)
class Wait:
    seconds: float


@dataclasses.dataclass(frozen=True)
class RemoveNow:
    workspace: WorkspaceStatus


Step = Wait | RemoveNow | None


def own_outputs(record: SimJobRecord) -> WorkspaceStatus | None:
    """The outputs this SimJob wrote itself (not those of a SimJob it reused)."""
    workspace = record.status.workspace
    if workspace is None or record.status.reused_from is not None:
        return None
    if workspace.path is None and workspace.directory is None:
        return None
    return workspace


def expires_at(record: SimJobRecord) -> datetime | None:
    """When the outputs of this finished SimJob expire; None when they are kept."""
    grant = record.status.grant
    if grant is None or grant.output_retention_seconds is None or not is_terminal(record.phase):
        return None
    if own_outputs(record) is None:
        return None
    finished = parse_time(record.status.completion_time)
    if finished is None:
        return None
    return finished + timedelta(seconds=grant.output_retention_seconds)


def removal_of(record: SimJobRecord) -> Condition | None:
    """The OutputsRemoved condition: set once the removal ended (either way)."""
    return get_condition(record.status.conditions, COND_OUTPUTS_REMOVED)


def step(record: SimJobRecord, now: datetime) -> Step:
    """What retention asks for now."""
    expiry = expires_at(record)
    if expiry is None or removal_of(record) is not None:
        return None
    left = (expiry - now).total_seconds()
    if left > 0:
        return Wait(left)
    workspace = own_outputs(record)
    assert workspace is not None  # expires_at checked it
    return RemoveNow(workspace)


def outputs_retained(record: SimJobRecord, now: datetime | None) -> bool:
    """Whether this SimJob's outputs are still there by policy (reuse may point at
    them): not removed, not refused-after-expiry, not past their expiry."""
    if removal_of(record) is not None:
        return False
    expiry = expires_at(record)
    return expiry is None or now is None or now < expiry


def ttl_left(record: SimJobRecord, ttl: int | None, now: datetime) -> float | None:
    """Seconds until the finished SimJob may be deleted (<= 0: now); None: kept. A
    removal that is due holds the deletion back (``step`` is not None)."""
    finished = parse_time(record.status.completion_time)
    if ttl is None or finished is None:
        return None
    return ttl - (now - finished).total_seconds()


def with_removal(
    status: SimJobStatus, removal: Removed | Refused, *, now: datetime, generation: int
) -> SimJobStatus:
    """``status`` with the OutputsRemoved condition of a removal that ended."""
    if isinstance(removal, Removed):
        change = ConditionChange(COND_OUTPUTS_REMOVED, "True", REASON_EXPIRED, removal.message)
    else:
        change = ConditionChange(COND_OUTPUTS_REMOVED, "False", REASON_REFUSED, removal.message)
    new = status.model_copy(deep=True)
    new.conditions = set_conditions(status.conditions, [change], now=now, generation=generation)
    return new
