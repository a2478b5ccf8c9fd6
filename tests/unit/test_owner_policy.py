"""The owner policy's generated files, offline: crds/owner-policy.yaml and the chart's
files/owner-policy-spec.yaml follow simjob_operator.api.owner_policy (``make crds``),
the policy checks creation only and denies, and the chart wraps the same spec behind
``ownerPolicy.enabled``. Its behaviour on the real API server: tests/integration/
test_owner_policy.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simjob_operator.api import owner_policy as policy

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "simjob-operator"


def test_generated_files_match_the_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert policy.main(["--check", "--root", str(REPO)]) == 0, capsys.readouterr().err


def test_cli_writes_then_checks_and_finds_a_hand_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert policy.main(["--check", "--root", str(tmp_path)]) == 1
    assert policy.main(["--root", str(tmp_path)]) == 0
    assert policy.main(["--check", "--root", str(tmp_path)]) == 0
    edited = tmp_path / policy.MANIFEST_PATH
    edited.write_text(edited.read_text().replace("Deny", "Warn"))
    capsys.readouterr()
    assert policy.main(["--check", "--root", str(tmp_path)]) == 1
    assert f"drifted: {edited}" in capsys.readouterr().err


def test_the_manifest_is_a_policy_and_its_binding() -> None:
    text = (REPO / policy.MANIFEST_PATH).read_text()
    assert "do not edit" in text.splitlines()[0]
    vap, binding = yaml.safe_load_all(text)
    assert vap["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert vap["kind"] == "ValidatingAdmissionPolicy"
    assert binding["kind"] == "ValidatingAdmissionPolicyBinding"
    assert binding["spec"] == {"policyName": vap["metadata"]["name"], "validationActions": ["Deny"]}
    spec = vap["spec"]
    assert spec["failurePolicy"] == "Fail"
    (rule,) = spec["matchConstraints"]["resourceRules"]
    # creation only: the owner is immutable, and the operator's updates must never fail
    assert rule == {
        "apiGroups": ["simjob.io"],
        "apiVersions": ["*"],
        "operations": ["CREATE"],
        "resources": ["simjobs"],
    }
    (validation,) = spec["validations"]
    assert validation["reason"] == "Forbidden"
    assert "namespaceObject.metadata.name" in validation["expression"]
    assert policy.ALLOWED_OWNERS_ANNOTATION in validation["messageExpression"]
    assert policy.ALLOWED_OWNERS_ANNOTATION == "simjob.io/allowed-owners"


def test_the_chart_wraps_the_same_spec_behind_a_value() -> None:
    spec_file = CHART / "files" / "owner-policy-spec.yaml"
    assert yaml.safe_load(spec_file.read_text()) == policy.policy_spec()
    template = (CHART / "templates" / "owner-policy.yaml").read_text()
    assert "{{- if .Values.ownerPolicy.enabled }}" in template
    assert '.Files.Get "files/owner-policy-spec.yaml"' in template
    assert yaml.safe_load((CHART / "values.yaml").read_text())["ownerPolicy"] == {"enabled": True}
