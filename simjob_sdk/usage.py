"""Usage from the ledger: the SimUsage objects of one namespace, summed for a gateway.

``read_usage`` lists the namespace's SimUsages (one per owner x tier x UTC day, kept by
the operator; docs/accounting.md), optionally of one owner (the ``simjob.io/owner``
label, filtered by the API server) and from a day on; ``UsageReport`` holds them as
``UsageRecord``s with exact ``Decimal`` seconds and sums them (``total``,
``by_tier``, ``by_owner``). A day counts the SimJobs that finished on it, so ``since``
is taken at day granularity (the UTC day it falls on). Used by
``SimJobClient.usage`` and the ``simjob usage`` command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.simusage import SimUsage


@dataclasses.dataclass(frozen=True)
class UsageTotals:
    """Sums over some SimUsage records (exact decimals, seconds)."""

    sim_jobs: int = 0
    outcomes: dict[str, int] = dataclasses.field(default_factory=dict)
    wall_seconds: Decimal = Decimal(0)
    cpu_seconds: Decimal = Decimal(0)
    gpu_seconds: Decimal = Decimal(0)
    memory_gib_seconds: Decimal = Decimal(0)

    def __add__(self, other: UsageTotals) -> UsageTotals:
        outcomes = dict(self.outcomes)
        for key, count in other.outcomes.items():
            outcomes[key] = outcomes.get(key, 0) + count
        return UsageTotals(
            sim_jobs=self.sim_jobs + other.sim_jobs,
            outcomes=outcomes,
            wall_seconds=self.wall_seconds + other.wall_seconds,
            cpu_seconds=self.cpu_seconds + other.cpu_seconds,
            gpu_seconds=self.gpu_seconds + other.gpu_seconds,
            memory_gib_seconds=self.memory_gib_seconds + other.memory_gib_seconds,
        )


@dataclasses.dataclass(frozen=True)
class UsageRecord:
    """One SimUsage: an owner's SimJobs of one tier that finished on one UTC day."""

    namespace: str
    name: str
    owner: str
    tier: str
    period: date
    totals: UsageTotals
    pending: int  # SimJobs counted whose marker is not written yet (normally 0)

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> UsageRecord:
        model = SimUsage.model_validate(body)
        meta = body.get("metadata") or {}
        status = model.status
        totals = UsageTotals()
        if status is not None:
            totals = UsageTotals(
                sim_jobs=status.sim_jobs,
                outcomes=dict(status.outcomes),
                wall_seconds=Decimal(status.wall_seconds),
                cpu_seconds=Decimal(status.cpu_seconds),
                gpu_seconds=Decimal(status.gpu_seconds),
                memory_gib_seconds=Decimal(status.memory_gib_seconds),
            )
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            owner=model.spec.owner,
            tier=model.spec.tier,
            period=date.fromisoformat(model.spec.period),
            totals=totals,
            pending=len(status.pending) if status is not None else 0,
        )


@dataclasses.dataclass(frozen=True)
class UsageReport:
    """The records read, oldest day first; sums over them."""

    records: list[UsageRecord]

    def total(self) -> UsageTotals:
        return _sum(record.totals for record in self.records)

    def by_tier(self) -> dict[str, UsageTotals]:
        return self._grouped(lambda record: record.tier)

    def by_owner(self) -> dict[str, UsageTotals]:
        return self._grouped(lambda record: record.owner)

    def _grouped(self, key: Callable[[UsageRecord], str]) -> dict[str, UsageTotals]:
        groups: dict[str, UsageTotals] = {}
        for record in self.records:
            groups[key(record)] = groups.get(key(record), UsageTotals()) + record.totals
        return groups


def _sum(items: Iterable[UsageTotals]) -> UsageTotals:
    total = UsageTotals()
    for item in items:
        total = total + item
    return total


def day_of(since: datetime | date | None) -> date | None:
    """The UTC day of ``since`` (a naive datetime is taken as UTC)."""
    if since is None:
        return None
    if isinstance(since, datetime):
        aware = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
        return aware.astimezone(UTC).date()
    return since


def read_usage(
    list_objects: Callable[..., Any],
    namespace: str,
    *,
    owner: str | None = None,
    since: datetime | date | None = None,
    until: datetime | date | None = None,
) -> UsageReport:
    """The SimUsages of ``namespace`` (``owner``'s only, days ``since``..``until``)."""
    selector = f"{c.LABEL_OWNER}={owner}" if owner else None
    kwargs: dict[str, Any] = {"label_selector": selector} if selector else {}
    raw = list_objects(c.GROUP, c.VERSION, namespace, c.SIMUSAGE_PLURAL, **kwargs)
    first, last = day_of(since), day_of(until)
    records = [UsageRecord.from_api(item) for item in raw.get("items") or []]
    kept = [
        record
        for record in records
        if (owner is None or record.owner == owner)
        and (first is None or record.period >= first)
        and (last is None or record.period <= last)
    ]
    kept.sort(key=lambda record: (record.period, record.owner, record.tier))
    return UsageReport(kept)
