"""The Helm chart (charts/simjob-operator) on the real control plane, with helm
built from Go modules (hack/helm/build.sh).

* ``helm lint --strict``; ``helm template`` with default and non-default values,
  every rendered object accepted by ``kubectl apply --dry-run=server`` (the pod
  template passes the restricted Pod Security Standard: no PodSecurity warning in a
  namespace that warns and enforces it, while a control without securityContext
  warns);
* values.schema.json refuses bad values with messages naming the value;
* ``helm install`` / ``upgrade`` / ``uninstall``: objects, RBAC and SimTiers follow
  the values; uninstall keeps the CRDs and the SimJobs;
* RBAC proof: the operator runs as a local process (the Deployment's pod cannot run
  on KWOK: KWOK only fakes its status, so the release is installed with
  ``replicas: 0``) with exactly the Deployment's arguments and a token of the
  chart's ServiceAccount (TokenRequest API, ``kubectl create token``), and takes
  SimJobs through success, cancel, delete and tier TTL without a single Forbidden,
  in both RBAC layouts (all namespaces; a list of namespaces); ``kubectl auth
  can-i --as=system:serviceaccount:…`` shows what it may not do.

Isolation: two operators acting on the same SimJobs break slot serialization, and
the session operator (conftest ``operator``) watches all namespaces. This module
does not use it, and stops it while the module runs if another module started it
first (``SESSION_OPERATORS``), starting it again afterwards. Every phase Event of
the proof's SimJobs must name the proof operator's instance (``POD_NAME``), so an
operator outside this session acting on them fails the test instead of passing
it silently.

Neighbours: charts/simjob-operator/, hack/helm/build.sh, conftest.py (kubectl
helpers), docs/helm.md.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from tests.integration.conftest import SESSION_OPERATORS, Kube, simjob, stop_process, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.helm]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "simjob-operator"
LONG = 600  # seconds a "long" pod keeps running (KWOK delay)
# An RBAC denial, as the API server words it (JSON-escaped in the client's exception)
# and as kopf reports a watch or list it may not make. (Other 403s, e.g. writing into
# a namespace being deleted, are not about RBAC.)
FORBIDDEN = re.compile(r"cannot \w+ resource|Not enough permissions")
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}

# The rules the operator needs (docs/helm.md): namespaced ones, and cluster-scoped reads.
NAMESPACED_RULES = [
    {"apiGroups": ["simjob.io"], "resources": ["simjobs"],
     "verbs": ["get", "list", "watch", "patch", "delete"]},
    {"apiGroups": ["simjob.io"], "resources": ["simjobs/status"], "verbs": ["patch"]},
    {"apiGroups": ["simjob.io"], "resources": ["simusages"], "verbs": ["get", "create"]},
    {"apiGroups": ["simjob.io"], "resources": ["simusages/status"], "verbs": ["patch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"],
     "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "deletecollection"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]  # fmt: skip
CLUSTER_RULES = [
    {"apiGroups": ["simjob.io"], "resources": ["simtiers"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["simjob.io"], "resources": ["slurmclusters"], "verbs": ["get", "list"]},
    {"apiGroups": ["simjob.io"], "resources": ["slurmclusters/status"], "verbs": ["patch"]},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
     "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["kube-system"],
     "verbs": ["get"]},
]  # fmt: skip
# a valid SimTier spec, for the schema cases
TIER = {"cpu": "1", "memory": "1Gi", "maxRuntimeSeconds": 60}
NAMESPACES_RULE = {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}


# --------------------------------------------------------------------------- helpers


class Helm:
    """helm with the test kubeconfig and its own config/cache/data folders."""

    def __init__(self, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env=self.env,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    def template(self, values: dict[str, Any], *, namespace: str, crds: bool = False) -> str:
        args = ["template", "rel", str(CHART), "-n", namespace, "-f", "-"]
        args += ["--include-crds"] if crds else []
        return self.run(*args, stdin=yaml.safe_dump(values), timeout=60).stdout

    def values_file(self, tmp: Path, name: str, values: dict[str, Any]) -> str:
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(values))
        return str(path)


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def create_namespace(kube: Kube, name: str, labels: dict[str, str] | None = None) -> str:
    kube.run("create", "namespace", name)
    if labels:
        kube.run("label", "namespace", name, *(f"{k}={v}" for k, v in labels.items()))
    return name


def delete_namespaces(kube: Kube, *names: str) -> None:
    for name in names:
        kube.run("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(found)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def can_i(kube: Kube, subject: str, *args: str) -> bool:
    result = kube.run("auth", "can-i", *args, f"--as={subject}", check=False)
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, f"kubectl auth can-i {args}: {result.stdout}{result.stderr}"
    return answer == "yes"


# --------------------------------------------------------------------------- fixtures


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
    """Stop the session operator while this module runs (see the module docstring);
    make sure the CRDs of this tree are installed (as the session fixture does)."""
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


# --------------------------------------------------------------------------- lint, template


def custom_values(namespaces: list[str], tier_prefix: str) -> dict[str, Any]:
    """Every value away from its default."""
    return {
        "image": {"repository": "registry.example.org/hpc/simjob-operator", "tag": "0.1.0-rc1",
                  "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "fullnameOverride": "simjob",
        "replicas": 0,
        "watchNamespaces": namespaces,
        "logLevel": "debug",
        "logFormat": "json",
        "health": {"port": 9090, "livenessProbe": {"periodSeconds": 30, "failureThreshold": 5},
                   "readinessProbe": {"initialDelaySeconds": 1}},
        # serviceMonitor stays off: the API server here has no monitoring.coreos.com CRDs
        # (test_metrics_service_and_service_monitor renders it)
        "metrics": {"enabled": True, "port": 9091,
                    "service": {"type": "NodePort",
                                "annotations": {"prometheus.io/scrape": "true"}},
                    "serviceMonitor": {"enabled": False, "interval": "15s",
                                       "scrapeTimeout": "5s", "labels": {"release": "prom"}}},
        "resources": {"requests": {"cpu": "250m", "memory": "300Mi"},
                      "limits": {"cpu": 1, "memory": "1Gi", "ephemeral-storage": "1Gi"}},
        "serviceAccount": {"create": True, "name": "simjob-bot",
                           "annotations": {"example.org/owner": "hpc"}},
        "rbac": {"create": True},
        "podAnnotations": {"example.org/scrape": "false"},
        "podLabels": {"team": "hpc"},
        "priorityClassName": "",
        "terminationGracePeriodSeconds": 60,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "hpc",
                         "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [
                {"key": "type", "operator": "In", "values": ["kwok"]}]}}]}},
        "simTiers": {
            f"{tier_prefix}-basic": {"cpu": "1", "memory": "1Gi", "maxRuntimeSeconds": 3600,
                                     "maxConcurrentPerOwner": 2},
            f"{tier_prefix}-gpu": {"cpu": "8", "memory": "64Gi", "gpu": 1,
                                   "maxRuntimeSeconds": 7200, "ttlSecondsAfterFinished": 600,
                                   "priorityClassName": "hpc-high",
                                   "slurm": {"partition": "gpu", "qos": "normal",
                                             "cpusPerTask": 8, "memory": "64Gi"}},
        },
        "slurmClusters": {
            f"{tier_prefix}-hpc": {"mode": "ssh", "host": "login.hpc.example.org",
                                   "user": "simjob", "workDir": "/scratch/simjob",
                                   "credentialsSecretRef": {"namespace": namespaces[0],
                                                            "name": "hpc-ssh"},
                                   "knownHostsSecretRef": {"namespace": namespaces[0],
                                                           "name": "hpc-known-hosts"}},
        },
        "slurmCredentials": {"secrets": [{"namespace": namespaces[1], "name": "extra-ssh"}],
                             "fromSimJobs": True},
        "slurmInputs": {"secrets": True},
        "outputsRemoval": {"image": "registry.example.org/mirror/busybox:1.37",
                           "pullPolicy": "Always"},
    }  # fmt: skip


def test_lint_strict(helm: Helm, tmp_path: Path) -> None:
    result = helm.run("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    custom = helm.values_file(tmp_path, "custom", custom_values(["lab-a", "lab-b"], "lint"))
    result = helm.run("lint", "--strict", str(CHART), "-f", custom)
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


def _dry_run(kube: Kube, objects: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return kube.run(
        "apply", "--dry-run=server", "-o", "name", "-f", "-",
        stdin=yaml.safe_dump_all(objects), check=False,
    )  # fmt: skip


@pytest.mark.parametrize("flavour", ["default", "custom"])
def test_every_rendered_object_is_accepted_by_the_api_server(
    helm: Helm, kube: Kube, flavour: str
) -> None:
    system = create_namespace(kube, unique("chart-tpl"), RESTRICTED)
    watched = [create_namespace(kube, unique("chart-tpl-w")) for _ in range(2)]
    try:
        values = custom_values(watched, unique("tpl")) if flavour == "custom" else {}
        objects = docs(helm.template(values, namespace=system, crds=True))
        kinds = sorted({o["kind"] for o in objects})
        expected = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                    "Deployment", "Service", "ServiceAccount",
                    # the owner policy (ownerPolicy.enabled; test_owner_policy.py)
                    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}  # fmt: skip
        if flavour == "custom":
            expected |= {"Role", "RoleBinding", "SimTier", "SlurmCluster"}
            assert sum(o["kind"] == "Role" for o in objects) == 4  # 2 served, 2 Secrets
            assert sum(o["kind"] == "SimTier" for o in objects) == 2
        assert set(kinds) == expected

        result = _dry_run(kube, objects)
        assert result.returncode == 0, result.stderr
        # one line per object, each "(server dry run)"
        assert len(result.stdout.splitlines()) == len(objects), result.stdout
        # restricted PSS: the Deployment's pod template draws no warning ...
        assert "PodSecurity" not in result.stderr, result.stderr

        # ... while the same Deployment without its securityContexts does (the check works)
        (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
        deployment["spec"]["template"]["spec"].pop("securityContext")
        container(deployment)  # exactly one container
        deployment["spec"]["template"]["spec"]["containers"][0].pop("securityContext")
        control = _dry_run(kube, [deployment])
        assert 'would violate PodSecurity "restricted' in control.stderr, control.stderr
    finally:
        delete_namespaces(kube, system, *watched)


def test_custom_values_reach_the_deployment(helm: Helm) -> None:
    values = custom_values(["lab-a", "lab-b"], "tpl")
    objects = docs(helm.template(values, namespace="hpc"))
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    spec = deployment["spec"]
    assert deployment["metadata"]["name"] == "simjob"
    assert spec["replicas"] == 0
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "simjob-bot"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "nodeAffinity" in pod["affinity"]
    assert spec["template"]["metadata"]["labels"]["team"] == "hpc"
    assert spec["template"]["metadata"]["annotations"] == {"example.org/scrape": "false"}
    assert pod["terminationGracePeriodSeconds"] == 60
    main = container(deployment)
    assert main["image"] == "registry.example.org/hpc/simjob-operator:0.1.0-rc1"
    assert main["imagePullPolicy"] == "Always"
    assert main["args"] == [
        "--standalone",
        "--namespace=lab-a",
        "--namespace=lab-b",
        "--liveness=http://0.0.0.0:9090/healthz",
        "--log-format=json",
        "--debug",
    ]
    assert main["ports"] == [
        {"name": "health", "containerPort": 9090, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9091, "protocol": "TCP"},
    ]
    assert {"name": "SIMJOB_METRICS_PORT", "value": "9091"} in main["env"]
    # the removal Job's image and pull policy (core.settings.retention_from_env)
    removal = {e["name"]: e["value"] for e in main["env"] if "REMOVAL" in e["name"]}
    assert removal == {
        "SIMJOB_OUTPUTS_REMOVAL_IMAGE": "registry.example.org/mirror/busybox:1.37",
        "SIMJOB_OUTPUTS_REMOVAL_PULL_POLICY": "Always",
    }
    (service,) = [o for o in objects if o["kind"] == "Service"]
    assert service["metadata"]["name"] == "simjob-metrics"
    assert service["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9091, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert main["livenessProbe"]["periodSeconds"] == 30
    assert main["livenessProbe"]["failureThreshold"] == 5
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert main["readinessProbe"]["initialDelaySeconds"] == 1
    assert main["resources"]["limits"] == {"cpu": 1, "memory": "1Gi", "ephemeral-storage": "1Gi"}
    (account,) = [o for o in objects if o["kind"] == "ServiceAccount"]
    assert account["metadata"]["annotations"] == {"example.org/owner": "hpc"}
    tiers = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "SimTier"}
    assert tiers["tpl-gpu"]["slurm"]["partition"] == "gpu"
    (cluster,) = [o for o in objects if o["kind"] == "SlurmCluster"]
    assert cluster["metadata"]["name"] == "tpl-hpc"
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["rules"]
             for o in objects if o["kind"] == "Role"}  # fmt: skip
    secret_get = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    # fromSimJobs and slurmInputs.secrets: get on the Secrets of the served namespaces ...
    assert roles[("lab-a", "simjob")] == [*NAMESPACED_RULES, secret_get]
    # ... and the SlurmClusters' Secrets by name, wherever they are
    assert roles[("lab-a", "simjob-slurm-secrets")] == [
        {**secret_get, "resourceNames": ["hpc-known-hosts", "hpc-ssh"]}
    ]
    assert roles[("lab-b", "simjob-slurm-secrets")] == [
        {**secret_get, "resourceNames": ["extra-ssh"]}
    ]


def test_default_values_deployment(helm: Helm) -> None:
    objects = docs(helm.template({}, namespace="simjob-system"))
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    main = container(deployment)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert main["image"] == f"simjob-operator:{chart['appVersion']}"
    assert main["args"] == [
        "--standalone",
        "--all-namespaces",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--log-format=full",
    ]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
        main["env"]
    )
    # metrics: on by default, on their own port, behind a Service that selects the pod
    assert {"name": "SIMJOB_METRICS_PORT", "value": "8081"} in main["env"]
    assert [port["name"] for port in main["ports"]] == ["health", "metrics"]
    (service,) = [o for o in objects if o["kind"] == "Service"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["port"] == 8081
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert "ServiceMonitor" not in {o["kind"] for o in objects}
    rules = {o["kind"]: o.get("rules") for o in objects if o["kind"].endswith("Role")}
    assert rules == {"ClusterRole": CLUSTER_RULES + NAMESPACED_RULES}
    assert "SimTier" not in {o["kind"] for o in objects}


def test_metrics_service_and_service_monitor(helm: Helm) -> None:
    """The ServiceMonitor is rendered only when asked for and scrapes the Service's
    port; metrics off renders neither the port nor the Service; the metrics port may not
    be the health port."""
    values = {"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s",
                                             "labels": {"release": "prom"}}}}  # fmt: skip
    objects = docs(helm.template(values, namespace="mon"))
    (service,) = [o for o in objects if o["kind"] == "Service"]
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["mon"]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]

    objects = docs(helm.template({"metrics": {"enabled": False}}, namespace="mon"))
    assert {"Service", "ServiceMonitor"}.isdisjoint({o["kind"] for o in objects})
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    main = container(deployment)
    assert [port["name"] for port in main["ports"]] == ["health"]
    assert all(env["name"] != "SIMJOB_METRICS_PORT" for env in main["env"])

    result = helm.run(
        "template", "rel", str(CHART), "--set", "metrics.port=8080", check=False, timeout=60
    )
    assert result.returncode != 0
    assert "metrics.port must differ from health.port" in result.stderr


# --------------------------------------------------------------------------- values schema


@pytest.mark.parametrize(
    ("args", "messages"),
    [
        (["--set", "replicas=2"], ["at '/replicas': value must be one of 0, 1"]),
        (["--set", "logFormat=xml"], ["at '/logFormat': value must be one of"]),
        (["--set", "logLevel=loud"], ["at '/logLevel': value must be one of"]),
        (["--set", "unknownKey=1"], ["additional properties 'unknownKey' not allowed"]),
        (["--set", "image.tag=2"], ["at '/image/tag': got number, want string"]),
        (["--set", "image.registry=x"], ["at '/image': additional properties 'registry'"]),
        (["--set", "health.port=80"], ["at '/health/port': minimum"]),
        (["--set", "metrics.service.type=External"], ["at '/metrics/service/type'"]),
        (["--set", "metrics.serviceMonitor.interval=soon"],
         ["at '/metrics/serviceMonitor/interval'", "pattern"]),
        (["--set-json", 'watchNamespaces="lab"'], ["'/watchNamespaces': got string, want array"]),
        (["--set-json", 'watchNamespaces=["Lab_1"]'], ["at '/watchNamespaces/0'", "pattern"]),
        (["--set", "resources.requests.gpu=1"], ["additional properties 'gpu' not allowed"]),
        (["--set", "serviceAccount.create=yes"], ["'/serviceAccount/create': got string, want"]),
        (
            ["--set", "simTiers.basic.cpu=2"],
            ["at '/simTiers/basic': missing properties 'memory', 'maxRuntimeSeconds'",
             "at '/simTiers/basic/cpu': got number, want string"],
        ),
        (
            ["--set-json", "simTiers=" + json.dumps({"basic": {**TIER, "gpus": 1}})],
            ["at '/simTiers/basic': additional properties 'gpus' not allowed"],
        ),
        (
            ["--set-json", "simTiers=" + json.dumps({"Basic_1": TIER})],
            ["at '/simTiers': additional properties 'Basic_1' not allowed"],
        ),
        (
            ["--set-json", 'simTiers={"b":{"cpu":"1","memory":"lots","maxRuntimeSeconds":0}}'],
            ["at '/simTiers/b/memory': 'lots' does not match pattern",
             "at '/simTiers/b/maxRuntimeSeconds': minimum"],
        ),
    ],
)  # fmt: skip
def test_values_schema_rejects_bad_values(helm: Helm, args: list[str], messages: list[str]) -> None:
    result = helm.run("template", "rel", str(CHART), *args, check=False, timeout=60)
    assert result.returncode != 0, f"{args} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    for message in messages:
        assert message in result.stderr, result.stderr


def test_helm_install_with_a_bad_value_installs_nothing(helm: Helm, kube: Kube) -> None:
    system = create_namespace(kube, unique("chart-bad"))
    try:
        result = helm.run(
            "install", "bad", str(CHART), "-n", system, "--set", "replicas=3", check=False
        )
        assert result.returncode != 0
        assert "at '/replicas': value must be one of 0, 1" in result.stderr
        status = helm.run("status", "bad", "-n", system, check=False)
        assert status.returncode != 0
        assert "not found" in status.stderr
        assert kube.items("deployments", namespace=system) == []
    finally:
        delete_namespaces(kube, system)


# --------------------------------------------------------------------------- install … uninstall


def test_install_upgrade_uninstall(helm: Helm, kube: Kube, tmp_path: Path) -> None:
    system = create_namespace(kube, unique("chart-sys"), RESTRICTED)
    work = create_namespace(kube, unique("chart-work"))
    tier = unique("chart-it")
    release, fullname = "rel", "rel-simjob-operator"
    cluster_name = f"{fullname}-{system}"
    # KWOK removes a deleted pod at a random moment within its grace period: a short
    # one keeps the Recreate upgrade and uninstall --wait quick
    first = {"terminationGracePeriodSeconds": 2,
             "simTiers": {f"{tier}-basic": {"cpu": "1", "memory": "1Gi",
                                            "maxRuntimeSeconds": 600}}}  # fmt: skip
    second = {
        "terminationGracePeriodSeconds": 2,
        "watchNamespaces": [work],
        "logFormat": "json",
        "logLevel": "verbose",
        "resources": {"requests": {"cpu": "200m", "memory": "300Mi"}, "limits": {"memory": "1Gi"}},
        "simTiers": {
            f"{tier}-basic": {"cpu": "2", "memory": "2Gi", "maxRuntimeSeconds": 600,
                              "maxConcurrentPerOwner": 3},
            f"{tier}-premium": {"cpu": "4", "memory": "8Gi", "maxRuntimeSeconds": 7200},
        },
    }  # fmt: skip
    try:
        # ---- install
        started = time.monotonic()
        result = helm.run(
            "install", release, str(CHART), "-n", system, "--wait", "--timeout", "120s",
            "-f", helm.values_file(tmp_path, "first", first),
        )  # fmt: skip
        install_seconds = time.monotonic() - started
        assert "STATUS: deployed" in result.stdout
        assert "kubectl apply -n default -f -" in result.stdout  # NOTES: a first SimJob
        assert f"tier: {tier}-basic" in result.stdout
        deployment = kube.get("deployments", fullname, namespace=system)
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        assert deployment["status"].get("availableReplicas") == 1
        # The pod was admitted in a namespace that enforces the restricted PSS (KWOK
        # plays it: it is "Running" without running anything).
        (pod,) = kube.items("pods", namespace=system, selector="app.kubernetes.io/instance=rel")
        assert pod["spec"]["serviceAccountName"] == fullname
        first_pod = pod["metadata"]["name"]
        assert kube.get("serviceaccounts", fullname, namespace=system) is not None
        # the metrics Service selects the operator's pod (its EndpointSlice names it)
        service = kube.get("services", f"{fullname}-metrics", namespace=system)
        assert service["spec"]["ports"][0]["targetPort"] == "metrics"

        def metrics_endpoint() -> list[str]:
            slices = kube.items(
                "endpointslices",
                namespace=system,
                selector=f"kubernetes.io/service-name={fullname}-metrics",
            )
            return [e.get("targetRef", {}).get("name") for s in slices
                    for e in s.get("endpoints") or []]  # fmt: skip

        wait_for(lambda: first_pod in metrics_endpoint(), timeout=60,
                 what="the metrics Service's endpoint to be the operator's pod",
                 detail=metrics_endpoint)  # fmt: skip
        role = kube.get("clusterroles", cluster_name)
        assert role["rules"] == CLUSTER_RULES + NAMESPACED_RULES
        binding = kube.get("clusterrolebindings", cluster_name)
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": fullname, "namespace": system}
        ]
        assert kube.get("simtiers.simjob.io", f"{tier}-basic")["spec"]["cpu"] == "1"

        # ---- upgrade: a namespace list, JSON logs, other resources and tiers
        result = helm.run(
            "upgrade", release, str(CHART), "-n", system, "--wait", "--timeout", "120s",
            "-f", helm.values_file(tmp_path, "second", second),
        )  # fmt: skip
        assert "REVISION: 2" in result.stdout
        deployment = kube.get("deployments", fullname, namespace=system)
        main = container(deployment)
        assert main["args"] == [
            "--standalone",
            f"--namespace={work}",
            "--liveness=http://0.0.0.0:8080/healthz",
            "--log-format=json",
            "--verbose",
        ]
        assert main["resources"]["requests"] == {"cpu": "200m", "memory": "300Mi"}
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}

        def replaced() -> list[dict[str, Any]] | None:
            pods = kube.items("pods", namespace=system, selector="app.kubernetes.io/instance=rel")
            names = [p["metadata"]["name"] for p in pods]
            return pods if len(pods) == 1 and first_pod not in names else None

        (pod,) = wait_for(replaced, timeout=60, what="the upgraded pod to replace the first")
        assert kube.get("clusterroles", cluster_name)["rules"] == [*CLUSTER_RULES, NAMESPACES_RULE]
        assert kube.get("roles", fullname, namespace=work)["rules"] == NAMESPACED_RULES
        assert kube.get("rolebindings", fullname, namespace=work)["subjects"][0]["name"] == fullname
        basic = kube.get("simtiers.simjob.io", f"{tier}-basic")["spec"]
        assert (basic["cpu"], basic["maxConcurrentPerOwner"]) == ("2", 3)
        assert kube.get("simtiers.simjob.io", f"{tier}-premium") is not None

        # a SimJob that nobody serves (the pod on KWOK runs nothing): uninstall keeps it
        kube.apply(simjob("kept", tier=f"{tier}-basic"), namespace=work)

        # ---- uninstall
        result = helm.run("uninstall", release, "-n", system, "--wait", "--timeout", "120s")
        assert f'release "{release}" uninstalled' in result.stdout
        assert kube.get("deployments", fullname, namespace=system) is None
        assert kube.get("serviceaccounts", fullname, namespace=system) is None
        assert kube.get("services", f"{fullname}-metrics", namespace=system) is None
        assert kube.get("clusterroles", cluster_name) is None
        assert kube.get("clusterrolebindings", cluster_name) is None
        assert kube.get("roles", fullname, namespace=work) is None
        assert kube.get("simtiers.simjob.io", f"{tier}-basic") is None  # tiers from values go
        for crd in ("simjobs.simjob.io", "simtiers.simjob.io"):  # crds/ is never removed
            assert kube.get("customresourcedefinitions", crd) is not None
        kept = kube.simjob(work, "kept")  # SimJobs stay, untouched
        assert "status" not in kept
        assert not kept["metadata"].get("finalizers")
        assert helm.run("status", release, "-n", system, check=False).returncode != 0
        print(f"\nhelm install --wait took {install_seconds:.1f} s")
    finally:
        helm.run("uninstall", release, "-n", system, "--ignore-not-found", check=False)
        kube.run("delete", "simjobs.simjob.io", "--all", "-n", work, "--timeout=30s", check=False)
        delete_namespaces(kube, system, work)


# --------------------------------------------------------------------------- RBAC proof


class TokenOperator:
    """The operator as a local process with the ServiceAccount's kubeconfig and the
    Deployment's own arguments (only the health endpoint moves to a free local port)."""

    def __init__(self, kubeconfig: Path, args: list[str], log_path: Path, instance: str) -> None:
        self.port = free_port()
        self.args = [
            f"--liveness=http://127.0.0.1:{self.port}/healthz" if a.startswith("--liveness=")
            else a
            for a in args
        ]  # fmt: skip
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.instance = instance
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        script = Path(sys.executable).parent / "simjob-operator"
        assert script.is_file(), f"no simjob-operator entry point next to {sys.executable}"
        env = {k: v for k, v in os.environ.items() if k != c.ENV_WATCH_NAMESPACES}
        env |= {"KUBECONFIG": str(self.kubeconfig), "POD_NAME": self.instance,
                "PYTHONUNBUFFERED": "1"}  # fmt: skip
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(script), *self.args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        wait_for(self.healthy, timeout=60, what="the operator's health endpoint", detail=self.tail)

    def healthy(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, f"the operator exited:\n{self.tail()}"
        url = f"http://127.0.0.1:{self.port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # loopback only
                return bool(response.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        stop_process(self.proc)


def token_kubeconfig(kube: Kube, admin: Path, account: str, namespace: str, out: Path) -> Path:
    """A kubeconfig holding a TokenRequest token of the ServiceAccount (1 h)."""
    token = kube.run("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    config = yaml.safe_load(admin.read_text())
    cluster = config["clusters"][0]
    config["users"] = [{"name": account, "user": {"token": token}}]
    config["contexts"] = [{"name": account, "context": {"cluster": cluster["name"],
                                                        "user": account}}]  # fmt: skip
    config["current-context"] = account
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out


def assert_least_privilege(
    kube: Kube, subject: str, *, system: str, work: str, other: str, all_namespaces: bool
) -> None:
    allowed: tuple[tuple[str, ...], ...] = (
        ("create", "jobs.batch", "-n", work),
        ("delete", "jobs.batch", "-n", work),
        ("patch", "simjobs.simjob.io", "--subresource=status", "-n", work),
        ("deletecollection", "pods", "-n", work),
        ("get", "configmaps", "-n", work),  # Slurm inputs
        ("create", "events.events.k8s.io", "-n", work),
        ("watch", "simtiers.simjob.io"),
        ("list", "slurmclusters.simjob.io"),
        ("get", "namespaces/kube-system"),  # the cluster's identity in Slurm job comments
        ("patch", "slurmclusters.simjob.io", "--subresource=status"),
        ("get", "secrets/site-ssh", "-n", system),  # named by the release's SlurmCluster
        ("get", "secrets/site-known-hosts", "-n", system),
    )
    never: tuple[tuple[str, ...], ...] = (
        ("list", "secrets", "--all-namespaces"),
        ("list", "secrets", "-n", system),
        ("watch", "secrets", "-n", system),
        ("get", "secrets", "-n", work),
        ("get", "secrets/unrelated", "-n", system),
        ("create", "pods", "-n", work),
        ("create", "pods/exec", "-n", work),
        ("update", "pods", "-n", work),
        ("create", "deployments.apps", "-n", work),
        ("create", "simjobs.simjob.io", "-n", work),  # users create SimJobs, not the operator
        ("update", "simjobs.simjob.io", "-n", work),
        ("create", "simtiers.simjob.io"),
        ("patch", "slurmclusters.simjob.io"),
        ("patch", "simtiers.simjob.io"),
        ("delete", "simtiers.simjob.io"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("patch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io/simjobs.simjob.io"),
        ("list", "widgets.smoke.simjob.io", "--all-namespaces"),  # another CRD's objects
        ("list", "clusterkopfpeerings.kopf.dev"),  # no peering (standalone)
        ("create", "roles.rbac.authorization.k8s.io", "-n", work),
        ("create", "serviceaccounts/token", "-n", system),
        ("impersonate", "serviceaccounts", "-n", system),
        ("get", f"namespaces/{work}"),  # of the namespaces, kube-system only
    )
    for args in allowed:  # what it may do where it serves SimJobs
        assert can_i(kube, subject, *args), f"{subject} should be allowed to {args}"
    for args in never:  # what it may never do
        assert not can_i(kube, subject, *args), f"{subject} must not be allowed to {args}"
    # the two layouts differ outside the watched namespaces
    scoped: tuple[tuple[str, ...], ...] = (
        ("list", "simjobs.simjob.io", "--all-namespaces"),
        ("create", "jobs.batch", "-n", other),
        ("patch", "simjobs.simjob.io", "--subresource=status", "-n", other),
    )
    for args in scoped:
        assert can_i(kube, subject, *args) is all_namespaces, (subject, args)
    # everything it may do in a served namespace, and nothing more (no wildcards)
    granted = granted_resources(kube, subject, work)
    expected = {
        "simjobs.simjob.io": {"get", "list", "watch", "patch", "delete"},
        "simjobs.simjob.io/status": {"patch"},
        "jobs.batch": {"get", "list", "watch", "create", "delete"},
        "pods": {"list", "deletecollection"},
        "events": {"create"},
        "events.events.k8s.io": {"create"},
        "simtiers.simjob.io": {"get", "list", "watch"},
        "slurmclusters.simjob.io": {"get", "list"},
        "slurmclusters.simjob.io/status": {"patch"},
        "customresourcedefinitions.apiextensions.k8s.io": {"list", "watch"},
        "configmaps": {"get"},
        "simusages.simjob.io": {"get", "create"},
        "simusages.simjob.io/status": {"patch"},
        "namespaces": {"get"},  # kube-system only (resourceNames)
    }
    if not all_namespaces:
        expected["namespaces"] |= {"list", "watch"}
    assert granted == expected


def granted_resources(kube: Kube, subject: str, namespace: str) -> dict[str, set[str]]:
    """``kubectl auth can-i --list`` as resource -> verbs, without the self-reviews
    that every authenticated user may create."""
    listing = kube.run("auth", "can-i", "--list", f"--as={subject}", "-n", namespace).stdout
    granted: dict[str, set[str]] = {}
    for line in listing.splitlines()[1:]:
        if not line.strip() or line.startswith(" ") or line.startswith("["):
            continue  # non-resource URLs (discovery, health) of every authenticated user
        resource = line.split()[0]
        verbs = set(line[line.rindex("[") + 1 : line.rindex("]")].split())
        assert resource != "*", line
        assert "*" not in verbs, line
        if not resource.startswith("selfsubject"):
            granted.setdefault(resource, set()).update(verbs)
    return granted


@pytest.mark.parametrize("layout", ["all-namespaces", "namespace-list"])
def test_rbac_proof_operator_runs_with_the_service_account_token(
    helm: Helm, kube: Kube, kubeconfig: Path, tmp_path: Path, layout: str
) -> None:
    all_namespaces = layout == "all-namespaces"
    system = create_namespace(kube, unique("chart-proof-sys"), RESTRICTED)
    work = create_namespace(kube, unique("chart-proof-work"))
    other = create_namespace(kube, unique("chart-proof-other"))
    tier = unique("chart-proof")
    site = unique("chart-proof-site")
    release, account = "proof", "proof-simjob-operator"
    values: dict[str, Any] = {
        "replicas": 0,  # the local process below is this release's operator
        "watchNamespaces": [] if all_namespaces else [work],
        "simTiers": {
            tier: {"cpu": "100m", "memory": "64Mi", "maxRuntimeSeconds": 900,
                   "maxConcurrentPerOwner": 5},
            f"{tier}-ttl": {"cpu": "100m", "memory": "64Mi", "maxRuntimeSeconds": 60,
                            "maxConcurrentPerOwner": 5, "ttlSecondsAfterFinished": 2},
        },
        # A Slurm site in ssh mode: the operator reads it and its two Secrets (by name),
        # finds no usable key in them and writes Reachable=False. (Were the key usable,
        # it would try a closed port on loopback.)
        "slurmClusters": {
            site: {"mode": "ssh", "host": "127.0.0.1", "port": 1, "user": "simjob",
                   "workDir": "/scratch/simjob", "pollIntervalSeconds": 2,
                   "credentialsSecretRef": {"namespace": system, "name": "site-ssh"},
                   "knownHostsSecretRef": {"namespace": system, "name": "site-known-hosts"}},
        },
    }  # fmt: skip
    operator: TokenOperator | None = None
    subject = f"system:serviceaccount:{system}:{account}"
    try:
        for name, key in (
            ("site-ssh", "ssh-privatekey"),
            ("site-known-hosts", "known_hosts"),
            ("unrelated", "password"),
        ):
            kube.run("create", "secret", "generic", name, "-n", system,
                     f"--from-literal={key}=not-a-real-{key}")  # fmt: skip
        helm.run(
            "install", release, str(CHART), "-n", system, "--wait", "--timeout", "120s",
            "-f", helm.values_file(tmp_path, "proof", values),
        )  # fmt: skip
        assert_least_privilege(
            kube, subject, system=system, work=work, other=other, all_namespaces=all_namespaces
        )
        if not all_namespaces:  # a SimJob outside the watched namespaces stays untouched
            kube.apply(simjob("elsewhere", tier=tier), namespace=other)

        deployment = kube.get("deployments", "proof-simjob-operator", namespace=system)
        sa_config = token_kubeconfig(kube, kubeconfig, account, system, tmp_path / "sa.kubeconfig")
        instance = unique("rbac-proof")
        operator = TokenOperator(
            sa_config, container(deployment)["args"], tmp_path / "operator.log", instance
        )
        started = time.monotonic()
        operator.start()
        startup_seconds = time.monotonic() - started
        marks: dict[str, float] = {}

        # ---- the lifecycle: success, cancel, delete, tier TTL (all at once)
        kube.apply(
            simjob("ok", tier=tier),
            simjob("stopped", tier=tier, run_seconds=LONG),
            simjob("doomed", tier=tier, run_seconds=LONG),
            simjob("expires", tier=f"{tier}-ttl"),
            namespace=work,
        )
        uids = {n: kube.simjob(work, n)["metadata"]["uid"] for n in ("ok", "stopped", "doomed")}
        ok = kube.wait_phase(work, "ok", "Succeeded", timeout=60)
        assert ok["reason"] == Reason.COMPLETED
        job = kube.get("jobs.batch", "sj-ok", namespace=work)
        assert job["metadata"]["ownerReferences"][0]["uid"] == uids["ok"]
        marks["ok"] = time.monotonic() - started

        # cancel one and delete the other at once: KWOK removes a deleted pod at a random
        # moment within its 30 s grace period, so waiting for both together saves time
        kube.wait_phase(work, "stopped", "Running", timeout=60)
        kube.wait_phase(work, "doomed", "Running", timeout=60)
        kube.patch_simjob(work, "stopped", {"spec": {"cancel": True}})
        kube.run("delete", "simjobs.simjob.io", "doomed", "-n", work, "--wait=false")
        stopped = kube.wait_phase(work, "stopped", "Cancelled", timeout=90)
        assert stopped["reason"] == Reason.CANCEL_REQUESTED
        assert kube.get("jobs.batch", "sj-stopped", namespace=work) is None
        assert kube.items("pods", namespace=work, selector=f"{c.LABEL_UID}={uids['stopped']}") == []
        marks["cancel"] = time.monotonic() - started
        wait_for(
            lambda: kube.get("simjobs.simjob.io", "doomed", namespace=work) is None,
            timeout=90,
            what="the deleted SimJob 'doomed' to be released by the operator's finalizer",
        )
        assert kube.get("jobs.batch", "sj-doomed", namespace=work) is None
        assert kube.items("pods", namespace=work, selector=f"{c.LABEL_UID}={uids['doomed']}") == []
        marks["delete"] = time.monotonic() - started

        wait_for(
            lambda: kube.get("simjobs.simjob.io", "expires", namespace=work) is None,
            timeout=60,
            what="the TTL of its tier to delete the finished SimJob 'expires'",
        )
        marks["ttl"] = time.monotonic() - started

        # ---- every phase Event came from this operator (no other one acted)
        events = [
            e for e in kube.items("events.events.k8s.io", namespace=work)
            if e.get("reportingController") == c.EVENT_REPORTING_CONTROLLER
        ]  # fmt: skip
        assert events, "the operator posted no Event"
        assert {e["reportingInstance"] for e in events} == {instance}, [
            (e["regarding"]["name"], e["reason"], e["reportingInstance"]) for e in events
        ]
        reasons = {(e["regarding"]["name"], e["reason"]) for e in events}
        assert {
            ("ok", "Completed"), ("stopped", "CancelRequested"), ("doomed", "Deleted"),
            ("expires", "Completed"),
        } <= reasons  # fmt: skip

        # ---- the Slurm site: read with its Secrets, and its status written
        def reachable() -> dict[str, Any] | None:
            body = kube.get("slurmclusters.simjob.io", site) or {}
            conditions = (body.get("status") or {}).get("conditions") or []
            return next((cond for cond in conditions if cond["type"] == "Reachable"), None)

        condition = wait_for(
            reachable, timeout=60, what=f"the operator to write SlurmCluster {site}'s status"
        )
        # Both Secrets were read (known_hosts first, then the key, which is not a real
        # one: so no SSH connection is ever attempted).
        message = condition.get("message", "")
        assert condition["status"] == "False", condition
        assert f"{system}/site-ssh" in message, condition
        assert "not found" not in message, condition
        marks["slurm"] = time.monotonic() - started
        print(f"\nSlurmCluster {site}: Reachable=False: {condition.get('message')}")

        if not all_namespaces:
            elsewhere = kube.simjob(other, "elsewhere")
            assert "status" not in elsewhere, elsewhere.get("status")
            assert not elsewhere["metadata"].get("finalizers")

        log = operator.log()
        assert not FORBIDDEN.findall(log), "\n".join(
            line for line in log.splitlines() if FORBIDDEN.search(line)
        )
        assert f"[{work}/ok uid={uids['ok']}" in log
        print(f"\n{layout}: operator up (health 200) {startup_seconds:.1f} s after start; "
              + ", ".join(f"{k} at {v:.1f} s" for k, v in marks.items()))  # fmt: skip
    except BaseException:
        if operator is not None:
            print(f"--- operator log tail ({operator.log_path}) ---\n{operator.tail(150)}")
        raise
    finally:
        kube.run("delete", "simjobs.simjob.io", "--all", "-n", work, "--timeout=60s", check=False)
        if operator is not None:
            operator.stop()
        helm.run("uninstall", release, "-n", system, "--ignore-not-found", check=False)
        kube.run("delete", "simjobs.simjob.io", "--all", "-n", other, "--timeout=30s", check=False)
        delete_namespaces(kube, system, work, other)
