"""The real kubelet node (hack/node/) with plain pods: real containers, not KWOK.

The session fixture ``kubeconfig`` (tests/conftest.py) starts the control plane with
hack/cluster/up.sh, which brings up the real node too (unless SIMJOB_REAL_NODE=0, then
these tests skip). The module fixture builds the busybox and simulation images if needed
(hack/images/build.sh, cached by content) and imports them into the node's containerd.
Pods select the node with ``nodeSelector: {simjob.io/pool: real}`` and tolerate its
taint ``simjob.io/pool=real:NoSchedule``; images use ``imagePullPolicy: Never``.

What leaves the host clean after ``make cluster-down`` is checked by
hack/node/check-clean.sh (run by hand: these tests keep the cluster up).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.realnode]

REPO = Path(__file__).resolve().parents[2]
POOL_LABEL = "simjob.io/pool"
POOL = "real"
BUSYBOX = "docker.io/simjob/busybox:local"
SIMULATION = "docker.io/simjob/simulation:local"
SIMULATION_UID = 65532
PROGRESS = "SIMJOB_PROGRESS "


class Kubectl:
    def __init__(self, kubeconfig: Path, kubectl: Path) -> None:
        self.base = [str(kubectl), "--kubeconfig", str(kubeconfig)]

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.base, *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)


def wait_until(what: str, timeout: float, probe: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def kube(kubeconfig: Path, kubectl_path: Path) -> Kubectl:
    return Kubectl(kubeconfig, kubectl_path)


@pytest.fixture(scope="module")
def real_node(kube: Kubectl) -> str:
    """The real node's name; builds and imports the test images (cache hits when built)."""
    if os.environ.get("SIMJOB_REAL_NODE", "1") == "0":
        pytest.skip("SIMJOB_REAL_NODE=0: the cluster runs KWOK nodes only")
    skipped = REPO / ".cluster" / "real-node-skipped"
    if skipped.exists():
        pytest.skip(f"no real node in this cluster: {skipped.read_text().strip()}")
    nodes = kube.json("get", "nodes", "-l", f"{POOL_LABEL}={POOL}")["items"]
    assert len(nodes) == 1, "hack/cluster/up.sh should have started one real node"
    subprocess.run(
        [str(REPO / "hack" / "images" / "build.sh"), "--import", "busybox", "simulation"],
        check=True,
        timeout=1800,
        stdout=subprocess.DEVNULL,
    )
    return str(nodes[0]["metadata"]["name"])


@pytest.fixture
def namespace(kube: Kubectl) -> Iterator[str]:
    name = f"realnode-{uuid.uuid4().hex[:8]}"
    kube.run("create", "namespace", name)
    # Pods are admitted only once the namespace's default ServiceAccount exists.
    wait_until(
        "the default ServiceAccount",
        60,
        lambda: (
            kube.run("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0
        ),
    )
    try:
        yield name
    finally:
        kube.run("delete", "namespace", name, "--wait=false", check=False)


def pod_manifest(
    name: str,
    image: str,
    *,
    command: list[str] | None = None,
    args: list[str] | None = None,
    memory: str = "64Mi",
) -> str:
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "resources": {
            "requests": {"cpu": "100m", "memory": memory},
            "limits": {"cpu": "500m", "memory": memory},
        },
    }
    if command is not None:
        container["command"] = command
    if args is not None:
        container["args"] = args
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {POOL_LABEL: POOL},
            "tolerations": [
                {"key": POOL_LABEL, "operator": "Equal", "value": POOL, "effect": "NoSchedule"}
            ],
            "dnsPolicy": "Default",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 2,
            "containers": [container],
        },
    }
    return json.dumps(pod)


def run_pod(kube: Kubectl, namespace: str, manifest: str, timeout: float = 120) -> dict[str, Any]:
    """Create the pod, wait until it has ended, return it (JSON)."""
    kube.run("-n", namespace, "apply", "-f", "-", stdin=manifest)
    name = json.loads(manifest)["metadata"]["name"]

    def ended() -> dict[str, Any] | None:
        pod: dict[str, Any] = kube.json("-n", namespace, "get", "pod", name)
        return pod if pod["status"].get("phase") in ("Succeeded", "Failed") else None

    try:
        result: dict[str, Any] = wait_until(f"pod {name} to end", timeout, ended)
    except AssertionError:
        events = kube.run("-n", namespace, "get", "events", check=False).stdout
        raise AssertionError(f"pod {name} did not end; events:\n{events}") from None
    return result


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = pod["status"]["containerStatuses"][0]["state"]
    assert "terminated" in state, state
    result: dict[str, Any] = state["terminated"]
    return result


def test_node_ready_with_pool_label_and_taint(kube: Kubectl, real_node: str) -> None:
    node = kube.json("get", "node", real_node)
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert node["metadata"]["labels"][POOL_LABEL] == POOL
    assert {"key": POOL_LABEL, "value": POOL, "effect": "NoSchedule"} in node["spec"]["taints"]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.")
    version = kube.json("version")["serverVersion"]["gitVersion"]
    assert node["status"]["nodeInfo"]["kubeletVersion"] == version


def test_untolerated_pod_stays_off_the_real_node(
    kube: Kubectl, namespace: str, real_node: str
) -> None:
    manifest = json.loads(pod_manifest("no-toleration", BUSYBOX, command=["true"]))
    del manifest["spec"]["tolerations"]
    kube.run("-n", namespace, "apply", "-f", "-", stdin=json.dumps(manifest))

    def unschedulable() -> bool:
        pod = kube.json("-n", namespace, "get", "pod", "no-toleration")
        conds = pod["status"].get("conditions", [])
        return any(c["type"] == "PodScheduled" and c["status"] == "False" for c in conds)

    wait_until("the pod to be unschedulable", 30, unschedulable)
    pod = kube.json("-n", namespace, "get", "pod", "no-toleration")
    assert pod["spec"].get("nodeName") is None


def test_exit_code_and_logs_from_a_real_container(
    kube: Kubectl, namespace: str, real_node: str
) -> None:
    manifest = pod_manifest("exit3", BUSYBOX, command=["sh", "-c", "echo hello; exit 3"])
    pod = run_pod(kube, namespace, manifest)
    assert pod["spec"]["nodeName"] == real_node
    assert pod["status"]["phase"] == "Failed"
    state = terminated(pod)
    assert state["exitCode"] == 3
    assert state["reason"] == "Error"
    assert kube.run("-n", namespace, "logs", "exit3").stdout == "hello\n"


def test_simulation_image_runs_heat_as_non_root(
    kube: Kubectl, namespace: str, real_node: str
) -> None:
    manifest = pod_manifest(
        "heat", SIMULATION, args=["--grid", "32", "--steps", "20", "--seconds", "1"], memory="128Mi"
    )
    pod = run_pod(kube, namespace, manifest)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert terminated(pod)["exitCode"] == 0
    logs = kube.run("-n", namespace, "logs", "heat").stdout
    progress = [
        json.loads(ln[len(PROGRESS) :]) for ln in logs.splitlines() if ln.startswith(PROGRESS)
    ]
    assert progress[0] == {"percent": 0.0, "message": "step 0 of 20"}
    assert progress[-1] == {"percent": 100.0, "message": "step 20 of 20"}
    assert "heat: done" in logs

    whoami = pod_manifest(
        "uid", SIMULATION, command=["python3", "-c", "import os; print(os.getuid(), os.getgid())"]
    )
    pod = run_pod(kube, namespace, whoami)
    assert pod["status"]["phase"] == "Succeeded"
    assert kube.run("-n", namespace, "logs", "uid").stdout.split() == [
        str(SIMULATION_UID),
        str(SIMULATION_UID),
    ]


def test_memory_hog_is_oom_killed_by_the_kernel(
    kube: Kubectl, namespace: str, real_node: str
) -> None:
    manifest = pod_manifest("hog", SIMULATION, args=["--alloc-mib", "200"], memory="32Mi")
    pod = run_pod(kube, namespace, manifest)
    assert pod["status"]["phase"] == "Failed"
    state = terminated(pod)
    assert state["reason"] == "OOMKilled", state
    assert state["exitCode"] == 137


def test_pods_reach_the_kubernetes_service(kube: Kubectl, namespace: str, real_node: str) -> None:
    """kube-proxy's rules take a pod to the API server through the `kubernetes` Service."""
    service = kube.json("-n", "default", "get", "service", "kubernetes")
    ip = service["spec"]["clusterIP"]
    manifest = pod_manifest(
        "svc", BUSYBOX, command=["sh", "-c", f"nc -w 5 {ip} 443 </dev/null && echo connected"]
    )
    pod = run_pod(kube, namespace, manifest, timeout=60)
    logs = kube.run("-n", namespace, "logs", "svc").stdout
    assert pod["status"]["phase"] == "Succeeded", logs
    assert "connected" in logs


def test_in_cluster_client_in_the_operator_image(
    kube: Kubectl, namespace: str, real_node: str
) -> None:
    """The operator image's Python kubernetes client, configured in-cluster, reaches the API
    server: the `kubernetes` Service, the serving certificate's IP SAN 10.96.0.1, the pod's
    ServiceAccount token."""
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    subprocess.run(
        [str(REPO / "hack" / "images" / "build.sh"), "--import", "operator"],
        check=True,
        timeout=1800,
        stdout=subprocess.DEVNULL,
    )
    script = (
        "from kubernetes import client, config; config.load_incluster_config(); "
        "print('server', client.VersionApi().get_code().git_version)"
    )
    manifest = json.loads(
        pod_manifest(
            "incluster",
            f"docker.io/library/simjob-operator:{version}",
            command=["python3", "-c", script],
            memory="128Mi",
        )
    )
    manifest["spec"]["automountServiceAccountToken"] = True
    pod = run_pod(kube, namespace, json.dumps(manifest), timeout=90)
    logs = kube.run("-n", namespace, "logs", "incluster").stdout
    assert pod["status"]["phase"] == "Succeeded", logs
    server = kube.json("version")["serverVersion"]["gitVersion"]
    assert f"server {server}" in logs
