"""The semantic half of the bad-input corpus: manifests the schema accepts but
the operator must end Failed with a specific reason, while it keeps serving
every other SimJob. Reads tests/corpus/bad/semantic/*.yaml (first line
``# expect-reason: <Reason>``) and tests/corpus/tiers.yaml (see corpus_cases).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Kube, simjob, wait_for
from tests.support.corpus_cases import TIERS_FILE, CorpusCase, cases

pytestmark = pytest.mark.integration

SEMANTIC = cases("semantic") if Path(TIERS_FILE).exists() else []


@pytest.mark.skipif(not SEMANTIC, reason="the semantic corpus is not there yet")
def test_semantic_corpus(kube: Kube, namespace: str) -> None:
    tiers = [d for d in yaml.safe_load_all(TIERS_FILE.read_text()) if d]
    kube.apply(*tiers)
    # All at once, together with valid SimJobs that must still run.
    kube.apply(*(case.final for case in SEMANTIC), namespace=namespace)
    kube.apply(simjob("still-served-1"), simjob("still-served-2"), namespace=namespace)

    def outcome(case: CorpusCase) -> dict[str, str] | None:
        status = kube.status(namespace, case.final["metadata"]["name"])
        return status if status.get("phase") else None

    for case in SEMANTIC:
        name = case.final["metadata"]["name"]
        status = wait_for(
            lambda c=case: (s := outcome(c)) and s.get("phase") == "Failed" and s,
            timeout=60,
            what=f"{case.id} to fail",
            detail=lambda n=name: kube.status(namespace, n),
        )
        assert status["reason"] == case.expect, (case.id, status)
        assert status["message"], case.id
        assert kube.get("jobs.batch", f"sj-{name}", namespace=namespace) is None, case.id
    for name in ("still-served-1", "still-served-2"):
        assert kube.wait_phase(namespace, name, {"Succeeded", "Failed"})["phase"] == "Succeeded"
