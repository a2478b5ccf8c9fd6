"""Scenario 7: the usage ledger under a kill -9 storm, then after the TTL purge.

``size.ledger_simjobs`` SimJobs (succeed, fail, cancelled at a drawn moment) of two
owners in a tier whose ``ttlSecondsAfterFinished`` is 3 s finish while the operator is
killed with SIGKILL ``size.ledger_kills`` times at drawn moments (restarted after a drawn
0-2 s pause). A watch keeps the last body of every SimJob, deletions included. Once every
SimJob has ended AND been deleted by its TTL, the SimUsage objects must equal, exactly,
the sums over the SimJobs' own final ``status.usage`` (decimal seconds), per ledger
(owner x tier x day): counts, counts per outcome, wall/CPU/GPU/memory seconds; every
SimJob carries its marker (``status.accountedIn``) before it went; nothing stays pending
but uids already marked. The seed is printed; SIMJOB_CHAOS_SEED replays it.
Neighbours: test_operator_kills.py (the same storm for endings and duplicates),
tests/unit/test_accounting.py (every crash point, on the FakeKube), docs/accounting.md.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from simjob_operator.core.ledger import to_decimal
from tests.chaos.ledger import TERMINAL, Ledger
from tests.chaos.report import ChaosResult
from tests.chaos.sizes import Size, current_size, scenario_rng
from tests.chaos.workload import CancelSchedule, Case, apply_all, k8s_manifest, mixed_cases
from tests.integration.conftest import Kube, OperatorProcess

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.integration,
    pytest.mark.timeout(current_size().test_timeout_s),
]

TIER = "chaos-ledger"
TIER_SPEC = {
    "cpu": "100m",
    "memory": "96Mi",
    "maxRuntimeSeconds": 900,
    "maxConcurrentPerOwner": 25,
    "ttlSecondsAfterFinished": 3,
}
# None: the namespace is the owner; "alice": one the test namespaces allow (owner policy)
OWNERS = ("alice", None)
USAGE_FIELDS = ("wallSeconds", "cpuSeconds", "gpuSeconds", "memoryGiBSeconds")


class FinalBodies(Ledger):
    """The chaos ledger, keeping also the last body of every SimJob after its deletion."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.finals: dict[str, dict[str, Any]] = {}
        super().__init__(kubeconfig, namespace)

    def _record(self, kind: str, body: dict[str, Any], *, deleted: bool) -> None:
        if kind == "simjobs":
            self.finals[str((body.get("metadata") or {}).get("uid", ""))] = body
        super()._record(kind, body, deleted=deleted)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return dict(self.finals)


def _expected(finals: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Ledger name -> the sums over the SimJobs that say they were counted there."""
    sums: dict[str, dict[str, Any]] = {}
    for body in finals:
        status = body.get("status") or {}
        book = sums.setdefault(
            str(status["accountedIn"]),
            {"simJobs": 0, "outcomes": Counter(), **{f: Decimal(0) for f in USAGE_FIELDS}},
        )
        book["simJobs"] += 1
        book["outcomes"][status["phase"]] += 1
        usage = status.get("usage") or {}
        for field in USAGE_FIELDS:
            book[field] += to_decimal(float(usage.get(field, 0.0)))
    return sums


def _uncounted(body: dict[str, Any]) -> bool:
    status = body.get("status") or {}
    return status.get("phase") in TERMINAL and not status.get("accountedIn")


def _cases(size: Size, seed: int) -> list[Case]:
    rng = scenario_rng(seed, "usage-ledger")
    weights = {"ok": 0.5, "fail": 0.3, "cancel": 0.2}
    cases = mixed_cases(
        rng,
        size.ledger_simjobs,
        prefix="led",
        span_s=size.ledger_span_s,
        weights=weights,
        run_s=(1.0, 4.0),
    )
    return [
        Case(c.name, c.kind, c.run_s, c.exit_code, c.cancel_at_s, tier_name=TIER) for c in cases
    ]


def test_the_ledger_equals_the_sum_of_usage_after_a_kill9_storm_and_the_ttl_purge(
    kube: Kube,
    kubeconfig: Path,
    namespace: str,
    operator: OperatorProcess,
    size: Size,
    chaos_seed: int,
    chaos_result: Callable[[str], ChaosResult],
) -> None:
    result = chaos_result("7 usage ledger under kill -9")
    rng = scenario_rng(chaos_seed, "usage-ledger-kills")
    cases = _cases(size, chaos_seed)
    result.cases = len(cases)
    tier = {"apiVersion": "simjob.io/v1alpha1", "kind": "SimTier", "metadata": {"name": TIER}}
    kube.apply({**tier, "spec": TIER_SPEC})
    manifests = []
    for index, case in enumerate(cases):
        manifest = k8s_manifest(case)
        owner = OWNERS[index % len(OWNERS)]
        if owner is not None:
            manifest["spec"]["owner"] = owner
        manifests.append(manifest)
    kill_at = sorted(rng.uniform(1.0, size.ledger_span_s) for _ in range(size.ledger_kills))
    pauses = [rng.uniform(0.0, 2.0) for _ in kill_at]
    print(f"\nusage ledger: seed {chaos_seed}, {len(cases)} SimJobs, kills at {kill_at}")
    if operator.exited():
        operator.start()

    book = FinalBodies(kubeconfig, namespace)
    try:
        apply_all(kube, namespace, manifests)
        cancels = CancelSchedule(kube, namespace, cases)
        names = {case.name for case in cases}
        uncounted: list[int] = []  # finished, not yet marked, at each kill
        deadline = time.monotonic() + size.finish_s + size.ledger_span_s
        while time.monotonic() < deadline:
            cancels.tick()
            if kill_at and kill_at[0] <= time.monotonic() - cancels.started:
                kill_at.pop(0)
                seen = book.snapshot()
                uncounted.append(sum(1 for b in seen.values() if _uncounted(b)))
                operator.kill9()
                result.kills += 1
                time.sleep(pauses.pop(0))
                operator.start()
                continue
            seen = book.snapshot()
            ended = {
                str(b["metadata"]["name"])
                for b in seen.values()
                if (b.get("status") or {}).get("phase") in TERMINAL
            }
            listed = kube.items("simjobs.simjob.io", namespace=namespace)
            live = {str(item["metadata"]["name"]) for item in listed}
            if not kill_at and not cancels.pending and ended >= names and not (live & names):
                break  # every SimJob ended and was purged by its TTL
            time.sleep(1.0)
        finals = [b for b in book.snapshot().values() if b["metadata"]["name"] in names]
    finally:
        book.close()

    print(f"finished but not yet counted at each kill: {uncounted}")
    assert not operator.exited(), f"the operator exited:\n{operator.tail()}"
    assert result.kills == size.ledger_kills
    left = kube.items("simjobs.simjob.io", namespace=namespace)
    assert not [i for i in left if i["metadata"]["name"] in names], "not purged by the TTL"
    assert len(finals) == len(cases), f"saw {len(finals)} of {len(cases)} SimJobs"
    unmarked = [b["metadata"]["name"] for b in finals if not b["status"].get("accountedIn")]
    assert not unmarked, f"purged without being counted: {unmarked}"

    expected = _expected(finals)
    items = kube.items("simusages.simjob.io", namespace=namespace)
    ledgers = {str(item["metadata"]["name"]): item for item in items}
    counted = {name: (body.get("status") or {}).get("simJobs") for name, body in ledgers.items()}
    print(f"ledgers (SimJobs counted): {counted}")
    assert set(ledgers) == set(expected)
    marked = {str(b["metadata"]["uid"]) for b in finals}
    problems = []
    for name, sums in expected.items():
        status = ledgers[name].get("status") or {}
        if status.get("simJobs") != sums["simJobs"]:
            problems.append(f"{name}: simJobs {status.get('simJobs')} != {sums['simJobs']}")
        if dict(status.get("outcomes") or {}) != dict(sums["outcomes"]):
            problems.append(f"{name}: outcomes {status.get('outcomes')} != {sums['outcomes']}")
        for field in USAGE_FIELDS:
            if Decimal(str(status.get(field, "0"))) != sums[field]:
                problems.append(f"{name}: {field} {status.get(field)} != {sums[field]}")
        stray = [p["uid"] for p in status.get("pending") or [] if p["uid"] not in marked]
        if stray:
            problems.append(f"{name}: pending uids of no marked SimJob: {stray}")
    assert not problems, f"seed {chaos_seed}:\n" + "\n".join(problems)
    assert sum(sums["simJobs"] for sums in expected.values()) == len(cases)
