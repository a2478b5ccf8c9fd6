"""Smoke tests of the real local control plane (hack/cluster): API server,
schema validation, the Job controller + scheduler, and KWOK's pod stages.

Neighbours: tests/conftest.py (the ``kubeconfig`` fixture that starts it).
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

pytestmark = pytest.mark.integration

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.simjob.io
spec:
  group: smoke.simjob.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
"""


def kubectl(
    kubeconfig: Path, kubectl_path: Path, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kubectl_path), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


@pytest.fixture
def namespace(kubeconfig: Path, kubectl_path: Path) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    kubectl(kubeconfig, kubectl_path, "create", "namespace", name)
    yield name
    kubectl(kubeconfig, kubectl_path, "delete", "namespace", name, "--wait=false")


def test_nodes_are_kwok_and_ready(kubeconfig: Path, kubectl_path: Path) -> None:
    # The KWOK nodes (type=kwok); the real kubelet node (type=real) has its own tests.
    out = kubectl(kubeconfig, kubectl_path, "get", "nodes", "-l", "type=kwok", "-o", "json").stdout
    nodes = json.loads(out)["items"]
    assert len(nodes) >= 3
    for node in nodes:
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready, node["metadata"]["name"]
        assert ready[0]["status"] == "True", node["metadata"]["name"]


def test_crd_roundtrip_and_server_side_validation(
    kubeconfig: Path, kubectl_path: Path, namespace: str
) -> None:
    from kubernetes import client, config

    kubectl(kubeconfig, kubectl_path, "apply", "-f", "-", stdin=CRD)
    kubectl(
        kubeconfig,
        kubectl_path,
        "wait",
        "--for=condition=Established",
        "crd/widgets.smoke.simjob.io",
        "--timeout=60s",
    )
    good = (
        "apiVersion: smoke.simjob.io/v1\nkind: Widget\n"
        f"metadata: {{name: w1, namespace: {namespace}}}\nspec: {{size: 3}}\n"
    )
    kubectl(kubeconfig, kubectl_path, "create", "-f", "-", stdin=good)

    api = client.CustomObjectsApi(config.new_client_from_config(str(kubeconfig)))
    obj: dict[str, Any] = api.get_namespaced_custom_object(
        "smoke.simjob.io", "v1", namespace, "widgets", "w1"
    )
    assert obj["spec"] == {"size": 3}
    assert obj["metadata"]["uid"]

    bad = good.replace("w1", "w2").replace("size: 3", "size: 0")
    result = kubectl(kubeconfig, kubectl_path, "create", "-f", "-", stdin=bad, check=False)
    assert result.returncode != 0
    assert (
        "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
        in result.stderr
    ), result.stderr


def _job(
    name: str,
    namespace: str,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> str:
    return json.dumps(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": labels or {}, "annotations": annotations or {}},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {"name": "c", "image": "example.invalid/sim:1", "command": ["true"]}
                        ],
                    },
                },
            },
        }
    )


def _wait_job(
    kubeconfig: Path,
    kubectl_path: Path,
    namespace: str,
    name: str,
    condition: str,
    timeout: float = 60,
) -> None:
    kubectl(
        kubeconfig,
        kubectl_path,
        "-n",
        namespace,
        "wait",
        f"--for=condition={condition}",
        f"job/{name}",
        f"--timeout={int(timeout)}s",
    )


def _pod(kubeconfig: Path, kubectl_path: Path, namespace: str, job: str) -> dict[str, Any]:
    out = kubectl(
        kubeconfig,
        kubectl_path,
        "-n",
        namespace,
        "get",
        "pods",
        "-l",
        f"job-name={job}",
        "-o",
        "json",
    ).stdout
    pods: list[dict[str, Any]] = json.loads(out)["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def test_job_runs_to_completion_on_kwok(
    kubeconfig: Path, kubectl_path: Path, namespace: str
) -> None:
    kubectl(kubeconfig, kubectl_path, "apply", "-f", "-", stdin=_job("ok", namespace))
    _wait_job(kubeconfig, kubectl_path, namespace, "ok", "Complete")
    pod = _pod(kubeconfig, kubectl_path, namespace, "ok")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"].startswith("kwok-node-")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_kwok_failure_label_sets_exit_code_and_reason(
    kubeconfig: Path, kubectl_path: Path, namespace: str
) -> None:
    stage = "pod-container-running-failed.stage.kwok.x-k8s.io"
    manifest = _job(
        "oom",
        namespace,
        labels={stage: "true"},
        annotations={f"{stage}/exit-code": "137", f"{stage}/reason": "OOMKilled"},
    )
    kubectl(kubeconfig, kubectl_path, "apply", "-f", "-", stdin=manifest)
    _wait_job(kubeconfig, kubectl_path, namespace, "oom", "Failed")
    terminated = _pod(kubeconfig, kubectl_path, namespace, "oom")["status"]["containerStatuses"][0][
        "state"
    ]["terminated"]
    assert terminated["exitCode"] == 137
    assert terminated["reason"] == "OOMKilled"


def test_kwok_delay_annotation_keeps_pod_running(
    kubeconfig: Path, kubectl_path: Path, namespace: str
) -> None:
    manifest = _job(
        "long", namespace, annotations={"pod-complete.stage.kwok.x-k8s.io/delay": "600s"}
    )
    kubectl(kubeconfig, kubectl_path, "apply", "-f", "-", stdin=manifest)
    deadline = time.monotonic() + 60
    phase = None
    while time.monotonic() < deadline:
        out = kubectl(
            kubeconfig,
            kubectl_path,
            "-n",
            namespace,
            "get",
            "pods",
            "-l",
            "job-name=long",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ).stdout
        phase = out.strip() or None
        if phase == "Running":
            break
        time.sleep(0.5)
    assert phase == "Running"
    # The default completion delay is ~2 s; 8 s later it must still run.
    time.sleep(8)
    assert _pod(kubeconfig, kubectl_path, namespace, "long")["status"]["phase"] == "Running"
