"""The generated bad-input corpus (tests/support/corpus_gen.py) on the real API server:
every ``rejected`` case is refused with its message, every ``accepted`` boundary case
is taken. Creates are server dry-runs (nothing is stored); an update case creates its
valid original for real in this module's namespace, then dry-runs the update.

Fast on purpose: the kubernetes client (no kubectl per case), 8 requests at a time,
strict field validation as kubectl uses. Neighbours: tests/conftest.py
(``kubeconfig``), test_schema_corpus.py (the hand-written file corpus), crds/.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.support.corpus_gen import GenCase, schema_cases

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION = "simjob.io", "v1alpha1"
PLURALS = {"SimJob": "simjobs", "SimTier": "simtiers", "SlurmCluster": "slurmclusters"}
CASES = schema_cases()


@pytest.fixture(scope="module")
def api(kubeconfig: Path, kubectl_path: Path) -> client.CustomObjectsApi:
    kubectl = [str(kubectl_path), "--kubeconfig", str(kubeconfig)]
    subprocess.run([*kubectl, "apply", "--server-side", "--force-conflicts", "-f",
                    str(REPO / "crds")], check=True, capture_output=True, timeout=120)  # fmt: skip
    subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                    *(f"crd/{p}.{GROUP}" for p in PLURALS.values())],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = 16
    return client.CustomObjectsApi(client.ApiClient(configuration))


@pytest.fixture(scope="module")
def namespace(api: client.CustomObjectsApi) -> Iterator[str]:
    core = client.CoreV1Api(api.api_client)
    name = f"corpus-gen-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _update(
    api: client.CustomObjectsApi, namespace: str, plural: str, final: dict[str, Any]
) -> None:
    """Dry-run the update on the newest version: an operator may write the SimJob's
    status (or kopf its finalizer) between our read and our write (409: read again)."""
    name = final["metadata"]["name"]
    for attempt in range(5):
        current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        body: dict[str, Any] = json.loads(json.dumps(final))
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        try:
            api.replace_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, body,
                dry_run="All", field_validation="Strict",
            )  # fmt: skip
            return
        except ApiException as exc:
            if exc.status != 409 or attempt == 4 or "modified" not in (exc.body or ""):
                raise


def _submit(api: client.CustomObjectsApi, namespace: str, case: GenCase) -> str | None:
    """None when the outcome is as expected, else what went wrong."""
    *originals, final = case.documents
    kind = final["kind"]
    plural = PLURALS[kind]
    namespaced = kind == "SimJob"
    for doc in originals:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, doc,
                                            field_validation="Strict")  # fmt: skip
    try:
        if originals:
            _update(api, namespace, plural, final)
        elif namespaced:
            api.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, final, dry_run="All", field_validation="Strict"
            )
        else:
            api.create_cluster_custom_object(GROUP, VERSION, plural, final, dry_run="All",
                                             field_validation="Strict")  # fmt: skip
    except ApiException as exc:
        try:
            message = str(json.loads(exc.body or "{}").get("message", exc.body))
        except ValueError:
            message = str(exc.body)
        if case.outcome == "accepted":
            return f"rejected: {message[:600]}"
        return None if case.expect in message else f"wrong message: {message[:800]}"
    return "accepted" if case.outcome == "rejected" else None


def test_generated_corpus_is_big_enough() -> None:
    assert len(CASES) >= 200


def test_api_server_decides_every_generated_case(
    api: client.CustomObjectsApi, namespace: str
) -> None:
    """All cases at once, 8 in flight; one report listing every case that went wrong."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda case: (case, _submit(api, namespace, case)), CASES))
    wrong = [f"{case.id}: {problem} (expected {case.expect!r})" for case, problem in results
             if problem is not None]  # fmt: skip
    assert wrong == [], "\n".join(wrong)
