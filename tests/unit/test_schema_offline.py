"""The generated OpenAPI schemas, checked offline with a JSON-schema validator.

A supplement to tests/integration/test_schema_corpus.py (the real API server is
the proof): each schema-corpus case must fail offline *at the field its expected
message names* — or, when only the server can catch it (CEL rules, list-map keys),
must be schema-valid so the server's rule is what rejects it. The semantic cases,
the corpus tier and the examples must be valid here and parse into the models.

Neighbours: simjob_operator.api.crd_generation, tests/corpus_cases.py.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from simjob_operator.api.crd_generation import generate_crds
from simjob_operator.api.simjob import SimJob
from simjob_operator.api.simtier import SimTier
from simjob_operator.api.slurmcluster import SlurmCluster
from tests.support.corpus_cases import TIERS_FILE, CorpusCase, cases

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))

JsonDict = dict[str, Any]


def _strict(node: JsonDict) -> JsonDict:
    """kubectl's strict field validation: unknown fields are errors, not pruned."""
    node = copy.deepcopy(node)
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        node.setdefault("additionalProperties", False)
        node["properties"] = {k: _strict(v) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        node["items"] = _strict(node["items"])
    return node


def _validators() -> dict[str, jsonschema.Draft4Validator]:
    out = {}
    for crd in generate_crds():
        (version,) = crd["spec"]["versions"]
        schema = _strict(version["schema"]["openAPIV3Schema"])
        out[crd["spec"]["names"]["kind"]] = jsonschema.Draft4Validator(schema)
    return out


def _cel_messages() -> set[str]:
    found: set[str] = set()

    def walk(node: JsonDict) -> None:
        found.update(rule["message"] for rule in node.get("x-kubernetes-validations", []))
        for sub in node.get("properties", {}).values():
            walk(sub)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key])

    for crd in generate_crds():
        walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    return found


VALIDATORS = _validators()
CEL_MESSAGES = _cel_messages()
SERVER_ONLY = ("Duplicate value",)  # x-kubernetes-list-type: map keys


def _field(error: jsonschema.ValidationError) -> str:
    """The error's field in the API server's notation (spec.env[0].name)."""
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    named = re.search(r"'([^']+)' (?:is a required property|was unexpected)", error.message)
    if named:
        path += f".{named.group(1)}"
    return path.lstrip(".")


def _offline_fields(doc: JsonDict) -> set[str]:
    return {_field(e) for e in VALIDATORS[doc["kind"]].iter_errors(doc)}


def _expected_field(expect: str) -> str:
    match = re.match(r'^(?:unknown field ")?(spec[\w.\[\]]*)(?=[:" ])', expect)
    assert match, f"cannot tell the field from {expect!r}"
    return match.group(1)


def _server_only(case: CorpusCase) -> bool:
    return any(m in case.expect for m in CEL_MESSAGES) or any(m in case.expect for m in SERVER_ONLY)


@pytest.mark.parametrize("case", cases("schema"), ids=lambda case: case.id)
def test_schema_case_fails_for_the_intended_reason(case: CorpusCase) -> None:
    *originals, final = case.documents
    for doc in originals:
        assert _offline_fields(doc) == set(), "the original of an update must be valid"
    if _server_only(case):
        assert _offline_fields(final) == set(), "only the server-side rule may reject it"
    else:
        assert _expected_field(case.expect) in _offline_fields(final)


@pytest.mark.parametrize("case", cases("semantic"), ids=lambda case: case.id)
def test_semantic_case_is_schema_valid_and_parses(case: CorpusCase) -> None:
    assert _offline_fields(case.final) == set()
    SimJob.model_validate(case.final)


@pytest.mark.parametrize("path", [*EXAMPLES, TIERS_FILE], ids=lambda p: p.name)
def test_examples_are_schema_valid_and_parse(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert docs
    for doc in docs:
        assert _offline_fields(doc) == set()
        models: dict[str, type[SimJob | SimTier | SlurmCluster]] = {
            "SimJob": SimJob, "SimTier": SimTier, "SlurmCluster": SlurmCluster
        }  # fmt: skip
        models[doc["kind"]].model_validate(doc)


def test_examples_are_the_documented_ones() -> None:
    assert [p.name for p in EXAMPLES] == [
        "simjob-fail.yaml", "simjob-hello.yaml", "simjob-long.yaml", "simjob-slurm.yaml",
        "slurmcluster-local.yaml", "tiers.yaml",
    ]  # fmt: skip
    tiers = {
        d["metadata"]["name"]: d["spec"]
        for d in yaml.safe_load_all((REPO / "examples" / "tiers.yaml").read_text())
    }
    assert tiers["basic"] == {
        "cpu": "1", "memory": "1Gi", "maxRuntimeSeconds": 3600, "maxConcurrentPerOwner": 2
    }  # fmt: skip
    assert tiers["premium"] == {
        "cpu": "4", "memory": "8Gi", "maxRuntimeSeconds": 7200, "maxConcurrentPerOwner": 4
    }  # fmt: skip
    long = yaml.safe_load((REPO / "examples" / "simjob-long.yaml").read_text())
    annotations = long["spec"]["podMetadata"]["annotations"]
    assert annotations["pod-complete.stage.kwok.x-k8s.io/delay"] == "600s"
    fail = yaml.safe_load((REPO / "examples" / "simjob-fail.yaml").read_text())
    stage = "pod-container-running-failed.stage.kwok.x-k8s.io"
    assert fail["spec"]["podMetadata"]["labels"][stage] == "true"
    assert fail["spec"]["podMetadata"]["annotations"][f"{stage}/exit-code"] == "3"


def test_the_offline_check_is_not_vacuous() -> None:
    ok: JsonDict = {
        "apiVersion": "simjob.io/v1alpha1",
        "kind": "SimJob",
        "metadata": {"name": "x"},
        "spec": {"tier": "basic", "command": ["true"]},
    }
    assert _offline_fields(ok) == set()
    assert _offline_fields({**ok, "spec": {**ok["spec"], "extra": 1}}) == {"spec.extra"}
    assert _offline_fields({**ok, "spec": {"tier": "basic"}}) == {"spec.command"}
