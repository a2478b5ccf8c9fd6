"""What the fault scenarios run: mixed SimJobs with a known right ending.

A ``Case`` is one SimJob and what it must end as: ``ok`` (Succeeded, exit code 0),
``fail`` (Failed with its exit code), ``cancel`` (runs for ever until ``spec.cancel`` is
set at a drawn moment: Cancelled / CancelRequested) and ``timeout`` (runs for ever in the
short-runtime tier: TimedOut / DeadlineExceeded). ``mixed_cases`` draws them from a
seeded RNG; ``k8s_manifest`` and ``slurm_manifest`` build the SimJobs with the
integration helpers (KWOK is steered through ``spec.podMetadata``; Slurm runs ``sh -c``).
``apply_k8s`` applies the Kubernetes cases. ``CancelSchedule`` patches ``spec.cancel``
when each cancel case is due, whether or not the operator is up at that moment.
``K8S_SLOTS`` (the Kubernetes tiers' slots per owner) and ``TRACEBACK`` (what the
scenarios count in the operator's logs) are shared by the scenarios.

The tiers (``CHAOS_TIERS``) are applied by conftest.py. ``chaos-wide`` and ``chaos-short``
hold the Kubernetes cases; ``chaos-slurm`` the Slurm ones.
Neighbours: checks.py (verifies the endings), the test_*.py scenarios.
"""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any

from tests.integration.conftest import Kube, simjob
from tests.integration.slurm_operator_helpers import slurm_simjob

WIDE = "chaos-wide"
SHORT = "chaos-short"
SLURM = "chaos-slurm"
FOREVER_S = 600  # a KWOK pod or Slurm job that only a cancel or the runtime limit ends

CHAOS_TIERS: dict[str, dict[str, Any]] = {
    WIDE: {"cpu": "100m", "memory": "64Mi", "maxRuntimeSeconds": 900, "maxConcurrentPerOwner": 20},
    # The runtime limit ends its SimJobs: counted from the simulation's start.
    SHORT: {"cpu": "100m", "memory": "64Mi", "maxRuntimeSeconds": 4, "maxConcurrentPerOwner": 6},
    # Slurm jobs of one CPU; the local node has 2, so most wait in Slurm (Queued).
    SLURM: {"cpu": "1", "memory": "50Mi", "maxRuntimeSeconds": 900, "maxConcurrentPerOwner": 6},
}

# The slots per owner of the Kubernetes tiers (checks.holders_within / probe_slots).
K8S_SLOTS = {tier: int(CHAOS_TIERS[tier]["maxConcurrentPerOwner"]) for tier in (WIDE, SHORT)}
# What the scenarios count in the operator's logs (none may be new after a fault).
TRACEBACK = "Traceback (most recent call last)"

EXPECTED: dict[str, tuple[str, str | None]] = {
    "ok": ("Succeeded", None),
    "fail": ("Failed", None),
    "cancel": ("Cancelled", "CancelRequested"),
    "timeout": ("TimedOut", "DeadlineExceeded"),
}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    kind: str  # ok | fail | cancel | timeout
    run_s: float = 2.0  # how long the simulation runs (ok / fail)
    exit_code: int = 0  # fail: its exit code
    cancel_at_s: float = 0.0  # cancel: seconds after the scenario's start
    tier_name: str = ""  # default: SHORT for timeouts, WIDE for the rest

    @property
    def tier(self) -> str:
        return self.tier_name or (SHORT if self.kind == "timeout" else WIDE)

    @property
    def phase(self) -> str:
        return EXPECTED[self.kind][0]

    @property
    def reason(self) -> str | None:
        return EXPECTED[self.kind][1]

    @property
    def expected_exit_code(self) -> int | None:
        return {"ok": 0, "fail": self.exit_code}.get(self.kind)


def mixed_cases(
    rng: random.Random,
    count: int,
    *,
    prefix: str,
    span_s: float,
    weights: dict[str, float] | None = None,
    run_s: tuple[float, float] = (1.0, 6.0),
) -> list[Case]:
    """``count`` cases drawn with ``weights``; cancels fall within ``span_s``."""
    weights = weights or {"ok": 0.4, "fail": 0.25, "cancel": 0.15, "timeout": 0.2}
    kinds = list(weights)
    cases = []
    for index in range(count):
        # The first four cover every kind whatever the draw.
        kind = kinds[index] if index < len(kinds) else rng.choices(kinds, list(weights.values()))[0]
        cases.append(
            Case(
                name=f"{prefix}-{index:03d}-{kind}",
                kind=kind,
                run_s=round(rng.uniform(*run_s), 1),
                exit_code=rng.randint(1, 120),
                cancel_at_s=round(rng.uniform(1.0, max(span_s, 2.0)), 1),
            )
        )
    rng.shuffle(cases)  # creation order (= admission order) mixes the kinds
    return cases


def k8s_manifest(case: Case) -> dict[str, Any]:
    if case.kind == "ok":
        return simjob(case.name, tier=case.tier, run_seconds=case.run_s)
    if case.kind == "fail":
        return simjob(
            case.name, tier=case.tier, run_seconds=case.run_s, fail_exit_code=case.exit_code
        )
    return simjob(case.name, tier=case.tier, run_seconds=FOREVER_S)


def slurm_manifest(case: Case, cluster: str) -> dict[str, Any]:
    """The same kinds on Slurm (``timeout`` is not used there: Slurm limits are minutes)."""
    script = {
        "ok": f"sleep {case.run_s}",
        "fail": f"sleep {case.run_s}; exit {case.exit_code}",
        "cancel": f"sleep {FOREVER_S}",
    }[case.kind]
    return slurm_simjob(case.name, cluster, "sh", "-c", script, tier=SLURM)


def apply_all(kube: Kube, namespace: str, manifests: list[dict[str, Any]]) -> None:
    """kubectl apply in chunks of 50 (one request body per chunk stays small)."""
    for start in range(0, len(manifests), 50):
        kube.apply(*manifests[start : start + 50], namespace=namespace)


def apply_k8s(kube: Kube, namespace: str, cases: list[Case]) -> None:
    """The Kubernetes SimJobs of ``cases`` (``k8s_manifest``), through ``apply_all``."""
    apply_all(kube, namespace, [k8s_manifest(case) for case in cases])


class CancelSchedule:
    """Sets ``spec.cancel: true`` on each cancel case once its moment has come."""

    def __init__(self, kube: Kube, namespace: str, cases: list[Case]) -> None:
        self.kube = kube
        self.namespace = namespace
        self.pending = sorted(
            (case for case in cases if case.kind == "cancel"), key=lambda case: case.cancel_at_s
        )
        self.started = time.monotonic()

    def due(self, *, everything: bool = False) -> list[Case]:
        elapsed = time.monotonic() - self.started
        return [case for case in self.pending if everything or case.cancel_at_s <= elapsed]

    def tick(self, *, everything: bool = False) -> int:
        """Patch the due cancels (all of them with ``everything``); returns how many.
        A patch refused because the API server is away is tried again next tick."""
        done = 0
        for case in self.due(everything=everything):
            result = self.kube.run(
                "patch",
                "simjobs.simjob.io",
                case.name,
                "-n",
                self.namespace,
                "--type=merge",
                "-p",
                '{"spec":{"cancel":true}}',
                check=False,
                timeout=30,
            )
            if result.returncode == 0:
                self.pending.remove(case)
                done += 1
        return done
