"""The generated CRDs: no drift from the models, structural schemas, printer
columns, defaults and the CEL rules the API relies on.

Neighbours: simjob_operator.api.crd_generation (the generator), crds/ and the Helm
chart's charts/simjob-operator/crds/ (its output, both written by `make crds`),
tests/integration/test_schema_corpus.py (the same rules against the API server).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from simjob_operator.api import crd_generation as gen
from simjob_operator.api import names as c
from simjob_operator.api.base import MAX_ARG_LENGTH, NO_CONTROL_EXCEPT_TAB_NEWLINE_PATTERN
from simjob_operator.api.crd_generation import generate_crds
from simjob_operator.api.structural_schema import ALLOWED_KEYWORDS, TYPES

REPO = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO / "crds"
CHART_CRDS_DIR = REPO / "charts" / "simjob-operator" / "crds"

JsonDict = dict[str, Any]


def _crd(kind: str) -> JsonDict:
    (crd,) = [crd for crd in generate_crds() if crd["spec"]["names"]["kind"] == kind]
    return crd


def _version(kind: str) -> JsonDict:
    version: JsonDict
    (version,) = _crd(kind)["spec"]["versions"]
    return version


def _schema(kind: str) -> JsonDict:
    schema: JsonDict = _version(kind)["schema"]["openAPIV3Schema"]
    return schema


def _at(schema: JsonDict, dotted: str) -> JsonDict:
    node = schema
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


def _walk(node: JsonDict, path: str = "") -> Iterator[tuple[str, JsonDict]]:
    """(path, node) for every schema node, depth first."""
    yield path, node
    for key, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


# --------------------------------------------------------------------------- drift


@pytest.mark.parametrize("out_dir", [CRDS_DIR, CHART_CRDS_DIR], ids=["crds", "chart-crds"])
def test_crd_files_match_the_models(out_dir: Path) -> None:
    drifted = [str(p.relative_to(REPO)) for p in gen.drifted_files(out_dir)]
    assert not drifted, f"{drifted} differ from simjob_operator.api: run `make crds`"


def test_the_chart_holds_only_the_generated_crds() -> None:
    """Nothing hand-written sits next to the generated CRDs in the chart (Helm would
    install it too)."""
    assert sorted(p.name for p in CHART_CRDS_DIR.iterdir()) == sorted(gen.rendered_files())


def test_generated_files_are_named_like_controller_gen() -> None:
    assert sorted(gen.rendered_files()) == [
        "simjob.io_simjobs.yaml",
        "simjob.io_simtiers.yaml",
        "simjob.io_simusages.yaml",
        "simjob.io_slurmclusters.yaml",
    ]


def test_render_is_deterministic_and_round_trips() -> None:
    first = [gen.render_yaml(crd) for crd in generate_crds()]
    assert first == [gen.render_yaml(crd) for crd in generate_crds()]
    for crd, text in zip(generate_crds(), first, strict=True):
        assert text.startswith("# generated from simjob_operator.api by ")
        assert "do not edit" in text.splitlines()[0]
        assert yaml.safe_load(text) == crd


def test_cli_writes_and_checks_several_out_dirs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "crds", tmp_path / "chart" / "crds"
    assert gen.main(["--check", "--out", str(a)]) == 1  # nothing there yet
    assert gen.main(["--out", str(a), "--out", str(b)]) == 0
    assert sorted(p.name for p in b.iterdir()) == sorted(gen.rendered_files())
    assert gen.main(["--check", "--out", str(a), "--out", str(b)]) == 0

    edited = b / "simjob.io_simtiers.yaml"
    edited.write_text(edited.read_text() + "# hand edit\n")
    stale = a / "simjob.io_oldthings.yaml"
    stale.write_text("kind: CustomResourceDefinition\n")
    capsys.readouterr()
    assert gen.main(["--check", "--out", str(a), "--out", str(b)]) == 1
    err = capsys.readouterr().err
    assert f"drifted: {edited}" in err
    assert f"drifted: {stale}" in err
    assert "make crds" in err

    assert gen.main(["--out", str(a), "--out", str(b)]) == 0
    assert not stale.exists()
    assert gen.main(["--check", "--out", str(a), "--out", str(b)]) == 0


# --------------------------------------------------------------------------- CRD shape


@pytest.mark.parametrize(
    ("kind", "plural", "scope", "short"),
    [("SimJob", "simjobs", "Namespaced", ["sj"]), ("SimTier", "simtiers", "Cluster", ["st"])],
)
def test_names_scope_and_version(kind: str, plural: str, scope: str, short: list[str]) -> None:
    crd = _crd(kind)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.simjob.io"
    spec = crd["spec"]
    assert spec["group"] == c.GROUP == "simjob.io"
    assert spec["scope"] == scope
    names = spec["names"]
    assert names["kind"] == kind
    assert names["plural"] == plural
    assert names["shortNames"] == short
    # A category equal to a resource name would hijack `kubectl get simjob`.
    assert not {names["singular"], names["plural"], *short} & set(names["categories"])
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_simjob_printer_columns() -> None:
    columns = {col["name"].upper(): col for col in _version("SimJob")["additionalPrinterColumns"]}
    assert list(columns) == [
        "PHASE",
        "REASON",
        "PROGRESS",
        "TIER",
        "BACKEND",
        "OWNER",
        "AGE",
        "MESSAGE",
    ]
    assert columns["PHASE"]["jsonPath"] == ".status.phase"
    assert columns["REASON"]["jsonPath"] == ".status.reason"  # why it waits, at a glance
    assert columns["PROGRESS"]["jsonPath"] == ".status.progress.percent"
    assert columns["TIER"]["jsonPath"] == ".spec.tier"
    assert columns["BACKEND"]["jsonPath"] == ".spec.backend"
    assert columns["OWNER"]["jsonPath"] == ".status.owner"  # effective owner, see docs/api.md
    assert columns["AGE"] == {**columns["AGE"], "type": "date"}
    assert columns["AGE"]["jsonPath"] == ".metadata.creationTimestamp"
    assert columns["MESSAGE"]["jsonPath"] == ".status.message"
    assert columns["MESSAGE"]["priority"] == 1
    assert all("priority" not in col for name, col in columns.items() if name != "MESSAGE")


def test_simtier_printer_columns() -> None:
    columns = {col["name"].upper(): col for col in _version("SimTier")["additionalPrinterColumns"]}
    assert list(columns) == ["CPU", "MEMORY", "GPU", "MAX-RUNTIME", "SLOTS", "AGE"]
    assert columns["MAX-RUNTIME"]["jsonPath"] == ".spec.maxRuntimeSeconds"
    assert columns["SLOTS"]["jsonPath"] == ".spec.maxConcurrentPerOwner"
    assert columns["GPU"]["type"] == "integer"


@pytest.mark.parametrize("kind", ["SimJob", "SimTier"])
def test_printer_columns_and_selectable_fields_point_into_the_schema(kind: str) -> None:
    version = _version(kind)
    columns = [(col["jsonPath"], col["type"]) for col in version["additionalPrinterColumns"]]
    for path, type_ in columns:
        if path.startswith(".metadata."):
            continue
        node = _at(_schema(kind), path.removeprefix("."))
        assert node["type"] in {"string", "integer", "number", "boolean"}, path
        assert type_ == node["type"] or (type_ == "date" and node["type"] == "string"), path
    # Selectable fields must be strings, integers or booleans (the API server's rule).
    for field in version.get("selectableFields", []):
        node = _at(_schema(kind), field["jsonPath"].removeprefix("."))
        assert node["type"] in {"string", "integer", "boolean"}, field


# --------------------------------------------------------------------------- structural


@pytest.mark.parametrize("kind", ["SimJob", "SimTier"])
def test_schema_is_structural(kind: str) -> None:
    for path, node in _walk(_schema(kind)):
        assert set(node) <= ALLOWED_KEYWORDS, (path, set(node) - ALLOWED_KEYWORDS)
        for banned in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "nullable"):
            assert banned not in node, (path, banned)
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            assert node.get("type") in TYPES, path
        assert node.get("default", "unset") is not None, path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(bound, False), bool), (path, bound)
        assert not node.get("uniqueItems"), path
        for key in node.get("required", []):
            assert key in node["properties"], (path, key)
        if node.get("type") == "array":
            assert "type" in node["items"], path


@pytest.mark.parametrize("kind", ["SimJob", "SimTier"])
def test_every_field_has_a_description(kind: str) -> None:
    schema = _schema(kind)
    for path, node in _walk(schema):
        for key, sub in node.get("properties", {}).items():
            if f"{path}.{key}" == ".metadata":
                # The API server forbids anything but `type: object` at metadata.
                assert sub == {"type": "object"}
                continue
            assert sub.get("description"), f"{path}.{key}"
    assert {"apiVersion", "kind", "metadata", "spec", "status"} <= set(schema["properties"])
    assert schema["required"] == ["spec"]


def test_simjob_spec_fields_and_defaults() -> None:
    spec = _at(_schema("SimJob"), "spec")
    assert spec["required"] == ["tier", "command"]
    props = spec["properties"]
    assert props["backend"]["default"] == "kubernetes"
    assert props["backend"]["enum"] == ["kubernetes", "slurm"]
    assert props["cancel"]["default"] is False
    assert props["command"]["minItems"] == 1
    # json_schema_extra "items" is merged into, not substituted for, the item schema.
    assert props["command"]["items"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ARG_LENGTH,
        "pattern": NO_CONTROL_EXCEPT_TAB_NEWLINE_PATTERN,
    }
    assert props["maxRuntimeSeconds"]["minimum"] == 1
    assert props["maxRuntimeSeconds"]["maximum"] == c.MAX_RUNTIME_SECONDS_CEILING
    assert props["env"]["x-kubernetes-list-type"] == "map"
    assert props["env"]["items"]["required"] == ["name"]
    labels = props["podMetadata"]["properties"]["labels"]
    assert labels["type"] == "object"
    assert labels["additionalProperties"]["type"] == "string"
    assert labels["additionalProperties"]["maxLength"] == 63
    assert "owner" in props
    assert "image" in props
    assert "default" not in props["owner"]


def test_simtier_spec_fields_and_defaults() -> None:
    spec = _at(_schema("SimTier"), "spec")
    assert spec["required"] == ["cpu", "memory", "maxRuntimeSeconds"]
    props = spec["properties"]
    assert props["gpu"]["default"] == 0
    assert props["gpu"]["minimum"] == 0
    assert props["maxConcurrentPerOwner"]["default"] == 1
    assert props["maxConcurrentPerOwner"]["minimum"] == 1
    assert props["maxRuntimeSeconds"]["minimum"] == 1
    assert set(props["slurm"]["properties"]) == {
        "partition", "qos", "account", "cpusPerTask", "memory"
    }  # fmt: skip


@pytest.mark.parametrize("kind", ["SimJob", "SimTier"])
def test_status_is_strict_but_tolerates_kopf(kind: str) -> None:
    status = _at(_schema(kind), "status")
    assert "x-kubernetes-preserve-unknown-fields" not in status
    assert status["properties"]["kopf"]["x-kubernetes-preserve-unknown-fields"] is True


def test_status_phases_and_conditions() -> None:
    status = _at(_schema("SimJob"), "status")
    assert status["properties"]["phase"]["enum"] == [
        "Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled", "TimedOut"
    ]  # fmt: skip
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["properties"]) == {
        "type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"
    }  # fmt: skip


# --------------------------------------------------------------------------- CEL


def _rules(node: JsonDict) -> dict[str, str]:
    return {v["rule"]: v["message"] for v in node.get("x-kubernetes-validations", [])}


def test_cel_tier_is_immutable() -> None:
    (message,) = _rules(_at(_schema("SimJob"), "spec.tier")).values()
    assert "self == oldSelf" in _rules(_at(_schema("SimJob"), "spec.tier"))
    assert message.startswith("spec.tier is immutable")


def test_cel_cancel_cannot_go_back() -> None:
    rules = _rules(_at(_schema("SimJob"), "spec.cancel"))
    assert rules == {"self || !oldSelf": "cancel cannot be set back to false once true"}


def test_cel_owner_is_immutable_including_add_and_remove() -> None:
    assert "self == oldSelf" in _rules(_at(_schema("SimJob"), "spec.owner"))
    assert "has(self.owner) == has(oldSelf.owner)" in _rules(_at(_schema("SimJob"), "spec"))


@pytest.mark.parametrize("field", ["labels", "annotations"])
def test_cel_reserved_pod_metadata_keys(field: str) -> None:
    node = _at(_schema("SimJob"), f"spec.podMetadata.{field}")
    message = _rules(node)["self.all(k, !k.startsWith('simjob.io/'))"]
    assert "simjob.io/" in message


def test_cel_every_spec_field_but_cancel_is_immutable() -> None:
    spec = _at(_schema("SimJob"), "spec")
    for name, node in spec["properties"].items():
        rules = _rules(node)
        if name == "cancel":
            assert "self == oldSelf" not in rules
            continue
        assert rules.get("self == oldSelf", "").startswith(f"spec.{name} is immutable"), name
    optional = (
        set(spec["properties"])
        - set(spec["required"])
        - {"cancel", "args", "env", "backend", "inputs", "concurrencyPolicy", "reuse"}
    )
    for name in optional:
        assert f"has(self.{name}) == has(oldSelf.{name})" in _rules(spec), name


def test_cel_tier_quantities_are_bounded() -> None:
    props = _at(_schema("SimTier"), "spec")["properties"]
    for name, high in (("cpu", "1024"), ("memory", "64Ti")):
        messages = _rules(props[name]).values()
        assert f"{name} must be at most {high}" in messages
        assert f"{name} must be above 0" in messages
    for name in ("ttlSecondsAfterFinished", "maxPendingSeconds", "gpu", "maxRuntimeSeconds"):
        assert "maximum" in props[name], name


@pytest.mark.parametrize(
    ("kind", "limit"),
    [("SimJob", c.SIMJOB_NAME_MAX_LENGTH), ("SimTier", c.SIMTIER_NAME_MAX_LENGTH)],
)
def test_cel_name_length(kind: str, limit: int) -> None:
    assert f"self.metadata.name.size() <= {limit}" in _rules(_schema(kind))


@pytest.mark.parametrize("field", ["cpu", "memory"])
def test_cel_tier_quantities_above_zero(field: str) -> None:
    rules = _rules(_at(_schema("SimTier"), f"spec.{field}"))
    (rule,) = [r for r, m in rules.items() if m == f"{field} must be above 0"]
    assert "quantity(self).isGreaterThan(quantity('0'))" in rule


@pytest.mark.parametrize("kind", ["SimJob", "SimTier"])
def test_cel_rules_that_iterate_are_bounded(kind: str) -> None:
    """Rules over maps/lists need maxProperties/maxItems or the API server's static
    cost estimate may reject the CRD; strings they read need maxLength."""
    for path, node in _walk(_schema(kind)):
        for rule in _rules(node):
            if node["type"] == "object" and "additionalProperties" in node:
                assert "maxProperties" in node, (path, rule)
            if node["type"] == "array":
                assert "maxItems" in node, (path, rule)
            if node["type"] == "string":
                assert "maxLength" in node, (path, rule)
