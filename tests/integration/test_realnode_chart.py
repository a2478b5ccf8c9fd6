"""The Helm chart end to end: the operator runs as a pod on the real node (issue 9, item 5).

``helm install`` of charts/simjob-operator with its default image reference
(``simjob-operator:<appVersion>`` = ``docker.io/library/simjob-operator:<version>``,
built here without a Docker engine and imported into the node's containerd by
hack/images/build.sh, a cache hit once built) and ``image.pullPolicy: Never``, into a
namespace that enforces the restricted Pod Security Standard. ``nodeSelector`` and
``tolerations`` put the Deployment's pod on the real kubelet node (hack/node/up.sh);
``watchNamespaces`` limits it to one fresh namespace, and the release's ``simTiers``
bring a tier that places SimJob pods on the real node too. The test checks:

* the pod runs on the real node with the chart's ServiceAccount, Ready, restartCount 0,
  and the kubelet's own probe counters (its ``/metrics/probes``) show successful
  liveness and readiness probes and no failed one;
* its process, read on the host (``/proc/<pid>``), runs as uid 65532, has the
  in-cluster environment (``KUBERNETES_SERVICE_HOST`` = the ``kubernetes`` Service's
  ClusterIP) and holds TCP connections to ClusterIP:443 in the pod's network namespace:
  the only way out of the pod to the API server is kube-proxy's DNAT of that address
  to the API server's advertised address (there is no DNS on this cluster, and the
  client never needs one);
* a SimJob (busybox, real container) on the release's tier goes to Succeeded, its pod
  ran on the real node, every phase Event names the operator pod as
  ``reportingInstance``, and the operator's log (``kubectl logs``) has no RBAC denial;
* ``helm uninstall`` removes the Deployment, its pod (and its containers from the
  node's containerd), the ServiceAccount, the RBAC objects and the release's SimTier;
  the CRDs stay.

Isolation: one operator per SimJob. The operator of this pytest session (conftest
``operator``, ``--all-namespaces``) is stopped while this module runs, as in
test_chart.py (``SESSION_OPERATORS``), and started again afterwards; the release's
operator serves only its own namespace (``watchNamespaces``), so it never acts on
another test's SimJobs. An operator of *another* pytest session on the same cluster
would show as a second ``reportingInstance`` and fail the test instead of passing it.
(kopf 1.45's namespace patterns, e.g. ``-n '!rn-chart-*'``, would exclude the
namespace from the session operator's watches, but they turn its cluster-wide watches
into one watch per namespace and its start-up LIST of SimJobs stays cluster-wide
(main.py); pausing it is exact and costs nothing.) Like any installed operator, the
pod also reads every SimTier and SlurmCluster (cluster-scoped) while it runs.

Neighbours: test_chart.py (``Helm``, lint/template/RBAC proof on KWOK),
test_realnode_node.py, test_realnode_simjobs.py, docs/helm.md, docs/realnode.md.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from simjob_operator.api import names as c
from tests.integration.conftest import REPO, SESSION_OPERATORS, Kube, wait_for
from tests.integration.test_chart import (
    CHART,
    RESTRICTED,
    Helm,
    create_namespace,
    delete_namespaces,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.helm, pytest.mark.realnode]

POOL_LABEL = "simjob.io/pool"
POOL = "real"
PLACEMENT: dict[str, Any] = {
    "nodeSelector": {POOL_LABEL: POOL},
    "tolerations": [
        {"key": POOL_LABEL, "operator": "Equal", "value": POOL, "effect": "NoSchedule"}
    ],
}
BUSYBOX = "docker.io/simjob/busybox:local"
CTR = REPO / ".cluster" / "bin" / "ctr"
CONTAINERD_SOCKET = REPO / ".cluster" / "node" / "containerd.sock"
PKI = REPO / ".cluster" / "pki"
KUBELET_PORT = int(os.environ.get("SIMJOB_KUBELET_PORT", "10360"))
RELEASE = "rn"
FULLNAME = "rn-simjob-operator"
OPERATOR_UID = 65532
# Any refusal in the operator's log: kopf's wording of a watch or list it may not make,
# the API server's ("cannot get resource"), and the operator's own ("GET Namespace x:
# Forbidden", kube.translate).
DENIED = re.compile(r"cannot \w+ resource|Not enough permissions|\bForbidden\b")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def real_node(kube: Kube) -> str:
    """The real node's name."""
    if os.environ.get("SIMJOB_REAL_NODE", "1") == "0":
        pytest.skip("SIMJOB_REAL_NODE=0: the cluster runs KWOK nodes only")
    skipped = REPO / ".cluster" / "real-node-skipped"
    if skipped.exists():
        pytest.skip(f"no real node in this cluster: {skipped.read_text().strip()}")
    nodes = kube.items("nodes", selector=f"{POOL_LABEL}={POOL}")
    assert len(nodes) == 1, "hack/cluster/up.sh should have started one real node"
    return str(nodes[0]["metadata"]["name"])


@pytest.fixture(scope="module")
def operator_image(real_node: str) -> str:
    """The operator image (and busybox, the SimJob's), built if their sources changed and
    imported into the node's containerd; its reference."""
    started = time.monotonic()
    result = subprocess.run(
        [str(REPO / "hack" / "images" / "build.sh"), "--import", "operator", "busybox"],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert result.returncode == 0, f"hack/images/build.sh failed:\n{result.stderr[-4000:]}"
    refs = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines() if line}
    print(f"\nimages built/imported in {time.monotonic() - started:.1f} s: {refs}")
    return refs["operator"]


@pytest.fixture(scope="module")
def helm(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm from hack/helm/build.sh (a cache hit after `make helm-build`)."""
    result = subprocess.run(
        [str(REPO / "hack" / "helm" / "build.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert result.returncode == 0, f"hack/helm/build.sh failed:\n{result.stderr}"
    binary = Path(result.stdout.strip().splitlines()[-1])
    assert binary.is_file(), binary
    return Helm(binary, kubeconfig, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module", autouse=True)
def _only_operator_on_the_cluster(kube: Kube) -> Iterator[None]:
    """Stop this session's operator while the module runs (module docstring); the CRDs
    of this tree installed, as the session fixture does."""
    paused = [process for process in SESSION_OPERATORS if not process.exited()]
    for process in paused:
        process.stop()
    kube.run("apply", "-f", str(CHART / "crds"))
    for crd in ("simjobs.simjob.io", "simtiers.simjob.io"):
        kube.run("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    try:
        yield
    finally:
        for process in paused:
            process.start()


# --------------------------------------------------------------------------- helpers


def ctr(*args: str) -> str:
    result = subprocess.run(
        [str(CTR), "--address", str(CONTAINERD_SOCKET), "-n", "k8s.io", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, f"ctr {' '.join(args)}: {result.stderr}"
    return result.stdout


def host_pid(container_id: str) -> int:
    """The host PID of a running container's process (containerd's task)."""
    for line in ctr("tasks", "ls").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == container_id:
            return int(parts[1])
    raise AssertionError(f"no containerd task for container {container_id}")


def tcp_peers(pid: int) -> set[tuple[str, int]]:
    """Remote (address, port) of the ESTABLISHED TCP connections in the network
    namespace of ``pid`` (``/proc/PID/net/tcp``: little-endian hex address)."""
    peers = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if state != "01":  # TCP_ESTABLISHED
            continue
        address, port = remote.split(":")
        ip = ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(address), "little"))
        peers.add((str(ip), int(port, 16)))
    return peers


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (entry.decode(errors="replace").split("=", 1) for entry in raw if b"=" in entry)
    return {key: value for key, value in pairs}


def uids(pid: int) -> list[int]:
    """Real, effective, saved and filesystem uid of ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(value) for value in line.split()[1:]]
    raise AssertionError(f"no Uid line in /proc/{pid}/status")


PROBE_LINE = re.compile(r"^prober_probe_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$")


def probe_counts(namespace: str, pod: str) -> dict[tuple[str, str], float]:
    """The kubelet's probe counters of one pod, (probe_type, result) -> count, from its
    ``/metrics/probes`` on 127.0.0.1 (the API server's node proxy refuses loopback
    addresses), as the API server's kubelet client (cluster CA, x509)."""
    context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    context.load_cert_chain(
        str(PKI / "apiserver-kubelet-client.crt"), str(PKI / "apiserver-kubelet-client.key")
    )
    url = f"https://127.0.0.1:{KUBELET_PORT}/metrics/probes"
    with urllib.request.urlopen(url, timeout=10, context=context) as response:  # loopback
        text = response.read().decode()
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = PROBE_LINE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("namespace") == namespace and labels.get("pod") == pod:
            key = (labels["probe_type"], labels["result"])
            counts[key] = counts.get(key, 0.0) + float(match["value"])
    return counts


def condition(pod: dict[str, Any], kind: str) -> str | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond["type"] == kind:
            return str(cond["status"])
    return None


def operator_pods(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    return kube.items("pods", namespace=namespace, selector=f"app.kubernetes.io/instance={RELEASE}")


def diagnose(kube: Kube, namespace: str) -> str:
    """What the release's pod went through, for a failure message."""
    parts = [
        kube.run("describe", "pods", "-n", namespace, check=False).stdout[-6000:],
        kube.run(
            "logs", f"deployment/{FULLNAME}", "-n", namespace, "--tail=80", check=False
        ).stdout,
        kube.run("get", "events", "-n", namespace, check=False).stdout[-3000:],
    ]
    return "\n".join(parts)


# --------------------------------------------------------------------------- the test


def test_helm_install_runs_the_operator_as_a_pod_on_the_real_node(
    helm: Helm,
    kube: Kube,
    real_node: str,
    operator_image: str,
    tmp_path: Path,
) -> None:
    system = create_namespace(kube, unique("rn-chart-sys"), RESTRICTED)
    work = create_namespace(kube, unique("rn-chart-work"))
    tier = unique("rn-chart")
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    values: dict[str, Any] = {
        # the chart's default reference, simjob-operator:<appVersion>, is the image built
        # here (docker.io/library/...); Never: it must already be on the node
        "image": {"pullPolicy": "Never"},
        "watchNamespaces": [work],
        **PLACEMENT,
        "simTiers": {
            tier: {"cpu": "100m", "memory": "64Mi", "maxRuntimeSeconds": 120,
                   "maxConcurrentPerOwner": 2, **PLACEMENT},
        },
    }  # fmt: skip
    assert operator_image == f"docker.io/library/simjob-operator:{version}"
    marks: dict[str, float] = {}
    installed = False
    try:
        # ---- install: the pod on the real node, Ready
        started = time.monotonic()
        result = helm.run(
            "install", RELEASE, str(CHART), "-n", system, "--wait", "--timeout", "180s",
            "-f", helm.values_file(tmp_path, "realnode", values), check=False,
        )  # fmt: skip
        installed = result.returncode == 0
        assert installed, f"helm install failed:\n{result.stderr}\n{diagnose(kube, system)}"
        marks["install --wait"] = time.monotonic() - started

        (pod,) = operator_pods(kube, system)
        name = pod["metadata"]["name"]
        spec, status = pod["spec"], pod["status"]
        assert spec["nodeName"] == real_node
        assert spec["serviceAccountName"] == FULLNAME
        (state,) = status["containerStatuses"]
        assert state["image"] == operator_image, state
        assert state["ready"] is True, state
        assert "running" in state["state"], state
        assert condition(pod, "Ready") == "True", status["conditions"]
        assert condition(pod, "ContainersReady") == "True", status["conditions"]
        assert state["restartCount"] == 0, diagnose(kube, system)

        # ---- on the host: the process, its identity, how it reaches the API server
        service = kube.get("services", "kubernetes", namespace="default")
        cluster_ip = service["spec"]["clusterIP"]
        pid = host_pid(str(state["containerID"]).split("://", 1)[1])
        assert uids(pid) == [OPERATOR_UID] * 4
        env = environ(pid)
        assert env["KUBERNETES_SERVICE_HOST"] == cluster_ip, env
        assert env["KUBERNETES_SERVICE_PORT"] == "443", env
        assert env["POD_NAME"] == name
        wait_for(
            lambda: (cluster_ip, 443) in tcp_peers(pid),
            timeout=30,
            what=f"the operator's connection to the kubernetes Service {cluster_ip}:443",
            detail=lambda: tcp_peers(pid),
        )
        endpoints = kube.items(
            "endpointslices", namespace="default", selector="kubernetes.io/service-name=kubernetes"
        )
        backends = [a for s in endpoints for e in s["endpoints"] for a in e["addresses"]]
        assert backends, endpoints
        assert not any(a.startswith("127.") for a in backends), backends
        # the health endpoint the probes call, from the host to the pod's address
        url = f"http://{status['podIP']}:8080/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:  # the pod network only
            assert response.status == 200

        # ---- a SimJob, on the release's tier, in a real container on the real node
        marker = f"hello-from-{unique('rn')}"
        kube.apply(
            {
                "apiVersion": "simjob.io/v1alpha1",
                "kind": "SimJob",
                "metadata": {"name": "hello"},
                "spec": {
                    "tier": tier,
                    "image": BUSYBOX,
                    "command": ["sh", "-c", f"echo {marker}; sleep 1"],
                },
            },
            namespace=work,
        )
        started = time.monotonic()
        done = kube.wait_phase(work, "hello", {"Succeeded", "Failed", "TimedOut"}, timeout=150)
        assert done["phase"] == "Succeeded", (done, diagnose(kube, system))
        marks["SimJob to Succeeded"] = time.monotonic() - started
        uid = kube.simjob(work, "hello")["metadata"]["uid"]
        (job_pod,) = kube.items("pods", namespace=work, selector=f"simjob.io/uid={uid}")
        assert job_pod["spec"]["nodeName"] == real_node
        assert marker in kube.run("logs", "job/sj-hello", "-n", work).stdout
        events = [
            e for e in kube.items("events.events.k8s.io", namespace=work)
            if e.get("reportingController") == c.EVENT_REPORTING_CONTROLLER
        ]  # fmt: skip
        assert events, "the operator posted no Event"
        others = {e["reportingInstance"] for e in events} - {name}
        assert not others, (
            f"another operator ({sorted(others)}) acted on the SimJob besides the chart's pod "
            f"{name}: a test session outside this one runs an all-namespaces operator on this "
            "cluster",
            [(e["reason"], e["reportingInstance"]) for e in events],
        )
        log = kube.run("logs", name, "-n", system).stdout
        assert f"[{work}/hello uid={uid}" in log, log[-3000:]
        assert not DENIED.findall(log), "\n".join(
            line for line in log.splitlines() if DENIED.search(line)
        )

        # ---- the probes: the kubelet's own counters, and still no restart
        def probed() -> dict[tuple[str, str], float] | None:
            counts = probe_counts(system, name)
            ok = counts.get(("Liveness", "successful"), 0) and counts.get(
                ("Readiness", "successful"), 0
            )
            return counts if ok else None

        counts = wait_for(
            probed,
            timeout=60,
            interval=2,
            what="the kubelet to count successful liveness and readiness probes",
            detail=lambda: probe_counts(system, name),
        )
        failed = {k: v for k, v in counts.items() if k[1] != "successful" and v}
        assert not failed, counts
        pod = kube.get("pods", name, namespace=system)
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
        assert condition(pod, "Ready") == "True"
        print(f"\nprobe counters of {system}/{name}: {counts}")

        # ---- uninstall: delete the SimJob while the operator runs (it releases its
        # finalizer), then everything of the release is gone; the CRDs stay
        kube.run("delete", "simjobs.simjob.io", "hello", "-n", work, "--timeout=60s")
        pod_uid = pod["metadata"]["uid"]
        started = time.monotonic()
        helm.run("uninstall", RELEASE, "-n", system, "--wait", "--timeout", "120s")
        installed = False
        marks["helm uninstall --wait"] = time.monotonic() - started
        wait_for(
            lambda: not operator_pods(kube, system),
            timeout=90,
            what="the operator pod to be deleted",
            detail=lambda: [p["metadata"]["name"] for p in operator_pods(kube, system)],
        )
        marks["pod deleted"] = time.monotonic() - started
        wait_for(
            lambda: (
                not ctr(
                    "containers", "ls", "-q", f'labels."io.kubernetes.pod.uid"=={pod_uid}'
                ).split()
            ),
            timeout=60,
            what="the operator pod's containers to leave the node's containerd",
        )
        marks["its containers gone from the node"] = time.monotonic() - started
        gone: list[tuple[str, str | None, str]] = [
            ("deployments.apps", system, FULLNAME),
            ("serviceaccounts", system, FULLNAME),
            ("clusterroles.rbac.authorization.k8s.io", None, f"{FULLNAME}-{system}"),
            ("clusterrolebindings.rbac.authorization.k8s.io", None, f"{FULLNAME}-{system}"),
            ("roles.rbac.authorization.k8s.io", work, FULLNAME),
            ("rolebindings.rbac.authorization.k8s.io", work, FULLNAME),
            ("simtiers.simjob.io", None, tier),
        ]
        for kind, namespace, object_name in gone:
            assert kube.get(kind, object_name, namespace=namespace) is None, (kind, object_name)
        assert kube.items("replicasets.apps", namespace=system) == []
        for crd in ("simjobs.simjob.io", "simtiers.simjob.io", "slurmclusters.simjob.io"):
            assert kube.get("customresourcedefinitions", crd) is not None, crd
        print(
            f"\nhelm chart on the real node ({real_node}): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in marks.items())
        )
    finally:
        if installed:
            kube.run("delete", "simjobs.simjob.io", "--all", "-n", work, "--timeout=60s",
                     check=False)  # fmt: skip
        helm.run("uninstall", RELEASE, "-n", system, "--ignore-not-found", check=False)
        # with no operator left, a SimJob's finalizer would hold its namespace forever
        for body in kube.items("simjobs.simjob.io", namespace=work):
            release = '{"metadata":{"finalizers":null}}'
            kube.run("patch", "simjobs.simjob.io", body["metadata"]["name"], "-n", work,
                     "--type=merge", "-p", release, check=False)  # fmt: skip
        kube.run("delete", "simtiers.simjob.io", tier, "--ignore-not-found", check=False)
        delete_namespaces(kube, system, work)
