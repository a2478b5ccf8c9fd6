"""Fixtures of the fault suite, built on tests/integration/conftest.py.

Reused from there: ``kube`` (kubectl helpers), ``namespace`` (a fresh namespace per test,
SimJobs deleted after it; it restarts an operator a test left dead), the operator-log
printer on failure and the report hook. ``operator`` is redefined here with package
scope through the same ``serving_operator``: when the integration suite's session
operator is already running (``SESSION_OPERATORS``) it is reused rather than doubled
(two operators on one cluster would each act on every SimJob); one started here is
stopped when the package ends, so the integration suite starts its own afterwards. It
applies the CRDs, the integration tiers and ``CHAOS_TIERS``.

Also: ``size`` (ci or full, sizes.py), ``chaos_seed`` (printed), ``ledger`` (watches
the test's namespace, ledger.py), ``chaos_result`` (a row of the summary table that
``pytest_terminal_summary`` prints at the end, report.py).
Neighbours: tests/conftest.py (``kubeconfig``), sizes.py, faults.py, checks.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.ledger import Ledger
from tests.chaos.report import RESULTS, ChaosResult, table
from tests.chaos.sizes import Size, current_size, seed
from tests.chaos.workload import CHAOS_TIERS
from tests.integration.conftest import (
    TEST_TIERS,
    Kube,
    OperatorProcess,
    _operator_log_on_failure,
    kube,
    namespace,
    pytest_runtest_makereport,
    serving_operator,
)

__all__ = ["_operator_log_on_failure", "kube", "namespace", "pytest_runtest_makereport"]


@pytest.fixture(scope="package")
def operator(
    kube: Kube, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log_dir = functools.partial(tmp_path_factory.mktemp, "chaos-operator")
    with serving_operator(kube, kubeconfig, log_dir, {**TEST_TIERS, **CHAOS_TIERS}) as process:
        yield process


@pytest.fixture(scope="session")
def size() -> Size:
    return current_size()


@pytest.fixture(scope="session")
def chaos_seed() -> int:
    value = seed()
    print(f"\nchaos seed: {value} (replay with SIMJOB_CHAOS_SEED={value})")
    return value


@pytest.fixture
def ledger(kubeconfig: Path, namespace: str) -> Iterator[Ledger]:
    book = Ledger(kubeconfig, namespace)
    try:
        yield book
    finally:
        book.close()


@pytest.fixture
def chaos_result(
    request: pytest.FixtureRequest, size: Size, chaos_seed: int
) -> Iterator[Callable[[str], ChaosResult]]:
    """``chaos_result(scenario)`` makes this test's row of the summary table."""
    made: list[ChaosResult] = []

    def make(scenario: str) -> ChaosResult:
        row = ChaosResult(scenario=scenario, size=size.name, seed=chaos_seed)
        RESULTS.append(row)
        made.append(row)
        return row

    yield make
    report = getattr(request.node, "rep_call", None)
    for row in made:
        if row.outcome == "running":
            if report is None:
                row.finish("error")
            elif report.passed:
                row.finish("passed")
            else:
                row.finish("xfailed" if hasattr(report, "wasxfail") else "FAILED")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.section("SimJob fault suite (tests/chaos)")
    for line in table(RESULTS):
        terminalreporter.write_line(line)
