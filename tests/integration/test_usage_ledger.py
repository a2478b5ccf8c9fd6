"""The usage ledger on the real control plane: crash points, kubectl, deletion, the TTL.

The operator dies (``tests.support.crash_hooks``, an ``os._exit`` like a kill -9) right
after each write of the ledger's protocol for one SimJob; restarted, it must finish the
protocol and count that SimJob once. ``kubectl get simusage`` shows the columns a
gateway reads; deleting a finished SimJob, or its TTL purge, keeps its count.
Neighbours: tests/unit/test_accounting.py (every crash point on the FakeKube),
tests/chaos/test_usage_ledger.py (the kill -9 storm), docs/accounting.md.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from simjob_operator.core.ledger import ledger_name, to_decimal
from tests.integration.conftest import Kube, OperatorProcess, simjob, wait_for
from tests.support.crash_hooks import ENV_CRASH_ACCOUNTING

pytestmark = pytest.mark.integration


def ledgers(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    items = kube.items("simusages.simjob.io", namespace=namespace)
    return {str(item["metadata"]["name"]): item for item in items}


def marked(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    status = kube.status(namespace, name)
    return status if status.get("accountedIn") else None


@pytest.mark.parametrize("step", ["folded", "marked"])
def test_a_crash_after_each_write_still_counts_once(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    monkeypatch.setenv(ENV_CRASH_ACCOUNTING, f"{step} {namespace}/crashy")
    operator.extra_modules = ["tests.support.crash_hooks"]
    operator.stop()
    operator.start()
    try:
        kube.apply(simjob("crashy", run_seconds=1), namespace=namespace)
        wait_for(operator.exited, timeout=90, what=f"the operator to exit after {step}")
        assert f"{ENV_CRASH_ACCOUNTING}={step} {namespace}/crashy" in operator.log_text()
        status = kube.status(namespace, "crashy")
        (book,) = ledgers(kube, namespace).values()
        assert book["status"]["simJobs"] == 1
        uid = kube.simjob(namespace, "crashy")["metadata"]["uid"]
        assert [p["uid"] for p in book["status"]["pending"]] == [uid]
        assert bool(status.get("accountedIn")) == (step == "marked")
    finally:
        monkeypatch.delenv(ENV_CRASH_ACCOUNTING)
        operator.extra_modules = []
        if operator.exited():
            operator.start()
    status = wait_for(lambda: marked(kube, namespace, "crashy"), timeout=60, what="the marker")
    ((name, book),) = ledgers(kube, namespace).items()
    assert status["accountedIn"] == name == ledger_name(namespace, "it-wide", name[:10])
    assert book["status"]["simJobs"] == 1
    assert book["status"]["outcomes"] == {"Succeeded": 1}
    usage = status["usage"]
    assert Decimal(book["status"]["cpuSeconds"]) == to_decimal(float(usage["cpuSeconds"]))
    # After a crash between the fold and the marker the restart unpends it; after the
    # marker, the uid stays pending until a later fold sweeps it (docs/accounting.md).
    assert len(book["status"].get("pending") or []) == (0 if step == "folded" else 1)


def test_kubectl_shows_the_ledger_and_deletions_keep_the_count(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.apply(
        simjob("kept", run_seconds=1),
        simjob("failing", run_seconds=1, fail_exit_code=4),
        simjob("purged", tier="it-ttl", run_seconds=1),
        namespace=namespace,
    )
    for name in ("kept", "failing", "purged"):
        kube.wait_phase(namespace, name, {"Succeeded", "Failed"}, timeout=90)
    wait_for(lambda: marked(kube, namespace, "failing"), timeout=30, what="failing counted")
    kube.run("delete", "simjobs.simjob.io", "failing", "-n", namespace, "--wait=true")
    wait_for(
        lambda: kube.get("simjobs.simjob.io", "purged", namespace=namespace) is None,
        timeout=60,
        what="the TTL purge",
    )
    books = ledgers(kube, namespace)
    wide = books[ledger_name(namespace, "it-wide", next(iter(books))[:10])]
    assert wide["status"]["simJobs"] == 2
    assert wide["status"]["outcomes"] == {"Succeeded": 1, "Failed": 1}
    assert sum(book["status"]["simJobs"] for book in books.values()) == 3
    table = kube.run("get", "simusages.simjob.io", "-n", namespace).stdout
    header = table.splitlines()[0].split()
    assert header[:5] == ["NAME", "OWNER", "TIER", "PERIOD", "SIMJOBS"]
    assert "CPU-SECONDS" in header
    assert "MEMORY-GIB-SECONDS" in header
    short = kube.run("get", "su", "-n", namespace, "-l", "simjob.io/tier=it-ttl").stdout
    assert "it-ttl" in short
