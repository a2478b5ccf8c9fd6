"""The Job builder (simjob_operator.backends.kubernetes.manifests): tier -> pod resources, the
restricted Pod Security Standard, labels, owner reference, name length,
reserved keys. Pure; no cluster.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from simjob_operator.api import names as c
from simjob_operator.api.simtier import SimTierSpec
from simjob_operator.backends.kubernetes.manifests import build_job_manifest, job_name, label_value
from simjob_operator.core.validation import Effective, resolve
from simjob_operator.core.view import SimJobRecord
from tests.support.bodies import simjob_body, tier_spec

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def build(
    tier: dict[str, Any] | None = None, name: str = "sim", uid: str | None = None, **spec: Any
) -> dict[str, Any]:
    rec = SimJobRecord.from_body(simjob_body(name, uid=uid, **spec))
    assert rec.spec is not None
    effective = resolve(
        rec.spec.model_copy(update={"pod_metadata": None}),
        namespace=rec.namespace,
        tier_name=rec.tier_name,
        tier=SimTierSpec.model_validate(tier or tier_spec()),
    )
    assert isinstance(effective, Effective)
    return build_job_manifest(
        namespace=rec.namespace,
        name=rec.name,
        uid=rec.uid,
        spec=rec.spec,
        owner=effective.owner,
        grant=effective.grant,
    )


def container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def test_tier_sets_requests_equal_to_limits() -> None:
    resources = container(build(tier_spec(cpu="500m", memory="256Mi")))["resources"]
    assert resources == {
        "requests": {"cpu": "500m", "memory": "256Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }


def test_gpus_when_the_tier_has_them() -> None:
    resources = container(build(tier_spec(gpu=2)))["resources"]
    assert resources["requests"][c.GPU_RESOURCE] == "2"
    assert resources["limits"][c.GPU_RESOURCE] == "2"
    assert c.GPU_RESOURCE not in container(build())["resources"]["limits"]


def test_runtime_retries_and_restart_policy() -> None:
    job = build(tier_spec(maxRuntimeSeconds=600), maxRuntimeSeconds=30)
    # A backstop only: runtime + maxPendingSeconds (default 600 s); the operator enforces
    # the runtime itself from the start of the simulation.
    assert job["spec"]["activeDeadlineSeconds"] == 30 + 600
    assert build()["spec"]["activeDeadlineSeconds"] == 600 + 600
    assert build(tier_spec(maxPendingSeconds=60))["spec"]["activeDeadlineSeconds"] == 600 + 60
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert "ttlSecondsAfterFinished" not in job["spec"]  # the Job must stay observable


def test_restricted_pod_security_standard() -> None:
    job = build()
    pod = job["spec"]["template"]["spec"]
    ctr = container(job)
    pod_sc, ctr_sc = pod["securityContext"], ctr["securityContext"]
    # https://kubernetes.io/docs/concepts/security/pod-security-standards/ (restricted)
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] != 0
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert ctr_sc["allowPrivilegeEscalation"] is False
    assert ctr_sc["capabilities"] == {"drop": ["ALL"]}
    assert ctr_sc.get("privileged") is not True
    assert "hostNetwork" not in pod
    assert "hostPID" not in pod
    assert "volumes" not in pod
    assert pod["automountServiceAccountToken"] is False


def test_labels_owner_reference_and_pod_metadata() -> None:
    job = build(
        owner="alice", podMetadata={"labels": {"team": "physics"}, "annotations": {"note": "x"}}
    )
    labels = job["metadata"]["labels"]
    assert labels == {
        c.LABEL_NAME: "sim",
        c.LABEL_OWNER: "alice",
        c.LABEL_TIER: "small",
        c.LABEL_UID: "uid-lab-sim",
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
    }
    assert job["metadata"]["namespace"] == "lab"
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "simjob.io/v1alpha1",
            "kind": "SimJob",
            "name": "sim",
            "uid": "uid-lab-sim",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    template = job["spec"]["template"]["metadata"]
    assert template["labels"] == {**labels, "team": "physics"}
    assert template["annotations"] == {"note": "x"}


def test_operator_labels_win_over_user_labels() -> None:
    # The schema rejects reserved keys; the builder must not let them through anyway.
    forged = {c.LABEL_UID: "forged", c.LABEL_MANAGED_BY: "me"}
    job = build(podMetadata={"labels": forged})
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels[c.LABEL_UID] == "uid-lab-sim"
    assert labels[c.LABEL_MANAGED_BY] == c.MANAGED_BY


def test_command_args_env_working_dir_priority_class() -> None:
    job = build(
        tier_spec(priorityClassName="sims"),
        command=["python", "-m", "sim"],
        args=["--steps", "10"],
        env=[{"name": "A", "value": "1"}, {"name": "B"}],
        workingDir="/work",
    )
    ctr = container(job)
    assert ctr["name"] == c.CONTAINER_NAME
    assert ctr["image"] == "busybox:1.36"
    assert ctr["command"] == ["python", "-m", "sim"]
    assert ctr["args"] == ["--steps", "10"]
    assert ctr["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": ""}]
    assert ctr["workingDir"] == "/work"
    assert job["spec"]["template"]["spec"]["priorityClassName"] == "sims"
    assert "priorityClassName" not in build()["spec"]["template"]["spec"]


def test_deterministic() -> None:
    assert build() == build()


@pytest.mark.parametrize(
    "name", ["a", "sim-01", "x" * 60, "x" * 61, "y" * 253, "with.dots.in.it", "a" * 58 + ".b"]
)
def test_job_name_is_a_short_dns_label(name: str) -> None:
    result = job_name(name)
    assert len(result) <= 63
    assert DNS_LABEL.match(result), result
    assert result.startswith("sj-")
    assert result == job_name(name)


def test_job_names_are_readable_when_possible_and_distinct_otherwise() -> None:
    assert job_name("sim-01") == "sj-sim-01"
    assert job_name("a.b") != job_name("a-b")
    assert job_name("x" * 70 + "1") != job_name("x" * 70 + "2")


@pytest.mark.parametrize("text", ["sim", "y" * 253, "a.b.c", "-x-", "x" * 63, "x" * 64])
def test_label_values_are_valid(text: str) -> None:
    value = label_value(text)
    assert len(value) <= 63
    assert LABEL_VALUE.match(value), value


def test_long_names_still_label_the_job() -> None:
    job = build(name="n" * 200, uid="0b5e3c44-5d32-4b1e-9a43-2f0d8a7c6e11")
    assert len(job["metadata"]["name"]) <= 63
    assert all(len(v) <= 63 for v in job["metadata"]["labels"].values())
    assert job["metadata"]["ownerReferences"][0]["name"] == "n" * 200
