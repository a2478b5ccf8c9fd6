"""The bad-manifest corpus is well-formed: every file parses, carries its expect
header, names an object of our API, and the corpus is big and varied enough.

Neighbours: tests/corpus_cases.py (the reader), tests/corpus/ (the files),
tests/integration/test_schema_corpus.py (the schema cases against the API server).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import yaml

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from tests.support.corpus_cases import (
    SCHEMA_DIR,
    SEMANTIC_DIR,
    TIERS_FILE,
    CorpusCase,
    cases,
    read_case,
)

SCHEMA = cases("schema")
SEMANTIC = cases("semantic")
SEMANTIC_REASONS = {Reason.UNKNOWN_TIER, Reason.RUNTIME_ABOVE_TIER, Reason.INVALID_SPEC}


def _tiers() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(TIERS_FILE.read_text()) if d is not None]
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == c.SIMTIER_KIND}


def test_corpus_is_big_enough() -> None:
    assert len(SCHEMA) + len(SEMANTIC) >= 30
    assert len(SEMANTIC) >= 8
    assert len(list(SCHEMA_DIR.iterdir())) == len(SCHEMA), "only *.yaml files in bad/schema"
    assert len(list(SEMANTIC_DIR.iterdir())) == len(SEMANTIC), "only *.yaml in bad/semantic"


def test_schema_corpus_covers_both_kinds_and_updates() -> None:
    kinds = Counter(case.final["kind"] for case in SCHEMA)
    assert kinds[c.SIMJOB_KIND] >= 15
    assert kinds[c.SIMTIER_KIND] >= 8
    assert sum(case.is_update for case in SCHEMA) >= 3


def test_semantic_corpus_covers_every_reason() -> None:
    assert {case.expect for case in SEMANTIC} == SEMANTIC_REASONS


@pytest.mark.parametrize("case", SCHEMA + SEMANTIC, ids=lambda case: case.id)
def test_documents_are_objects_of_our_api(case: CorpusCase) -> None:
    assert 1 <= len(case.documents) <= 2
    for doc in case.documents:
        assert doc["apiVersion"] == c.API_VERSION
        assert doc["kind"] in {c.SIMJOB_KIND, c.SIMTIER_KIND, c.SLURMCLUSTER_KIND}
        assert doc["metadata"]["name"]
        # The runner picks the namespace.
        assert "namespace" not in doc["metadata"]
    if case.is_update:
        first, second = case.documents
        assert (first["kind"], first["metadata"]["name"]) == (
            second["kind"],
            second["metadata"]["name"],
        )
        assert first != second


def test_names_are_unique_per_kind() -> None:
    """All cases of one directory can share a namespace (and the cluster)."""
    for group in (SCHEMA, SEMANTIC):
        names = Counter((case.final["kind"], case.final["metadata"]["name"]) for case in group)
        assert [key for key, n in names.items() if n > 1] == []


@pytest.mark.parametrize("case", SEMANTIC, ids=lambda case: case.id)
def test_semantic_cases_fail_for_their_reason_only(case: CorpusCase) -> None:
    """Each semantic case has exactly one thing wrong, the one its reason names."""
    assert case.expect in SEMANTIC_REASONS
    assert len(case.documents) == 1
    assert case.final["kind"] == c.SIMJOB_KIND
    spec = case.final["spec"]
    tiers = _tiers()
    tier_known = spec["tier"] in tiers
    has_image = bool(spec.get("image"))
    runtime = spec.get("maxRuntimeSeconds")
    over_tier = (
        tier_known
        and runtime is not None
        and (runtime > tiers[spec["tier"]]["spec"]["maxRuntimeSeconds"])
    )
    assert spec.get("backend", "kubernetes") == "kubernetes"
    assert spec.get("cancel", False) is False
    problems = {
        Reason.UNKNOWN_TIER: not tier_known,
        Reason.RUNTIME_ABOVE_TIER: over_tier,
        Reason.INVALID_SPEC: not has_image,
    }
    assert [reason for reason, wrong in problems.items() if wrong] == [case.expect]


def test_corpus_tier_is_the_documented_one() -> None:
    tiers = _tiers()
    assert list(tiers) == ["corpus-tier"]
    assert tiers["corpus-tier"]["spec"]["maxRuntimeSeconds"] == 60


def test_reader_rejects_a_file_without_header(tmp_path: Any) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("apiVersion: simjob.io/v1alpha1\nkind: SimJob\n")
    with pytest.raises(ValueError, match="first line must be"):
        read_case(path, "schema")
    path.write_text("# expect-reason: UnknownTier\nkind: SimJob\n")
    with pytest.raises(ValueError, match="first line must be"):
        read_case(path, "schema")
    assert read_case(path, "semantic").expect == "UnknownTier"
