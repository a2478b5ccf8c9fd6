"""Scenarios 2-4: the control plane goes away under running SimJobs.

2. kube-apiserver stopped (SIGTERM by its PID file) and started again with the same
   command line (hack/cluster/restart-component.sh), ``size.apiserver_outages`` times;
3. a watch stall: the API server SIGSTOPped for ``size.stall_s`` seconds, then SIGCONT —
   connections stay open and answer nothing, so every watch and request hangs;
4. etcd (its own process of the simkube binary) stopped and started again.

Each runs ``size.outage_simjobs`` mixed SimJobs: some finish during the outage, the
cancels are requested just before it (their stop spans the outage), the timeouts' limit
passes during it. Afterwards (checks.verify): every SimJob in its right phase, no Job or
pod twice, never more slot holders than allowed and no slot leaked (probe), the operator
still running (it must ride out an outage, not exit), the control plane healthy.
These disturb everything else on the cluster, so their outages are kept short at CI size.
Neighbours: faults.py, checks.py, workload.py, hack/cluster/restart-component.sh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.chaos import checks
from tests.chaos.faults import ClusterComponent, cluster_healthy, wait_ready
from tests.chaos.ledger import TERMINAL, Ledger
from tests.chaos.report import ChaosResult
from tests.chaos.sizes import Size, current_size, scenario_rng
from tests.chaos.workload import K8S_SLOTS, TRACEBACK, CancelSchedule, apply_k8s, mixed_cases
from tests.integration.conftest import Kube, OperatorProcess, wait_for

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.integration,
    pytest.mark.timeout(current_size().test_timeout_s),
]

NO_IDENTITY = "uid=None"
# scenario -> (tracebacks, log lines without the SimJob's uid) the operator logged in it;
# judged by test_outages_are_logged_one_line_per_retry, after the scenarios.
LOG_FINDINGS: dict[str, tuple[int, int]] = {}
Outages = Callable[[str, Callable[[], AbstractContextManager[None]], int], None]


class OperatorExitedError(AssertionError):
    """The operator process ended during an outage instead of riding it out."""


def exit_lines(operator: OperatorProcess) -> str:
    """The ERROR lines of the operator's last log: why it exited."""
    lines = operator.log_text().splitlines()
    return "\n".join(line[:300] for line in lines if "[ERROR" in line and "kopf" in line)[-3000:]


def run_outages(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    ledger: Ledger,
    size: Size,
    result: ChaosResult,
    rng_seed: int,
    outage: Callable[[], AbstractContextManager[None]],
    rounds: int,
    kubectl_path: Path,
    kubeconfig: Path,
) -> None:
    """The common flow of scenarios 2-4 (module docstring); fails with every problem."""
    rng = scenario_rng(rng_seed, result.scenario)
    cases = mixed_cases(
        rng,
        size.outage_simjobs,
        prefix="out",
        span_s=0.0,
        weights={"ok": 0.45, "fail": 0.25, "cancel": 0.15, "timeout": 0.15},
        run_s=(2.0, 12.0),
    )
    result.cases = len(cases)
    logs_before = operator.all_logs()
    apply_k8s(kube, namespace, cases)
    cancels = [case.name for case in cases if case.kind == "cancel"]
    wait_for(  # the cancels' stops, and whatever else still runs, span the outage
        lambda: all(ledger.phases().get(name) == "Running" for name in cancels),
        timeout=90,
        what="the cancel cases to run",
        detail=ledger.phases,
    )
    CancelSchedule(kube, namespace, cases).tick(everything=True)
    in_flight = sum(1 for phase in ledger.phases().values() if phase not in TERMINAL)
    assert in_flight > 0
    problems: list[str] = []
    for _ in range(rounds):
        started = time.monotonic()
        with outage():
            pass
        result.outages += 1
        wait_ready(kubectl_path, kubeconfig)
        if operator.exited():  # it must ride the outage out; restart it to go on checking
            problems.append(
                f"OPERATOR exited during outage {result.outages}:\n{exit_lines(operator)}"
            )
            operator.start()
        print(f"outage {result.outages}: {time.monotonic() - started:.1f} s, {in_flight} in flight")
    problems += checks.verify(
        kube, namespace, ledger, cases, result, finish_s=size.finish_s, tiers=K8S_SLOTS
    )
    if operator.exited():
        problems.append(f"OPERATOR exited after the outages:\n{exit_lines(operator)}")
        operator.start()
    problems += [f"CLUSTER {p}" for p in cluster_healthy(kubectl_path, kubeconfig)]
    logs = operator.all_logs()
    result.tracebacks = logs.count(TRACEBACK) - logs_before.count(TRACEBACK)
    LOG_FINDINGS[result.scenario] = (
        result.tracebacks,
        logs.count(NO_IDENTITY) - logs_before.count(NO_IDENTITY),
    )
    others = [problem for problem in problems if not problem.startswith("OPERATOR")]
    assert not others, f"seed {result.seed}:\n" + "\n".join(problems)
    if problems:  # only exits: a failure of its own, so an xfail for it hides nothing else
        raise OperatorExitedError(f"seed {result.seed}:\n" + "\n".join(problems))


@pytest.fixture
def outages(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    ledger: Ledger,
    size: Size,
    chaos_seed: int,
    chaos_result: Callable[[str], ChaosResult],
    kubectl_path: Path,
    kubeconfig: Path,
) -> Outages:
    """``outages(scenario, outage, rounds)``: this test's row of the summary table, then
    ``run_outages`` with ``outage`` (a context manager: the fault) ``rounds`` times."""

    def run(scenario: str, outage: Callable[[], AbstractContextManager[None]], rounds: int) -> None:
        result = chaos_result(scenario)
        run_outages(
            kube, namespace, operator, ledger, size, result, chaos_seed, outage, rounds,
            kubectl_path, kubeconfig,
        )  # fmt: skip

    return run


@pytest.mark.xfail(
    current_size().name == "full",
    raises=OperatorExitedError,
    strict=False,  # a race (below): strict would fail the runs the operator survives
    reason="operator bug: after a long API server outage the operator may exit: kopf's "
    "default networking.error_backoffs (1+1+2+3+5+8+13+21 s) run out ('Request attempt "
    "#9/9 failed; escalating'); when that last attempt meets the restarted API server's "
    "503 'the request has been made before all known HTTP paths have been installed', "
    "kopf logs 'Watcher for simjobs.v1alpha1.simjob.io@none has failed', 'Multidimensional "
    "multitasker has failed', runs cleanup and exits (seed 71117, full size, 2026-12-02 "
    "10:26:37). The CI size (~20 s outage) never exhausts the backoffs.",
)
def test_apiserver_stop_and_restart(outages: Outages, size: Size) -> None:
    apiserver = ClusterComponent("kube-apiserver")
    outages(
        "2 kube-apiserver stop + start",
        lambda: apiserver.stopped(size.apiserver_down_s),
        size.apiserver_outages,
    )


def test_apiserver_watch_stall(outages: Outages, size: Size) -> None:
    apiserver = ClusterComponent("kube-apiserver")
    outages(
        f"3 API server SIGSTOP {size.stall_s:.0f} s", lambda: apiserver.stalled(size.stall_s), 1
    )


def test_etcd_restart(outages: Outages, size: Size) -> None:
    etcd = ClusterComponent("etcd")
    outages("4 etcd stop + start", lambda: etcd.stopped(size.etcd_down_s), size.etcd_restarts)


def test_outages_are_logged_one_line_per_retry() -> None:
    """The promise of issue 10 item 1: an outage is one warning line per retry round with
    the SimJob's identity, never a traceback per call (judged on scenarios 2-4 above)."""
    if not LOG_FINDINGS:
        pytest.skip("no outage scenario ran in this session")
    noisy = {name: found for name, found in LOG_FINDINGS.items() if any(found)}
    assert not noisy, f"(tracebacks, lines with uid=None) per scenario: {noisy}"
