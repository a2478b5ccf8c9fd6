"""The generated CRDs on the real API server: every schema case of the bad-manifest
corpus is rejected with its expected message, the semantic cases and the examples
are accepted (with defaults filled), and explain, printer columns, categories,
field selectors and the status subresource behave as docs/api.md says.

Neighbours: tests/conftest.py (``kubeconfig``, ``kubectl_path``),
tests/corpus_cases.py (the corpus reader), crds/ (what is applied).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import namespace_manifest
from tests.support.corpus_cases import TIERS_FILE, CorpusCase, cases

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CRDS = ("simjobs.simjob.io", "simtiers.simjob.io", "slurmclusters.simjob.io")


class Kubectl:
    """kubectl against the test cluster; returns the completed process."""

    def __init__(self, kubeconfig: Path, binary: Path) -> None:
        self.base = [str(binary), "--kubeconfig", str(kubeconfig)]

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.base, *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def apply(
        self, namespace: str, doc: dict[str, Any], *extra: str
    ) -> subprocess.CompletedProcess[str]:
        return self("apply", "-n", namespace, "-f", "-", *extra, stdin=json.dumps(doc), check=False)


@pytest.fixture(scope="module")
def kubectl(kubeconfig: Path, kubectl_path: Path) -> Kubectl:
    run = Kubectl(kubeconfig, kubectl_path)
    run("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    run("wait", "--for=condition=Established", *(f"crd/{name}" for name in CRDS), "--timeout=60s")
    return run


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"schema-corpus-{uuid.uuid4().hex[:8]}"
    # owners besides the namespace (alice, ...): allowed as in every test namespace
    kubectl("apply", "-f", "-", stdin=json.dumps(namespace_manifest(name)))
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.mark.parametrize("case", cases("schema"), ids=lambda case: case.id)
def test_api_server_rejects_schema_case(kubectl: Kubectl, namespace: str, case: CorpusCase) -> None:
    *originals, final = case.documents
    try:
        for doc in originals:
            created = kubectl.apply(namespace, doc)
            assert created.returncode == 0, f"the valid original was rejected: {created.stderr}"
        result = kubectl.apply(namespace, final)
        assert result.returncode != 0, f"accepted: {result.stdout}"
        assert case.expect in result.stderr
    finally:
        if final["kind"] in ("SimTier", "SlurmCluster"):  # cluster-scoped: not in the namespace
            kind = final["kind"].lower()
            kubectl("delete", kind, final["metadata"]["name"], "--ignore-not-found")


@pytest.mark.parametrize("case", cases("semantic"), ids=lambda case: case.id)
def test_api_server_accepts_semantic_case(
    kubectl: Kubectl, namespace: str, case: CorpusCase
) -> None:
    """Only the operator can tell these are wrong; the schema must let them in."""
    result = kubectl.apply(namespace, case.final, "--dry-run=server")
    assert result.returncode == 0, result.stderr


def _dry_run(kubectl: Kubectl, namespace: str, path: Path) -> dict[str, dict[str, Any]]:
    """name -> the object as the server would store it (defaults applied)."""
    stored = {}
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        result = kubectl.apply(namespace, doc, "--dry-run=server", "-o", "json")
        assert result.returncode == 0, f"{path.name}: {result.stderr}"
        obj = json.loads(result.stdout)
        stored[obj["metadata"]["name"]] = obj
    return stored


def test_examples_and_corpus_tier_are_valid_and_defaulted(kubectl: Kubectl, namespace: str) -> None:
    tiers = _dry_run(kubectl, namespace, REPO / "examples" / "tiers.yaml")
    assert set(tiers) == {"basic", "premium"}
    assert tiers["basic"]["spec"]["gpu"] == 0  # defaulted by the API server
    assert _dry_run(kubectl, namespace, TIERS_FILE)["corpus-tier"]["spec"]["gpu"] == 0
    jobs: dict[str, dict[str, Any]] = {}
    for name in ("simjob-hello.yaml", "simjob-long.yaml", "simjob-fail.yaml"):
        jobs.update(_dry_run(kubectl, namespace, REPO / "examples" / name))
    assert len(jobs) == 3
    for obj in jobs.values():
        assert obj["spec"]["backend"] == "kubernetes"
        assert obj["spec"]["cancel"] is False
        assert "status" not in obj


def test_kubectl_explain_shows_field_descriptions(kubectl: Kubectl) -> None:
    deadline = time.monotonic() + 60  # the OpenAPI document is published asynchronously
    while True:
        result = kubectl("explain", "simjob.spec.tier", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert result.returncode == 0, result.stderr
    assert "Name of the SimTier that sets resources and limits. Immutable." in result.stdout
    explained = kubectl("explain", "st.spec").stdout
    assert "maxRuntimeSeconds\t<integer> -required-" in explained


def _simjob(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "simjob.io/v1alpha1",
        "kind": "SimJob",
        "metadata": {"name": name},
        "spec": {"tier": "basic", "image": "busybox:1.36", "command": ["true"], **spec},
    }


def test_printer_columns_category_and_field_selectors(kubectl: Kubectl, namespace: str) -> None:
    assert kubectl.apply(namespace, _simjob("columns", owner="alice")).returncode == 0
    header = kubectl("get", "sj", "-n", namespace).stdout.splitlines()[0].split()
    columns = ["NAME", "PHASE", "REASON", "PROGRESS", "TIER", "BACKEND", "OWNER", "AGE"]
    assert header == columns  # REASON: why it waits; PROGRESS: how far it is (issue 11, 12)
    wide = kubectl("get", "sj", "-n", namespace, "-o", "wide").stdout.splitlines()[0].split()
    assert wide == [*columns, "MESSAGE"]
    tier_header = kubectl("get", "st").stdout.splitlines()
    if tier_header:  # "No resources found" goes to stderr when there is no tier
        assert tier_header[0].split() == [
            "NAME",
            "CPU",
            "MEMORY",
            "GPU",
            "MAX-RUNTIME",
            "SLOTS",
            "AGE",
        ]

    assert "simjob.simjob.io/columns" in kubectl("get", "sim", "-n", namespace, "-o", "name").stdout

    def selected(selector: str) -> str:
        return kubectl(
            "get", "sj", "-n", namespace, "--field-selector", selector, "-o", "name"
        ).stdout

    assert "simjob.simjob.io/columns" in selected("spec.tier=basic")
    assert "columns" not in selected("spec.tier=premium")
    assert "columns" in selected("spec.backend=kubernetes")


def test_status_is_a_strict_subresource_that_tolerates_kopf(
    kubectl: Kubectl, namespace: str
) -> None:
    doc = {**_simjob("status"), "status": {"phase": "Succeeded"}}
    assert kubectl.apply(namespace, doc).returncode == 0
    stored = json.loads(kubectl("get", "sj", "status", "-n", namespace, "-o", "json").stdout)
    assert "status" not in stored, "status must be ignored on create (status subresource)"

    def patch_status(status: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return kubectl(
            "patch", "sj", "status", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}), check=False,
        )  # fmt: skip

    bad = patch_status({"phase": "Done"})
    assert bad.returncode != 0
    assert 'status.phase: Unsupported value: "Done"' in bad.stderr
    good = patch_status({"phase": "Queued", "owner": "alice", "kopf": {"progress": {"x": 1}}})
    assert good.returncode == 0, good.stderr
    status = json.loads(kubectl("get", "sj", "status", "-n", namespace, "-o", "json").stdout)[
        "status"
    ]
    assert status == {"phase": "Queued", "owner": "alice", "kopf": {"progress": {"x": 1}}}
    # Unknown status fields are pruned, not stored.
    assert patch_status({"bogus": 1}).returncode == 0
    status = json.loads(kubectl("get", "sj", "status", "-n", namespace, "-o", "json").stdout)
    assert "bogus" not in status["status"]
