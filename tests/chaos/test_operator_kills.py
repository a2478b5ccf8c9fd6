"""Scenario 1: a kill -9 storm of the operator over mixed SimJobs.

``size.storm_simjobs`` SimJobs (succeed, fail with a drawn exit code, cancelled at a drawn
moment, time out in the 4-second tier) are created at once; the operator is killed with
SIGKILL ``size.storm_kills`` times at drawn moments within ``size.storm_span_s`` and
restarted after a drawn 0-2 s pause, while the cancels land whether it is up or not.
Checked afterwards (checks.py): every SimJob in its right phase, no Job or pod twice,
no phase going back, no slot leaked in either tier (a fresh batch gets exactly
``maxConcurrentPerOwner`` slots), the operator up after every restart.
The seed is printed; SIMJOB_CHAOS_SEED replays it.
Neighbours: conftest.py, workload.py, checks.py, ledger.py,
tests/integration/test_operator_restart.py (the 3-kill integration test).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.chaos import checks
from tests.chaos.ledger import TERMINAL, Ledger
from tests.chaos.report import ChaosResult
from tests.chaos.sizes import Size, current_size, scenario_rng
from tests.chaos.workload import K8S_SLOTS, TRACEBACK, CancelSchedule, apply_k8s, mixed_cases
from tests.integration.conftest import Kube, OperatorProcess

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.integration,
    pytest.mark.timeout(current_size().test_timeout_s),
]


def test_kill9_storm(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    ledger: Ledger,
    size: Size,
    chaos_seed: int,
    chaos_result: Callable[[str], ChaosResult],
) -> None:
    result = chaos_result("1 operator kill -9 storm")
    rng = scenario_rng(chaos_seed, "kill9-storm")
    print(f"\nkill -9 storm: seed {chaos_seed}, {size.storm_simjobs} SimJobs")
    cases = mixed_cases(rng, size.storm_simjobs, prefix="storm", span_s=size.storm_span_s)
    kill_at = sorted(rng.uniform(1.0, size.storm_span_s) for _ in range(size.storm_kills))
    pauses = [rng.uniform(0.0, 2.0) for _ in kill_at]
    result.cases = len(cases)
    tracebacks_before = operator.all_logs().count(TRACEBACK)
    if operator.exited():
        operator.start()

    applied = time.monotonic()
    apply_k8s(kube, namespace, cases)
    print(f"{len(cases)} SimJobs applied in {time.monotonic() - applied:.1f} s")
    cancels = CancelSchedule(kube, namespace, cases)
    names = [case.name for case in cases]
    in_flight_at_kill: list[int] = []
    deadline = time.monotonic() + size.finish_s + size.storm_span_s
    while time.monotonic() < deadline:
        cancels.tick()
        elapsed = time.monotonic() - cancels.started
        if kill_at and kill_at[0] <= elapsed:
            kill_at.pop(0)
            phases = ledger.phases()
            in_flight_at_kill.append(sum(1 for n in names if phases.get(n) not in TERMINAL))
            operator.kill9()
            result.kills += 1
            time.sleep(pauses.pop(0))  # the operator stays dead this long (the fault)
            operator.start()  # asserts it came up ("Activity 'startup' succeeded")
            continue
        phases = ledger.phases()
        if not kill_at and not cancels.pending and all(phases.get(n) in TERMINAL for n in names):
            break
        time.sleep(0.25)
    print(
        f"storm over after {time.monotonic() - cancels.started:.0f} s; "
        f"kills at in-flight counts {in_flight_at_kill}; final phases "
        f"{Counter(ledger.phases().get(n) for n in names)}"
    )

    checked = time.monotonic()
    problems = checks.endings(kube, namespace, cases, result)
    problems += checks.k8s_duplicates(kube, namespace, ledger, result)
    print(f"endings and duplicates checked in {time.monotonic() - checked:.1f} s")
    problems += checks.holders_within(namespace, ledger, K8S_SLOTS)
    probe_started = time.monotonic()
    problems += checks.probe_slots(kube, namespace, ledger, K8S_SLOTS)
    print(f"slot probe: {time.monotonic() - probe_started:.0f} s")
    assert not operator.exited(), f"the operator exited:\n{operator.tail()}"
    result.tracebacks = operator.all_logs().count(TRACEBACK) - tracebacks_before
    assert not problems, f"seed {chaos_seed}:\n" + "\n".join(problems)
    assert result.kills == size.storm_kills
    assert min(in_flight_at_kill) > 0, in_flight_at_kill  # every kill hit work in flight
