"""Who a SimJob may be billed to: the owner policy, enforced by the API server.

A SimJob's owner (``spec.owner``) picks its slots and its accounting; left empty it is
the SimJob's namespace (``core.view.SimJobView.owner``, ``core.validation``). So that a
tenant cannot bill another, a ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1,
CEL run inside the API server, no webhook) lets a SimJob be created only when
``spec.owner`` is empty, equals the namespace's name, or is listed in the namespace's
annotation ``simjob.io/allowed-owners`` (comma-separated owners, or ``*`` for a gateway
namespace that acts for anyone). Namespaces are cluster-scoped: only who may patch
namespaces (cluster administrators, not a namespace's ``admin``/``edit`` users) can set
the annotation. Only CREATE is checked: the owner is immutable (the CRD's CEL rules),
and the operator's own updates (finalizers, annotations) must never be refused.

This module is the single source of the policy: ``python -m
simjob_operator.api.owner_policy [--check]`` (``make crds`` / ``make crds-check``) writes
``crds/owner-policy.yaml`` (the policy and its binding, applied with the CRDs by ``make
run`` and the test fixtures) and the chart's ``files/owner-policy-spec.yaml`` (the same
spec; ``templates/owner-policy.yaml`` wraps it, ``ownerPolicy.enabled``). Neighbours:
``crd_generation`` (the CRDs), ``names``, docs/helm.md (the owner policy),
tests/unit/test_owner_policy.py, tests/integration/test_owner_policy.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from simjob_operator.api import names as c

JsonDict = dict[str, Any]

ALLOWED_OWNERS_ANNOTATION: Final = f"{c.GROUP}/allowed-owners"
ANY_OWNER: Final = "*"
POLICY_NAME: Final = "simjob-owner"  # the plain manifest's; the chart names its own

MANIFEST_PATH: Final = Path("crds") / "owner-policy.yaml"
CHART_SPEC_PATH: Final = Path("charts") / "simjob-operator" / "files" / "owner-policy-spec.yaml"
HEADER: Final = (
    "# generated from simjob_operator.api.owner_policy by "
    "`python -m simjob_operator.api.owner_policy` (make crds); do not edit\n"
)

_ANNOTATIONS = "namespaceObject.metadata.annotations"
_OWNER = "has(object.spec) && has(object.spec.owner) ? object.spec.owner : ''"
_ALLOWED = (
    f"has({_ANNOTATIONS}) && '{ALLOWED_OWNERS_ANNOTATION}' in {_ANNOTATIONS}"
    f" ? {_ANNOTATIONS}['{ALLOWED_OWNERS_ANNOTATION}'].split(',').map(o, o.trim())"
    " : []"
)
_RULE = (
    "variables.owner == '' || variables.owner == namespaceObject.metadata.name"
    f" || '{ANY_OWNER}' in variables.allowed || variables.owner in variables.allowed"
)
_MESSAGE = (
    "'spec.owner \"' + variables.owner + '\" is not allowed in namespace \"'"
    " + namespaceObject.metadata.name + '\": a SimJob is billed to its namespace'"
    " + ' (leave spec.owner empty or set it to the namespace) or to an owner that an'"
    f" + ' administrator lists in the namespace annotation {ALLOWED_OWNERS_ANNOTATION}'"
    " + (size(variables.allowed) == 0 ? ' (not set on this namespace)'"
    " : ' (here: ' + variables.allowed.join(',') + ')')"
)


def policy_spec() -> JsonDict:
    """The ValidatingAdmissionPolicy's spec (shared by the manifest and the chart)."""
    return {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [c.GROUP],
                    "apiVersions": ["*"],
                    "operations": ["CREATE"],
                    "resources": [c.SIMJOB_PLURAL],
                }
            ]
        },
        "variables": [
            {"name": "owner", "expression": _OWNER},
            {"name": "allowed", "expression": _ALLOWED},
        ],
        "validations": [
            {"expression": _RULE, "messageExpression": _MESSAGE, "reason": "Forbidden"}
        ],
    }


def manifests(name: str = POLICY_NAME) -> list[JsonDict]:
    """The policy and its binding (every namespace, action Deny)."""
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": policy_spec(),
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        },
    ]


def _dump(doc: JsonDict) -> str:
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=100)


def rendered_files() -> dict[Path, str]:
    """Path (relative to the repository) -> content."""
    return {
        MANIFEST_PATH: HEADER + "---\n".join(_dump(doc) for doc in manifests()),
        CHART_SPEC_PATH: HEADER + _dump(policy_spec()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simjob_operator.api.owner_policy",
        description="Write the SimJob owner policy (crds/ and the chart's files/).",
    )
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file drifted"
    )
    args = parser.parse_args(argv)
    drifted = []
    for relative, text in rendered_files().items():
        path = args.root / relative
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                drifted.append(path)
                print(f"drifted: {path}", file=sys.stderr)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if drifted:
        print("the owner policy is out of date: run `make crds`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
