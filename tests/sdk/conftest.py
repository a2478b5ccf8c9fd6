"""Fixtures of the SDK, CLI and gateway tests: the integration fixtures, one operator.

``kube``, ``namespace`` and ``operator`` come from tests/integration/conftest.py; the
``operator`` fixture (``serving_operator``) reuses the session operator of tests/integration
when one runs (a full ``pytest tests`` runs tests/integration first), so two operators
never serve the cluster at once; alone it starts one the same way. ``client``/``aclient``
are SDK clients on the session's kubeconfig and the test's namespace; ``spec`` builds
SimJobSpecs steered by KWOK.

Neighbours: test_client.py, test_aio.py, test_cli.py, test_gateway.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simjob_sdk import AsyncSimJobClient, SimJobClient, SimJobSpec
from tests.integration.conftest import kube, namespace, operator, simjob

__all__ = ["kube", "namespace", "operator"]


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
