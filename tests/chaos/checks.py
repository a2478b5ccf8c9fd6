"""The four promises every fault scenario checks, as functions that return problems.

* ``endings`` — every SimJob ended, in the right phase (and exit code / reason);
  SimJobs still unfinished are *stuck*. Waits for the endings first (``wait_all_ended``).
* ``k8s_duplicates`` — never two Jobs or two pods for one SimJob: the ledger's watch
  (every object uid ever seen per ``simjob.io/uid``) and the Job controller's
  ``SuccessfulCreate`` Events (one Job object per Job name, one pod per Job).
* ``slurm_duplicates`` — exactly one Slurm job named ``simjob-<uid>`` per submitted
  SimJob (squeue with every state, then the completion log), and it is the one in
  ``status.backendRef``.
* ``probe_slots`` — no slot leaked: a fresh batch in the same owner/tier gets exactly the
  tier's ``maxConcurrentPerOwner`` slots at once (the ledger's maximum), never more, and
  every SimJob of it ends right (the last two ran only once slots were freed).
* ``holders_within`` — during the scenario itself, never more slot holders than allowed.
Each check also counts what it found into the scenario's ``ChaosResult``.
Neighbours: ledger.py, workload.py, report.py, the test_*.py scenarios.
"""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict
from typing import Any

from tests.chaos.ledger import TERMINAL, Ledger
from tests.chaos.report import ChaosResult
from tests.chaos.workload import SHORT, Case, apply_all, k8s_manifest
from tests.integration.conftest import Kube

PROBE_RUN_S = 5.0  # long enough for a whole batch to be admitted before the first ends


def simjobs_by_name(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    items = kube.items("simjobs.simjob.io", namespace=namespace)
    return {str(item["metadata"]["name"]): item for item in items}


def wait_all_ended(names: list[str], timeout: float, ledger: Ledger) -> None:
    """Wait (bounded) until every named SimJob shows a terminal phase; never raises."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        phases = ledger.phases()
        if all(phases.get(name) in TERMINAL for name in names):
            break
        time.sleep(0.5)


def endings(kube: Kube, namespace: str, cases: list[Case], result: ChaosResult | None) -> list[str]:
    """Problems with the endings of ``cases`` (read fresh from the API server)."""
    found = simjobs_by_name(kube, namespace)
    problems = []
    for case in cases:
        body = found.get(case.name)
        status = (body or {}).get("status") or {}
        uid = (body or {}).get("metadata", {}).get("uid")
        phase = status.get("phase")
        short = {k: status.get(k) for k in ("phase", "reason", "exitCode", "message")}
        if phase not in TERMINAL:
            if result is not None:
                result.stuck += 1
            problems.append(f"STUCK {case.name} (uid {uid}, {case.kind}): {short}")
            continue
        wrong = phase != case.phase
        if case.reason is not None and status.get("reason") != case.reason:
            wrong = True
        if case.expected_exit_code is not None and status.get("exitCode") != (
            case.expected_exit_code
        ):
            wrong = True
        if wrong:
            if result is not None:
                result.wrong += 1
            want = (case.phase, case.reason, case.expected_exit_code)
            problems.append(f"WRONG {case.name} (uid {uid}): expected {want}, got {short}")
    return problems


def k8s_duplicates(kube: Kube, namespace: str, ledger: Ledger, result: ChaosResult) -> list[str]:
    """Problems: a SimJob with two Jobs or two pods (watch), or a Job name created twice or
    creating two pods (Events)."""
    problems = []
    names = {
        str(body["metadata"]["uid"]): str(body["metadata"]["name"])
        for body in kube.items("simjobs.simjob.io", namespace=namespace)
    }
    seen = ledger.duplicates()
    for uid, counts in sorted(seen.items()):
        problems.append(f"DUPLICATE {names.get(uid, '?')} (uid {uid}): {counts} (watch)")
    job_objects: dict[str, set[str]] = defaultdict(set)
    pods_per_job: dict[str, set[str]] = defaultdict(set)
    for event in kube.items("events", namespace=namespace):
        involved = event.get("involvedObject") or {}
        if involved.get("kind") == "Job" and event.get("reason") == "SuccessfulCreate":
            job_objects[str(involved.get("name"))].add(str(involved.get("uid")))
            pods_per_job[str(involved.get("uid"))].add(str(event.get("message")))
    for job, uids in sorted(job_objects.items()):
        if len(uids) > 1:
            problems.append(f"DUPLICATE Job {job}: {len(uids)} Job objects created pods (Events)")
    for job_uid, messages in sorted(pods_per_job.items()):
        if len(messages) > 1:
            problems.append(f"DUPLICATE pods of Job uid {job_uid}: {sorted(messages)} (Events)")
    result.duplicates += sum(1 for problem in problems if problem.startswith("DUPLICATE"))
    if ledger.phase_regressions:
        problems += [f"PHASE WENT BACK {line}" for line in ledger.phase_regressions]
    return problems


def slurm_jobs_by_name(env: dict[str, str]) -> dict[str, set[str]]:
    """Job name -> job ids, over squeue (all states, all users) and the completion log."""
    found: dict[str, set[str]] = defaultdict(set)
    squeue = subprocess.run(
        ["squeue", "--noheader", "--all", "--states=all", "--Format=JobID:|,Name:256"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    for line in squeue.stdout.splitlines():
        job_id, _, name = line.partition("|")
        if name.strip():
            found[name.strip()].add(job_id.strip())
    sacct = subprocess.run(
        ["sacct", "--completion", "--noheader", "--parsable2", "--starttime=now-1days",
         "--format=JobID,JobName"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    for line in sacct.stdout.splitlines():
        job_id, _, name = line.partition("|")
        if name.strip():
            found[name.strip()].add(job_id.strip())
    return found


def slurm_duplicates(
    kube: Kube, namespace: str, env: dict[str, str], result: ChaosResult
) -> list[str]:
    """Problems: a SimJob whose marker names other than exactly its backendRef's job."""
    by_name = slurm_jobs_by_name(env)
    problems = []
    for name, body in sorted(simjobs_by_name(kube, namespace).items()):
        if (body.get("spec") or {}).get("backend") != "slurm":
            continue
        uid = body["metadata"]["uid"]
        ref = ((body.get("status") or {}).get("backendRef") or {}).get("id")
        ids = by_name.get(f"simjob-{uid}", set())
        if len(ids) > 1:
            result.duplicates += 1
            problems.append(f"DUPLICATE {name} (uid {uid}): Slurm jobs {sorted(ids)}")
        elif ref is not None and ids != {str(ref)}:
            problems.append(f"MISMATCH {name} (uid {uid}): backendRef {ref}, Slurm has {ids}")
    return problems


def probe_slots(
    kube: Kube, namespace: str, ledger: Ledger, tiers: dict[str, int], timeout: float = 120
) -> list[str]:
    """No slot leaked: for each tier (name -> maxConcurrentPerOwner), a fresh batch of
    ``limit + 2`` SimJobs of the namespace's owner must get exactly ``limit`` slots at once
    (the ledger's maximum), never more, and end right: a short-runtime tier's batch runs
    until its limit ends it (TimedOut), the others run ``PROBE_RUN_S`` (Succeeded). All
    tiers are probed at once. Returns problems."""
    ledger.reset_holders()
    cases = [
        Case(
            name=f"probe-{tier}-{i:02d}",
            kind="timeout" if tier == SHORT else "ok",
            run_s=PROBE_RUN_S,
            tier_name=tier,
        )
        for tier, limit in tiers.items()
        for i in range(limit + 2)
    ]
    manifests = [k8s_manifest(case) for case in cases]
    apply_all(kube, namespace, manifests)
    wait_all_ended([case.name for case in cases], timeout, ledger)
    problems = [f"SLOT probe: {problem}" for problem in endings(kube, namespace, cases, None)]
    for tier, limit in tiers.items():
        most = ledger.holders_max(namespace, tier)
        if most != limit:
            problems.append(
                f"SLOT the {tier} probe held {most} slots at once; the tier allows {limit}"
            )
    return problems


def holders_within(namespace: str, ledger: Ledger, tiers: dict[str, int]) -> list[str]:
    """Problems: a tier whose SimJobs held more slots at once than it allows (so far)."""
    return [
        f"SLOT {tier}: {ledger.holders_max(namespace, tier)} held at once, limit {limit}"
        for tier, limit in tiers.items()
        if ledger.holders_max(namespace, tier) > limit
    ]


def verify(
    kube: Kube,
    namespace: str,
    ledger: Ledger,
    cases: list[Case],
    result: ChaosResult,
    *,
    finish_s: float,
    tiers: dict[str, int],
    slurm_env: dict[str, str] | None = None,
) -> list[str]:
    """Every check of a scenario after its faults: endings (waiting up to ``finish_s``),
    duplicates (Kubernetes objects, and Slurm jobs when ``slurm_env`` is given), slot
    holders during the scenario, then the slot probe of ``tiers``."""
    wait_all_ended([case.name for case in cases], finish_s, ledger)
    problems = endings(kube, namespace, cases, result)
    problems += k8s_duplicates(kube, namespace, ledger, result)
    if slurm_env is not None:
        problems += slurm_duplicates(kube, namespace, slurm_env, result)
    problems += holders_within(namespace, ledger, tiers)
    problems += probe_slots(kube, namespace, ledger, tiers)
    return problems
