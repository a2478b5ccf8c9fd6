"""The chart's reach into Secrets for per-user Slurm credentials and Secret inputs on
Slurm, proven on the real API server with ``kubectl auth can-i`` as the chart's
ServiceAccount.

``slurmCredentials.fromSimJobs`` lets SimJobs name their own SSH key Secret. With
``simJobSecretNames`` the ServiceAccount may ``get`` Secrets of exactly those names in
the served namespaces (RBAC ``resourceNames``); without, any Secret there (by name).
Never ``list`` or ``watch``, never outside the served namespaces. (RBAC cannot grant by
label: the operator itself uses only Secrets labelled ``simjob.io/credentials=true``,
tests/unit/test_slurm_backend.py.) ``slurmInputs.secrets`` is the other, independent
reason to read Secrets: a SimJob on Slurm may name any Secret of its namespace in
``spec.inputs``, so it grants ``get`` on every name in the served namespaces (and, with
``fromSimJobs`` too, that wider rule stands for both). The release runs with
``replicas: 0``: no operator.

Neighbours: test_chart.py (``Helm``, ``can_i``, the full RBAC proof with a running
operator), charts/simjob-operator/templates/rbac.yaml, docs/helm.md.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Kube
from tests.integration.test_chart import CHART, Helm, can_i, docs, helm

pytestmark = [pytest.mark.integration, pytest.mark.helm]
__all__ = ["helm"]  # the chart test's fixture


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_simjob_secret_names_render_as_resource_names(helm: Helm) -> None:
    values = {"watchNamespaces": ["lab-a"],
              "slurmCredentials": {"fromSimJobs": True,
                                   "simJobSecretNames": ["simjob-ssh", "hpc-b"]}}  # fmt: skip
    roles = [o for o in docs(helm.template(values, namespace="hpc")) if o["kind"] == "Role"]
    (role,) = [r for r in roles if r["metadata"]["name"] == "rel-simjob-operator"]
    secret_rules = [r for r in role["rules"] if r["resources"] == ["secrets"]]
    assert secret_rules == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["hpc-b", "simjob-ssh"],
         "verbs": ["get"]}
    ]  # fmt: skip


@pytest.mark.parametrize("credentials", [False, True])
def test_secret_inputs_on_slurm_render_get_on_every_name(helm: Helm, credentials: bool) -> None:
    values = {"watchNamespaces": ["lab-a"], "slurmInputs": {"secrets": True},
              "slurmCredentials": {"fromSimJobs": credentials,
                                   "simJobSecretNames": ["simjob-ssh"]}}  # fmt: skip
    objects = docs(helm.template(values, namespace="hpc"))
    (role,) = [o for o in objects if o["kind"] == "Role"]
    secret_rules = [r for r in role["rules"] if r["resources"] == ["secrets"]]
    assert secret_rules == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    (cluster_role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    assert not [r for r in cluster_role["rules"] if "secrets" in r["resources"]]
    # off (the default): no Secret of a served namespace is readable
    default = docs(helm.template({"watchNamespaces": ["lab-a"]}, namespace="hpc"))
    (role,) = [o for o in default if o["kind"] == "Role"]
    assert not [r for r in role["rules"] if "secrets" in r["resources"]]


def test_secret_inputs_on_slurm_reach(helm: Helm, kube: Kube, tmp_path: Path) -> None:
    system = kube_namespace(kube, unique("chart-in-sys"))
    work = kube_namespace(kube, unique("chart-in-work"))
    other = kube_namespace(kube, unique("chart-in-other"))
    release = unique("inp")
    values: dict[str, Any] = {"replicas": 0, "watchNamespaces": [work],
                              "slurmInputs": {"secrets": True}}  # fmt: skip
    subject = f"system:serviceaccount:{system}:{release}-simjob-operator"
    try:
        helm.run("install", release, str(CHART), "-n", system, "--wait", "--timeout", "120s",
                 "-f", helm.values_file(tmp_path, "inp", values))  # fmt: skip
        assert can_i(kube, subject, "get", "secrets/api-token", "-n", work)
        assert not can_i(kube, subject, "get", "secrets/api-token", "-n", other)
        assert not can_i(kube, subject, "get", "secrets/api-token", "-n", system)
        for verb in ("list", "watch", "create", "update", "patch", "delete"):
            assert not can_i(kube, subject, verb, "secrets", "-n", work), verb
    finally:
        helm.run("uninstall", release, "-n", system, check=False)
        for name in (system, work, other):
            kube.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize(
    ("layout", "names"),
    [("all-namespaces", ["simjob-ssh"]), ("namespace-list", [])],
)
def test_service_account_reach_into_secrets(
    helm: Helm, kube: Kube, tmp_path: Path, layout: str, names: list[str]
) -> None:
    system = kube_namespace(kube, unique("chart-sec-sys"))
    work = kube_namespace(kube, unique("chart-sec-work"))
    other = kube_namespace(kube, unique("chart-sec-other"))
    all_namespaces = layout == "all-namespaces"
    release = unique("sec")
    values: dict[str, Any] = {
        "replicas": 0,
        "watchNamespaces": [] if all_namespaces else [work],
        "slurmCredentials": {"fromSimJobs": True, "simJobSecretNames": names},
    }
    subject = f"system:serviceaccount:{system}:{release}-simjob-operator"
    try:
        helm.run("install", release, str(CHART), "-n", system, "--wait", "--timeout", "120s",
                 "-f", helm.values_file(tmp_path, "sec", values))  # fmt: skip
        # the Secret a SimJob in a served namespace may name
        assert can_i(kube, subject, "get", "secrets/simjob-ssh", "-n", work)
        # any other name: only without simJobSecretNames
        any_name = not names
        assert can_i(kube, subject, "get", "secrets/db-password", "-n", work) is any_name
        assert can_i(kube, subject, "get", "secrets", "-n", work) is any_name
        # outside the served namespaces: only when all are served
        assert can_i(kube, subject, "get", "secrets/simjob-ssh", "-n", other) is all_namespaces
        assert not can_i(kube, subject, "get", "secrets/db-password", "-n", system)
        for verb in ("list", "watch", "create", "update", "patch", "delete"):
            for namespace in (work, other, system):
                assert not can_i(kube, subject, verb, "secrets", "-n", namespace), (verb, namespace)
        assert not can_i(kube, subject, "list", "secrets", "--all-namespaces")
    finally:
        helm.run("uninstall", release, "-n", system, check=False)
        for name in (system, work, other):
            kube.run("delete", "namespace", name, "--wait=false", check=False)


def kube_namespace(kube: Kube, name: str) -> str:
    kube.run("create", "namespace", name)
    return name
