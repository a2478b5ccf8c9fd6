"""Fixtures of the SDK, CLI and gateway tests: the integration fixtures, one operator.

``kube`` and ``namespace`` come from tests/integration/conftest.py. ``operator`` reuses
the session operator of tests/integration when one runs (a full ``pytest tests`` runs
tests/integration first), so two operators never serve the cluster at once; alone it
starts one the same way. ``client``/``aclient`` are SDK clients on the session's
kubeconfig and the test's namespace; ``spec`` builds SimJobSpecs steered by KWOK.

Neighbours: test_client.py, test_aio.py, test_cli.py, test_gateway.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simjob_sdk import AsyncSimJobClient, SimJobClient, SimJobSpec
from tests.integration.conftest import (
    REPO,
    SESSION_OPERATORS,
    TEST_TIERS,
    Kube,
    OperatorProcess,
    kube,
    namespace,
    simjob,
)

__all__ = ["kube", "namespace"]


@pytest.fixture(scope="session")
def operator(
    kube: Kube, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    if SESSION_OPERATORS:
        yield SESSION_OPERATORS[0]
        return
    kube.run("apply", "-f", str(REPO / "crds"))
    for crd in (
        "simjobs.simjob.io",
        "simtiers.simjob.io",
        "slurmclusters.simjob.io",
        "simusages.simjob.io",
    ):
        kube.run("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    kube.apply(
        *(
            {
                "apiVersion": "simjob.io/v1alpha1",
                "kind": "SimTier",
                "metadata": {"name": name},
                "spec": spec,
            }
            for name, spec in TEST_TIERS.items()
        )
    )
    process = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator"))
    process.start()
    SESSION_OPERATORS.append(process)
    try:
        yield process
    finally:
        SESSION_OPERATORS.remove(process)
        process.stop()
        print(f"\noperator logs: {process.log_dir}")


def spec(tier: str = "it-wide", **kwargs: Any) -> SimJobSpec:
    """A SimJobSpec like tests.integration.conftest.simjob's (run_seconds etc. for KWOK)."""
    return SimJobSpec.model_validate(simjob("x", tier=tier, **kwargs)["spec"])


@pytest.fixture
def client(kubeconfig: Path, namespace: str) -> Iterator[SimJobClient]:
    with SimJobClient(namespace, kubeconfig=kubeconfig) as made:
        yield made


@pytest.fixture
def aclient(kubeconfig: Path, namespace: str) -> AsyncSimJobClient:
    return AsyncSimJobClient(namespace, kubeconfig=kubeconfig)
