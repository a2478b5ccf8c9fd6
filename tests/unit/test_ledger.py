"""The ledger's pure parts (core.ledger) and the usage a status carries (core.statuses).

Names are DNS subdomains, one per owner x tier x day, that never mix two owners up;
sums are exact decimals whatever the order of the folds; the usage of a running SimJob
rides along on writes made anyway, never on a write of its own; the object stays under
its stated size at its bound. Neighbours: test_accounting.py (the protocol).
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from simjob_operator.api.simjob import SimJobStatus
from simjob_operator.api.simusage import MAX_PENDING, PendingFold, SimUsageStatus
from simjob_operator.core.ledger import (
    Charge,
    charge_of,
    decimal_text,
    fold,
    ledger_name,
    to_decimal,
    unpend,
)
from simjob_operator.core.observations import MeasuredUsage, Observation, ObservedState
from simjob_operator.core.phases import Phase, Verdict
from simjob_operator.core.progress import ProgressReport
from simjob_operator.core.statuses import build_status
from simjob_operator.core.view import SimJobRecord
from tests.support.bodies import simjob_body

NOW = datetime(2025, 1, 2, 9, 0, tzinfo=UTC)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def charge(uid: str, cpu: str = "1.5", outcome: str = "Succeeded") -> Charge:
    d = Decimal(cpu)
    return Charge(uid, uid, "alice", "small", "2025-01-01", outcome, d, d, d, d)


@pytest.mark.parametrize(
    ("owner", "tier"),
    [("alice", "small"), ("Alice", "small"), ("a_b", "x.y"), ("a" * 63, "t" * 63), ("1.2", "z")],
)
def test_ledger_names_are_dns_subdomains_in_three_parts(owner: str, tier: str) -> None:
    name = ledger_name(owner, tier, "2025-01-01")
    assert DNS_SUBDOMAIN.match(name)
    assert len(name) <= 253
    assert name.startswith("2025-01-01.")
    assert name.count(".") == 2


def test_owners_that_differ_get_different_ledgers() -> None:
    names = {ledger_name(o, "small", "2025-01-01") for o in ("alice", "Alice", "ALICE", "al.ice")}
    assert len(names) == 4
    assert ledger_name("alice", "small", "2025-01-01") == "2025-01-01.alice.small"


def test_the_charge_comes_from_the_status_and_its_completion_day() -> None:
    status = {
        "phase": "TimedOut",
        "completionTime": "2025-03-04T23:59:59Z",
        "usage": {"wallSeconds": 1.0005, "cpuSeconds": 2.25, "memoryGiBSeconds": 4.0},
    }
    record = SimJobRecord.from_plain(simjob_body("a", status=status, owner="bob"))
    got = charge_of(record)
    assert (got.owner, got.tier, got.period, got.outcome) == (
        "bob",
        "small",
        "2025-03-04",
        "TimedOut",
    )
    assert got.cpu_seconds == Decimal("2.250")
    assert got.gpu_seconds == Decimal("0.000")


def test_sums_are_exact_whatever_the_order() -> None:
    rng = random.Random(7)
    charges = [charge(f"u{i}", cpu=f"{rng.uniform(0, 1e6):.3f}") for i in range(300)]
    totals = set()
    for _ in range(3):
        rng.shuffle(charges)
        status = SimUsageStatus()
        for item in charges:
            status = unpend(fold(status, item, now=NOW), {item.uid})
        totals.add(status.cpu_seconds)
        assert status.sim_jobs == 300
        assert status.pending == []
    assert totals == {decimal_text(sum((c.cpu_seconds for c in charges), Decimal(0)))}


def test_a_uid_is_folded_once_and_drop_prunes_others() -> None:
    status = fold(SimUsageStatus(), charge("a"), now=NOW)
    with pytest.raises(ValueError, match="already folded"):
        fold(status, charge("a"), now=NOW)
    status = fold(status, charge("b", outcome="Failed"), now=NOW, drop={"a"})
    assert [p.uid for p in status.pending] == ["b"]
    assert status.outcomes == {"Succeeded": 1, "Failed": 1}
    assert status.cpu_seconds == "3"


def test_decimals() -> None:
    assert to_decimal(0.1 + 0.2) == Decimal("0.300")
    assert decimal_text(Decimal("12.300")) == "12.3"
    assert decimal_text(Decimal("5")) == "5"


def test_a_ledger_at_its_bound_stays_under_64_kib() -> None:
    """The size stated in docs/accounting.md: a year of 10,000 SimJobs a day per owner
    is 365 objects per tier, each with totals of ~18 digits and at most MAX_PENDING
    pending entries of the longest uid and name."""
    year = Decimal(10_000 * 365) * Decimal(31 * 24 * 3600) * 1024  # far beyond a year
    status = SimUsageStatus(
        sim_jobs=10_000,
        outcomes={"Succeeded": 2500, "Failed": 2500, "Cancelled": 2500, "TimedOut": 2500},
        wall_seconds=decimal_text(year),
        cpu_seconds=decimal_text(year),
        gpu_seconds=decimal_text(year),
        memory_gib_seconds=decimal_text(year),
        pending=[PendingFold(uid="u" * 36, name="n" * 58) for _ in range(MAX_PENDING)],
        update_time="2025-01-01T00:00:00Z",
    )
    assert len(decimal_text(year)) <= 22
    assert len(json.dumps(status.to_api())) < 64 * 1024
    empty = status.model_copy(update={"pending": []})
    assert len(json.dumps(empty.to_api())) < 1024  # the steady state: nothing pending


# --------------------------------------------------------------------------- usage so far


def running(start: datetime) -> SimJobStatus:
    return SimJobStatus.model_validate(
        {
            "phase": "Running",
            "startTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "resources": {"cpu": "2", "memory": "512Mi", "gpu": 1},
        }
    )


def test_usage_so_far_rides_along_on_a_progress_write() -> None:
    status = running(NOW - timedelta(seconds=100))
    keep = Verdict(phase=Phase.RUNNING, reason=None, message=None)
    new = build_status(
        status, keep, now=NOW, generation=1, progress=ProgressReport(percent=40.0, message="")
    )
    assert new.usage is not None
    assert (new.usage.wall_seconds, new.usage.cpu_seconds) == (100.0, 200.0)
    assert (new.usage.gpu_seconds, new.usage.memory_gib_seconds) == (100.0, 50.0)


def test_usage_so_far_never_makes_a_write_of_its_own() -> None:
    status = running(NOW - timedelta(seconds=100))
    keep = Verdict(phase=Phase.RUNNING, reason=None, message=None)
    assert build_status(status, keep, now=NOW, generation=1) == status


def test_the_final_usage_counts_gpus_and_memory() -> None:
    status = running(NOW - timedelta(seconds=10))
    done = Verdict(phase=Phase.SUCCEEDED, reason="Completed", message="", exit_code=0)
    new = build_status(status, done, now=NOW, generation=1)
    assert new.usage is not None
    assert new.usage.gpu_seconds == 10.0
    assert new.usage.memory_gib_seconds == 5.0


def test_a_measured_wall_time_also_scales_gpus_and_memory() -> None:
    """Slurm's accounting replaces the wall time (and CPU seconds): the GPU and memory
    seconds follow the measured wall time, not the operator's estimate."""
    status = running(NOW - timedelta(seconds=10))
    done = Verdict(phase=Phase.SUCCEEDED, reason="Completed", message="", exit_code=0)
    measured = MeasuredUsage(source="sacct", wall_seconds=7.0, cpu_seconds=21.0)
    observation = Observation(ObservedState.SUCCEEDED, exit_code=0, usage=measured)
    new = build_status(status, done, now=NOW, generation=1, observation=observation)
    assert new.usage is not None
    assert (new.usage.wall_seconds, new.usage.cpu_seconds) == (7.0, 21.0)
    assert (new.usage.gpu_seconds, new.usage.memory_gib_seconds) == (7.0, 3.5)
    assert new.usage.source == "sacct"
