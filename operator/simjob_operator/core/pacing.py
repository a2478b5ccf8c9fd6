"""When to look again and what is worth a write: pure timing rules of the reconciler.

``pending_seconds``: how long an admitted SimJob has waited on its backend without
starting (counted from its admission, ``admitted_since``, for maxPendingSeconds; the
Slurm backend waits for missing inputs by the same clock). ``recheck_after``: when
to look again although no event may announce a change. ``progress_wanted``: whether a
progress report deserves a status write (changed, and the last one is at least the
grant's progress interval old). Used by ``controller.reconciler``.
"""

from __future__ import annotations

from datetime import datetime

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import Grant
from simjob_operator.core.observations import Observation, ObservedState, Rejection
from simjob_operator.core.progress import ProgressReport
from simjob_operator.core.times import parse_time
from simjob_operator.core.view import SimJobRecord


def admitted_since(record: SimJobRecord) -> datetime | None:
    """When the SimJob got its slot (the Admitted condition's transition), if known."""
    if not record.admitted:
        return None
    admitted = next(
        (cond for cond in record.status.conditions if cond.type == c.COND_ADMITTED), None
    )
    return parse_time(admitted.last_transition_time) if admitted is not None else None


def pending_seconds(record: SimJobRecord, obs: Observation | None, now: datetime) -> float | None:
    """How long an admitted SimJob has waited on its backend without starting."""
    if obs is None or obs.state != ObservedState.PENDING:
        return None
    since = admitted_since(record)
    return (now - since).total_seconds() if since is not None else None


def recheck_after(
    obs: Observation, pending: float | None, grant: Grant | None, *, tick: float
) -> float | None:
    """When to look again although no event may come: the backend's wish, and while
    the object waits to start, soon (the scheduler's verdict changes no Job, so no Job
    event announces it) and at the end of maxPendingSeconds."""
    wishes = [obs.recheck_after] if obs.recheck_after is not None else []
    if pending is not None:
        wishes.append(min(tick, max(1.0, pending / 2)))
        if grant is not None and grant.max_pending_seconds is not None:
            wishes.append(max(0.5, grant.max_pending_seconds - pending + 0.5))
    return min(wishes) if wishes else None


def progress_wanted(
    record: SimJobRecord, report: ProgressReport | None, now: datetime
) -> ProgressReport | None:
    """A progress report worth a write: it changed, and the last one written is at least
    the grant's progress interval old (the readers already read no more often; this
    holds across restarts too)."""
    if report is None:
        return None
    shown = record.status.progress
    if shown is not None and (shown.percent, shown.message) == (report.percent, report.message):
        return None
    grant = record.status.grant
    interval = grant.progress_interval_seconds if grant is not None else None
    written = parse_time(shown.update_time) if shown is not None else None
    if interval and written is not None and (now - written).total_seconds() < interval:
        return None
    return report


def tier_grace_left(
    record: SimJobRecord, rejection: Rejection, now: datetime, grace: float
) -> float:
    """A SimJob may be applied just before its SimTier: seconds left to wait before it is
    failed for an unknown tier (0 for any other rejection)."""
    if rejection.reason != Reason.UNKNOWN_TIER:
        return 0.0
    created = parse_time(record.creation_timestamp)
    if created is None:
        return 0.0
    return max(0.0, grace - (now - created).total_seconds())
