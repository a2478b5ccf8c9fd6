"""How big the fault suite runs: ``SIMJOB_CHAOS_SIZE=ci`` (default, part of ``make test``)
or ``full`` (``make chaos``); ``SIMJOB_CHAOS_SEED`` fixes the random choices.

``Size`` holds every number a scenario uses (SimJob counts, kills, outage lengths,
deadlines), so the scenarios never branch on the size themselves.
Neighbours: conftest.py (the ``size`` and ``rng`` fixtures), the test_*.py scenarios.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time


@dataclasses.dataclass(frozen=True)
class Size:
    name: str
    storm_simjobs: int  # scenario 1: mixed SimJobs
    storm_kills: int  # scenario 1: kill -9 + restart of the operator
    storm_span_s: float  # scenario 1: kills and cancels happen within this many seconds
    outage_simjobs: int  # scenarios 2-4: mixed SimJobs in flight during the outage
    apiserver_outages: int  # scenario 2: stop/start rounds of the API server
    apiserver_down_s: float  # scenario 2: extra seconds the API server stays stopped
    stall_s: float  # scenario 3: SIGSTOP of the API server for this long
    etcd_restarts: int  # scenario 4
    etcd_down_s: float  # scenario 4: extra seconds etcd stays stopped
    slurm_simjobs: int  # scenarios 5-6: Slurm SimJobs (2 CPUs: keep it small)
    slurmctld_restarts: int  # scenario 5
    sshd_kills: int  # scenario 6
    sshd_down_s: float  # scenario 6: seconds sshd stays dead
    ledger_simjobs: int  # scenario 7: SimJobs counted in the usage ledger under kill -9
    ledger_kills: int  # scenario 7
    ledger_span_s: float  # scenario 7: the kills happen within this many seconds
    finish_s: float  # deadline for every SimJob of a scenario to end
    test_timeout_s: int  # pytest-timeout of each scenario


CI = Size(
    name="ci",
    storm_simjobs=60,
    storm_kills=3,
    storm_span_s=12.0,
    outage_simjobs=12,
    apiserver_outages=1,
    apiserver_down_s=0.0,
    stall_s=10.0,
    etcd_restarts=1,
    etcd_down_s=0.0,
    slurm_simjobs=6,
    slurmctld_restarts=1,
    sshd_kills=1,
    sshd_down_s=3.0,
    ledger_simjobs=40,
    ledger_kills=3,
    ledger_span_s=15.0,
    finish_s=180.0,
    test_timeout_s=420,
)

FULL = Size(
    name="full",
    storm_simjobs=300,
    storm_kills=10,
    storm_span_s=90.0,
    outage_simjobs=60,
    apiserver_outages=2,
    apiserver_down_s=60.0,
    stall_s=30.0,
    etcd_restarts=2,
    etcd_down_s=10.0,
    slurm_simjobs=12,
    slurmctld_restarts=2,
    sshd_kills=3,
    sshd_down_s=10.0,
    ledger_simjobs=200,
    ledger_kills=10,
    ledger_span_s=60.0,
    finish_s=480.0,
    test_timeout_s=1200,
)

SIZES = {size.name: size for size in (CI, FULL)}


def current_size() -> Size:
    name = os.environ.get("SIMJOB_CHAOS_SIZE", "ci").strip().lower() or "ci"
    if name not in SIZES:
        raise ValueError(f"SIMJOB_CHAOS_SIZE={name!r}: expected one of {sorted(SIZES)}")
    return SIZES[name]


def seed() -> int:
    """The suite's seed: SIMJOB_CHAOS_SEED, or one drawn from the clock (printed)."""
    fixed = os.environ.get("SIMJOB_CHAOS_SEED", "").strip()
    return int(fixed) if fixed else int(time.time() * 1000) % 1_000_000


def scenario_rng(base_seed: int, scenario: str) -> random.Random:
    """One RNG per scenario, so a scenario replays alone with the same seed."""
    return random.Random(f"{base_seed}:{scenario}")
