"""The operator half of the generated bad-input corpus (tests/support/corpus_gen.py):
cases the schema takes but only the operator can judge (a missing tier or SlurmCluster,
a runtime above the tier's, no image) end Failed with their reason and no Job; edits of
a started SimJob are refused by the API server and the SimJob still ends (Cancelled);
boundary values run to Succeeded. All cases at once, one LIST per poll; nothing may
stay unfinished, and the operator logs no traceback meanwhile.

Neighbours: tests/integration/conftest.py (``kube``, ``operator``, ``namespace``),
test_semantic_corpus.py (the file corpus's operator cases).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration.conftest import Kube, OperatorProcess
from tests.support.corpus_gen import TIERS, GenCase, operator_cases

pytestmark = pytest.mark.integration

CASES = operator_cases()
TERMINAL = {"Succeeded", "Failed", "Cancelled", "TimedOut"}
DEADLINE_S = 120


def _statuses(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    return {
        item["metadata"]["name"]: dict(item.get("status") or {})
        for item in kube.items("simjobs.simjob.io", namespace=namespace)
    }


def _wrong(case: GenCase, status: dict[str, Any], jobs: set[str]) -> str | None:
    """None when a finished case ended as it should, else what is wrong."""
    name = case.final["metadata"]["name"]
    got = (status.get("phase"), status.get("reason"))
    if case.outcome == "failed":
        if got != ("Failed", case.expect) or not status.get("message"):
            return f"ended {got} ({status.get('message')!r}), expected Failed/{case.expect}"
        if f"sj-{name}" in jobs:
            return "a Job was created for it"
    elif case.outcome == "succeeded" and got[0] != "Succeeded":
        return f"ended {got} ({status.get('message')!r}), expected Succeeded"
    elif case.outcome == "edit" and got[0] != "Cancelled":
        return f"ended {got} ({status.get('message')!r}), expected Cancelled"
    return None


def _edit(kube: Kube, namespace: str, case: GenCase) -> str | None:
    """Patch a started SimJob: must be refused with the expected message; then cancel."""
    name = case.final["metadata"]["name"]
    result = kube.run("patch", "simjobs.simjob.io", name, "-n", namespace, "--type=merge",
                      "-p", json.dumps({"spec": case.patch}), check=False)  # fmt: skip
    problem = None
    if result.returncode == 0:
        problem = f"the edit {case.patch} was accepted"
    elif case.expect not in result.stderr:
        problem = f"refused with {result.stderr.strip()!r}, expected {case.expect!r}"
    kube.patch_simjob(namespace, name, {"spec": {"cancel": True}})
    return problem


def test_operator_ends_every_generated_case(
    kube: Kube, operator: OperatorProcess, namespace: str
) -> None:
    kube.apply(*TIERS)
    log_start = len(operator.log_text())
    kube.apply(*(doc for case in CASES for doc in case.documents), namespace=namespace)
    pending = {case.final["metadata"]["name"]: case for case in CASES}
    edited: set[str] = set()
    problems: dict[str, str] = {}
    deadline = time.monotonic() + DEADLINE_S
    while pending and time.monotonic() < deadline:
        statuses = _statuses(kube, namespace)
        for name, case in list(pending.items()):
            status = statuses.get(name, {})
            phase = status.get("phase")
            if case.outcome == "edit" and name not in edited and phase in {"Running", *TERMINAL}:
                edited.add(name)
                if (problem := _edit(kube, namespace, case)) is not None:
                    problems[name] = problem
                continue
            if phase in TERMINAL and (case.outcome != "edit" or name in edited):
                jobs = {
                    job["metadata"]["name"] for job in kube.items("jobs.batch", namespace=namespace)
                }
                if (problem := _wrong(case, status, jobs)) is not None:
                    problems.setdefault(name, problem)
                del pending[name]
        time.sleep(0.5)
    statuses = _statuses(kube, namespace)
    for name in pending:
        problems[name] = f"stuck: {statuses.get(name)}"
    assert problems == {}, "\n".join(f"{name}: {text}" for name, text in problems.items())
    log = operator.log_text()[log_start:]
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
