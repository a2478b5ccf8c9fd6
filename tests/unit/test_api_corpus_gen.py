"""The generated bad-input corpus (tests/support/corpus_gen.py) is well-formed, big and
varied: at least 200 cases, every category of hostile input, unique names, and the
cases meant to pass the schema really are schema-valid offline and parse into the
models. The API server and the operator judge the rest (test_bad_input_schema.py,
test_bad_input_operator.py).

Neighbours: tests/unit/test_schema_offline.py (its offline validator),
tests/unit/test_corpus_shape.py (the file corpus).
"""

from __future__ import annotations

from collections import Counter

import pytest

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import SimJob
from simjob_operator.api.simtier import SimTier
from tests.support.corpus_cases import cases
from tests.support.corpus_gen import TIERS, GenCase, all_cases, operator_cases, schema_cases
from tests.unit.test_schema_offline import _offline_fields

ALL = all_cases()


def test_corpus_has_at_least_200_cases() -> None:
    assert len(ALL) >= 200
    assert len(schema_cases()) + len(operator_cases()) == len(ALL)
    assert len(ALL) + len(cases("schema")) + len(cases("semantic")) >= 300


def test_every_category_is_there() -> None:
    ids = " ".join(case.id for case in ALL)
    for word in ("type", "too-long", "over", "unicode", "nul", "esc", "c1", "label-key",
                 "label-value", "annotation", "reserved", "cpu", "memory", "upd", "edit",
                 "unknown-tier", "missing-slurm-cluster", "no-image", "ok"):  # fmt: skip
        assert word in ids, word
    outcomes = Counter(case.outcome for case in ALL)
    assert outcomes["rejected"] >= 200
    assert outcomes["accepted"] >= 20
    assert outcomes["failed"] >= 10
    assert outcomes["edit"] >= 5
    assert outcomes["succeeded"] >= 3
    reasons = {case.expect for case in ALL if case.outcome == "failed"}
    assert reasons == {
        Reason.UNKNOWN_TIER, Reason.RUNTIME_ABOVE_TIER, Reason.INVALID_SPEC, "UnknownSlurmCluster"
    }  # fmt: skip


def test_names_are_unique_and_cluster_objects_prefixed() -> None:
    names = Counter((case.final["kind"], case.final["metadata"]["name"]) for case in ALL)
    assert [key for key, n in names.items() if n > 1] == []
    for case in ALL:
        for doc in case.documents:
            assert doc["apiVersion"] == c.API_VERSION
            assert "namespace" not in doc["metadata"]
            if doc["kind"] == c.SIMTIER_KIND:
                assert doc["metadata"]["name"].startswith("corpus-gen-")
    assert all(tier["metadata"]["name"].startswith("corpus-gen-") for tier in TIERS)


@pytest.mark.parametrize(
    "case",
    [case for case in ALL if case.outcome in ("accepted", "failed", "edit", "succeeded")],
    ids=lambda case: case.id,
)
def test_cases_the_schema_must_take_are_valid_offline_and_parse(case: GenCase) -> None:
    for doc in case.documents:
        assert _offline_fields(doc) == set()
        (SimJob if doc["kind"] == c.SIMJOB_KIND else SimTier).model_validate(doc)


def test_updates_change_the_spec_and_keep_the_name() -> None:
    for case in ALL:
        if len(case.documents) == 2:
            first, second = case.documents
            assert first["metadata"] == second["metadata"]
            assert first["spec"] != second["spec"]
        if case.outcome == "edit":
            assert case.patch
            assert case.expect


def test_every_rejection_names_what_is_wrong() -> None:
    for case in ALL:
        if case.outcome == "rejected":
            assert len(case.expect) >= 10, case.id
