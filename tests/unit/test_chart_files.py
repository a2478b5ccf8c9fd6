"""The Helm chart's files, offline: versions follow the package, values.yaml obeys
values.schema.json, every value is typed and described, the SimTier values follow the
SimTier model, and the Dockerfile, the chart and the docs agree.

Neighbours: charts/simjob-operator/, Dockerfile, docs/helm.md,
tests/integration/test_chart.py (the same chart on the real control plane),
tests/unit/test_crd_generation.py (the chart's generated CRDs do not drift).
"""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from simjob_operator.core.settings import (
    ENV_REMOVAL_IMAGE,
    ENV_REMOVAL_PULL_POLICY,
    PULL_POLICIES,
    Retention,
)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "simjob-operator"
JsonDict = dict[str, Any]


def _pyproject() -> JsonDict:
    data: JsonDict = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data


def _schema() -> JsonDict:
    schema: JsonDict = json.loads((CHART / "values.schema.json").read_text())
    return schema


def _values() -> JsonDict:
    values: JsonDict = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def _walk(node: JsonDict, path: str = "") -> Iterator[tuple[str, JsonDict]]:
    """(path, node) for every named value in the schema, depth first."""
    for key, sub in node.get("properties", {}).items():
        yield f"{path}.{key}", sub
        yield from _walk(sub, f"{path}.{key}")
    for key, sub in node.get("patternProperties", {}).items():
        yield f"{path}[{key}]", sub
        yield from _walk(sub, f"{path}[{key}]")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield f"{path}.<{key}>", node[key]
            yield from _walk(node[key], f"{path}.<{key}>")


def test_chart_version_and_app_version_follow_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = _pyproject()["project"]["version"]
    assert chart["version"] == version
    assert chart["appVersion"] == version
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "simjob-operator"


def test_values_yaml_obeys_the_schema() -> None:
    schema = _schema()
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(_values())


def test_values_yaml_and_the_schema_name_the_same_values() -> None:
    schema_keys = set(_schema()["properties"])
    assert set(_values()) == schema_keys
    assert set(_schema()["required"]) <= schema_keys


def test_every_value_is_typed_and_described() -> None:
    schema = _schema()
    definitions = schema["definitions"]
    nodes = list(_walk(schema))
    for definition in definitions.values():
        nodes += list(_walk(definition, "#definition"))
    assert len(nodes) > 60
    for path, node in nodes:
        assert node.get("description"), f"{path} has no description"
        if "$ref" in node:
            assert node["$ref"].removeprefix("#/definitions/") in definitions, path
            continue
        assert "type" in node, f"{path} has no type"


def test_objects_with_known_fields_refuse_unknown_keys() -> None:
    schema = _schema()
    nodes = [("", schema), *_walk(schema)]
    for definition in schema["definitions"].values():
        nodes += [("#definition", definition), *_walk(definition, "#definition")]
    strict = [path for path, node in nodes if "properties" in node or "patternProperties" in node]
    assert len(strict) > 10
    for path, node in nodes:
        if "properties" in node or "patternProperties" in node:
            assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"


def _values_schema_tool() -> Any:
    spec = importlib.util.spec_from_file_location(
        "values_schema", REPO / "hack" / "helm" / "values_schema.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_simtier_and_slurmcluster_values_follow_the_models() -> None:
    """values.schema.json's SimTier and SlurmCluster specs are the CRDs' (generated
    from the models by `make crds`)."""
    tool = _values_schema_tool()
    schema = _schema()
    assert tool.updated(schema) == schema, "values.schema.json drifted: run `make crds`"
    assert tool.main(["--check"]) == 0
    tier = schema["properties"]["simTiers"]
    ((name_pattern, spec),) = tier["patternProperties"].items()
    assert set(spec["required"]) == {"cpu", "memory", "maxRuntimeSeconds"}
    assert spec["additionalProperties"] is False
    # tier names: lowercase DNS names of at most 63 characters (the label simjob.io/tier)
    assert re.match(name_pattern, "basic-2.gpu")
    assert re.match(name_pattern, "a" * 63)
    for bad in ("Basic", "a_b", "-a", "a" * 64, ""):
        assert not re.match(name_pattern, bad), bad
    cluster = schema["properties"]["slurmClusters"]
    ((_, spec),) = cluster["patternProperties"].items()
    assert "workDir" in spec["required"]
    assert spec["properties"]["credentialsSecretRef"]["required"] == ["namespace", "name"]


def test_the_schema_tool_makes_crd_nodes_strict_json_schema() -> None:
    tool = _values_schema_tool()
    node = {
        "type": "object",
        "x-kubernetes-validations": [{"rule": "true"}],
        "properties": {
            "a": {"type": "integer", "default": 1, "description": "A."},
            "b": {"type": "array", "items": {"type": "object", "properties": {}}},
        },
    }
    assert tool.as_json_schema(node) == {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "A."},
            "b": {"type": "array", "items": {"type": "object", "properties": {},
                                             "additionalProperties": False}},
        },
        "additionalProperties": False,
    }  # fmt: skip


def test_rbac_template_has_no_wildcards() -> None:
    text = (CHART / "templates" / "rbac.yaml").read_text()
    assert '"*"' not in text
    assert "'*'" not in text
    # Secrets: get only (by name, or with slurmCredentials.fromSimJobs or
    # slurmInputs.secrets), never list/watch
    secret_rules = r'resources: \["secrets"\]\n(?:\{\{.*\n|\s*resourceNames: .*\n)*\s*verbs: (.*)'
    assert re.findall(secret_rules, text) == ['["get"]', '["get"]']


def test_the_removal_image_values_reach_the_operators_settings() -> None:
    """outputsRemoval defaults to what the operator uses without the chart, and the
    Deployment passes both values in the variables core.settings reads."""
    removal = _values()["outputsRemoval"]
    assert removal == {
        "image": Retention().removal_image,
        "pullPolicy": Retention().removal_pull_policy,
    }
    schema = _schema()["properties"]["outputsRemoval"]["properties"]
    assert tuple(schema["pullPolicy"]["enum"]) == PULL_POLICIES
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    for variable, value in (
        (ENV_REMOVAL_IMAGE, "image"),
        (ENV_REMOVAL_PULL_POLICY, "pullPolicy"),
    ):
        field = rf"\.Values\.outputsRemoval\.{value}"
        wired = rf"- name: {variable}\n\s+value: \{{\{{ {field} \| quote \}}\}}"
        assert re.search(wired, deployment), variable


def test_dockerfile_matches_the_chart_and_the_package() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert user == ("65532", "65532")  # non-root ...
    assert "runAsUser: 65532" in deployment  # ... the uid the chart's pod runs as
    assert "runAsGroup: 65532" in deployment
    scripts = _pyproject()["project"]["scripts"]
    assert 'ENTRYPOINT ["simjob-operator"]' in dockerfile
    assert scripts["simjob-operator"] == "simjob_operator.main:cli"
    (port,) = re.findall(r"^EXPOSE (\d+)$", dockerfile, re.MULTILINE)
    assert int(port) == _values()["health"]["port"]
    (python,) = re.findall(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)-slim", dockerfile, re.MULTILINE)
    assert _pyproject()["project"]["requires-python"] == ">=3.11"
    assert tuple(map(int, python.split("."))) >= (3, 11)


@pytest.mark.parametrize("key", sorted(yaml.safe_load((CHART / "values.yaml").read_text())))
def test_docs_describe_every_value(key: str) -> None:
    assert f"`{key}" in (REPO / "docs" / "helm.md").read_text(), f"docs/helm.md misses {key}"
