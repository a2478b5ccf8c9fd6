"""The usage ledger's arithmetic: which SimUsage a finished SimJob goes to, and the fold.

A finished SimJob is charged to the SimUsage of its owner, tier and UTC day of
completion (``charge_of``, ``ledger_name``: the same answer on every retry, from the
SimJob's status alone). ``fold`` adds a charge to a ledger status and records the
SimJob's uid in ``pending``; ``unpend`` removes uids whose SimJobs carry their marker
(``status.accountedIn``). Sums are exact decimals: each SimJob's usage is rounded to
the millisecond (``to_decimal``) before it is added, so the ledger equals the sum of
its SimJobs' usage whatever the order. The exactly-once protocol that uses these
(read ledger, read SimJob, fold with a resourceVersion precondition, mark the SimJob,
unpend) is ``controller.accounting``; docs/accounting.md explains it. Pure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.simusage import PendingFold, SimUsageSpec, SimUsageStatus
from simjob_operator.core.times import format_time, parse_time
from simjob_operator.core.view import SimJobRecord

MILLI = Decimal("0.001")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
NO_TIER = "none"  # a SimJob whose spec names no tier (it failed admission)


def to_decimal(seconds: float | str | Decimal) -> Decimal:
    """Seconds as an exact decimal rounded to the millisecond."""
    if isinstance(seconds, float):
        return Decimal(f"{seconds:.3f}")
    return Decimal(seconds).quantize(MILLI)


def decimal_text(value: Decimal) -> str:
    """``Decimal("12.300")`` -> ``"12.3"``; ``Decimal("5.000")`` -> ``"5"``."""
    text = f"{value.quantize(MILLI):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclasses.dataclass(frozen=True)
class Charge:
    """What one finished SimJob adds to its ledger."""

    uid: str
    name: str
    owner: str
    tier: str
    period: str  # YYYY-MM-DD (UTC)
    outcome: str  # the final phase
    wall_seconds: Decimal
    cpu_seconds: Decimal
    gpu_seconds: Decimal
    memory_gib_seconds: Decimal


def period_of(record: SimJobRecord) -> str:
    """The UTC day the SimJob finished (its creation day if no completion was recorded)."""
    moment = parse_time(record.status.completion_time) or parse_time(record.creation_timestamp)
    return format_time(moment)[:10] if moment is not None else "1970-01-01"


def charge_of(record: SimJobRecord) -> Charge:
    """The charge of a finished SimJob, from its status alone (deterministic)."""
    usage = record.status.usage
    return Charge(
        uid=record.uid,
        name=record.name,
        owner=record.owner,
        tier=record.tier_name or NO_TIER,
        period=period_of(record),
        outcome=record.status.phase or "Unknown",
        wall_seconds=to_decimal(usage.wall_seconds if usage else 0.0),
        cpu_seconds=to_decimal(usage.cpu_seconds if usage else 0.0),
        gpu_seconds=to_decimal(usage.gpu_seconds if usage else 0.0),
        memory_gib_seconds=to_decimal(usage.memory_gib_seconds if usage else 0.0),
    )


def _label(text: str) -> str:
    """``text`` when it is a DNS label, else a label made of it and a hash of it."""
    if _LABEL.match(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:54].strip("-")
    return f"{cleaned}-{digest}" if cleaned else digest


def ledger_name(owner: str, tier: str, period: str) -> str:
    """``<period>.<owner>.<tier>``: a DNS subdomain, one per owner x tier x day. A part
    that is not a DNS label (upper case, ``_``, ``.``) becomes a cleaned label plus a hash,
    so the three parts stay apart; ``spec`` of the object says them exactly."""
    return f"{period}.{_label(owner)}.{_label(tier)}"


def ledger_body(namespace: str, charge: Charge) -> dict[str, Any]:
    """A new, empty SimUsage for ``charge`` (its status is written by the fold)."""
    spec = SimUsageSpec(owner=charge.owner, tier=charge.tier, period=charge.period)
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.SIMUSAGE_KIND,
        "metadata": {
            "name": ledger_name(charge.owner, charge.tier, charge.period),
            "namespace": namespace,
            "labels": {
                c.LABEL_OWNER: charge.owner,
                c.LABEL_TIER: charge.tier,
                c.LABEL_PERIOD: charge.period,
                c.LABEL_MANAGED_BY: c.MANAGED_BY,
            },
        },
        "spec": spec.to_api(),
    }


def matches(spec: SimUsageSpec, charge: Charge) -> bool:
    """The ledger object is the one of this charge (not a name collision)."""
    return (spec.owner, spec.tier, spec.period) == (charge.owner, charge.tier, charge.period)


def is_pending(status: SimUsageStatus, uid: str) -> bool:
    return any(entry.uid == uid for entry in status.pending)


def fold(
    status: SimUsageStatus, charge: Charge, *, now: datetime, drop: Collection[str] = ()
) -> SimUsageStatus:
    """``status`` with ``charge`` added and its uid pending; uids in ``drop`` unpended."""
    if is_pending(status, charge.uid):
        raise ValueError(f"{charge.uid} is already folded into this ledger")
    outcomes = dict(status.outcomes)
    outcomes[charge.outcome] = outcomes.get(charge.outcome, 0) + 1
    pending = [entry for entry in status.pending if entry.uid not in drop]
    pending.append(PendingFold(uid=charge.uid, name=charge.name))

    def add(total: str, part: Decimal) -> str:
        return decimal_text(to_decimal(total) + part)

    return SimUsageStatus(
        sim_jobs=status.sim_jobs + 1,
        outcomes=outcomes,
        wall_seconds=add(status.wall_seconds, charge.wall_seconds),
        cpu_seconds=add(status.cpu_seconds, charge.cpu_seconds),
        gpu_seconds=add(status.gpu_seconds, charge.gpu_seconds),
        memory_gib_seconds=add(status.memory_gib_seconds, charge.memory_gib_seconds),
        pending=pending,
        update_time=format_time(now),
    )


def unpend(status: SimUsageStatus, uids: Collection[str]) -> SimUsageStatus:
    """``status`` without the pending entries of ``uids`` (their markers are written)."""
    kept = [entry for entry in status.pending if entry.uid not in uids]
    return status.model_copy(update={"pending": kept})
