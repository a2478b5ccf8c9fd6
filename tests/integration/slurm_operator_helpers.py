"""Helpers for the operator's Slurm tests (real control plane + real local Slurm).

``SLURM_TIERS`` are the SimTiers these tests use (``apply_slurm_tiers``);
``slurm_cluster`` builds a SlurmCluster manifest; ``slurm_simjob`` a SimJob with
backend slurm; ``jobs_named`` asks Slurm itself (squeue with all states, and the
completion log once squeue forgot) which jobs carry a SimJob's marker, so a test can
assert "exactly one Slurm job per SimJob"; ``scontrol_job`` reads a job's fields;
``wait_reachable`` waits for a SlurmCluster's Reachable condition; ``run_dir`` and
``output_file`` say where a SimJob's run directory and batch output are (from
status.workspace).
Neighbours: test_slurm_operator.py, test_slurm_operator_resilience.py,
test_slurm_operator_ssh.py, conftest.py (``kube``, ``operator``, ``namespace``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.integration.conftest import Kube, wait_for

SLURM_TIERS: dict[str, dict[str, Any]] = {
    # 1 CPU, 100 MiB, 10 minutes, on the default partition.
    "it-slurm": {
        "cpu": "1",
        "memory": "100Mi",
        "maxRuntimeSeconds": 600,
        "maxConcurrentPerOwner": 20,
        "slurm": {"partition": "debug"},
    },
    # A 1-minute limit on the `short` partition (MaxTime 5 min): the timeout test.
    "it-slurm-short": {
        "cpu": "1",
        "memory": "100Mi",
        "maxRuntimeSeconds": 60,
        "maxConcurrentPerOwner": 5,
        "slurm": {"partition": "short"},
    },
    # One slot per owner: admission applies to Slurm as to Kubernetes.
    "it-slurm-one": {
        "cpu": "1",
        "memory": "100Mi",
        "maxRuntimeSeconds": 600,
        "maxConcurrentPerOwner": 1,
    },
    # Every CPU of the local node (2): a second job waits in Slurm (reason Resources).
    "it-slurm-full": {
        "cpu": "1",
        "memory": "100Mi",
        "maxRuntimeSeconds": 600,
        "maxConcurrentPerOwner": 5,
        "slurm": {"cpusPerTask": 2},
    },
    # Many small jobs: the batched-polling test.
    "it-slurm-bulk": {
        "cpu": "100m",
        "memory": "20Mi",
        "maxRuntimeSeconds": 600,
        "maxConcurrentPerOwner": 500,
    },
}


def apply_slurm_tiers(kube: Kube) -> None:
    kube.apply(
        *(
            {
                "apiVersion": "simjob.io/v1alpha1",
                "kind": "SimTier",
                "metadata": {"name": name},
                "spec": spec,
            }
            for name, spec in SLURM_TIERS.items()
        )
    )


def slurm_cluster(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("pollIntervalSeconds", 1)
    return {
        "apiVersion": "simjob.io/v1alpha1",
        "kind": "SlurmCluster",
        "metadata": {"name": name},
        "spec": spec,
    }


def slurm_simjob(
    name: str, cluster: str, *argv: str, tier: str = "it-slurm", **spec: Any
) -> dict[str, Any]:
    slurm = {"cluster": cluster, **spec.pop("slurm", {})}
    return {
        "apiVersion": "simjob.io/v1alpha1",
        "kind": "SimJob",
        "metadata": {"name": name},
        "spec": {
            "tier": tier,
            "backend": "slurm",
            "slurm": slurm,
            "command": list(argv[:1]) or ["true"],
            "args": list(argv[1:]),
            **spec,
        },
    }


def marker_of(kube: Kube, namespace: str, name: str) -> str:
    return f"simjob-{kube.simjob(namespace, name)['metadata']['uid']}"


def jobs_named(env: dict[str, str], marker: str) -> set[str]:
    """Ids of every Slurm job named ``marker``: squeue (all states), then the completion
    log (jobcomp/filetxt) for jobs squeue already forgot."""
    squeue = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--name={marker}", "--Format=JobID:|,Name:"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = {
        line.split("|")[0].strip()
        for line in squeue.stdout.splitlines()
        if line.split("|")[1:2] and line.split("|")[1].strip() == marker
    }
    sacct = subprocess.run(
        [
            "sacct",
            "--completion",
            "--noheader",
            "--parsable2",
            "--starttime=now-1days",
            "--format=JobID,JobName",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for line in sacct.stdout.splitlines():
        job_id, _, job_name = line.partition("|")
        if job_name.strip() == marker:
            found.add(job_id.strip())
    return found


def scontrol_job(env: dict[str, str], job_id: str) -> dict[str, str]:
    """``scontrol show job -o`` as a dict ({} once Slurm forgot the job)."""
    result = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    fields: dict[str, str] = {}
    for word in result.stdout.split():
        key, sep, value = word.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def slurm_comment(env: dict[str, str], job_id: str) -> str:
    """The job's comment as squeue prints it whole (scontrol's ``Comment=`` field is cut
    at the first space by ``scontrol_job``)."""
    result = subprocess.run(
        ["squeue", "--noheader", "--states=all", f"--jobs={job_id}", "--Format=Comment:1000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def slurm_state(env: dict[str, str], job_id: str) -> str:
    return scontrol_job(env, job_id).get("JobState", "")


def reachable(kube: Kube, name: str) -> dict[str, Any] | None:
    body = kube.get("slurmclusters.simjob.io", name)
    for cond in ((body or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Reachable":
            return dict(cond)
    return None


def wait_reachable(kube: Kube, name: str, status: str, timeout: float = 90) -> dict[str, Any]:
    return wait_for(
        lambda: (cond := reachable(kube, name)) and cond.get("status") == status and cond,
        timeout=timeout,
        what=f"SlurmCluster {name} Reachable={status}",
        detail=lambda: reachable(kube, name),
    )


def backend_id(kube: Kube, namespace: str, name: str) -> str | None:
    ref = kube.status(namespace, name).get("backendRef") or {}
    job_id = ref.get("id")
    return str(job_id) if job_id else None


def run_dir(kube: Kube, namespace: str, name: str) -> Path:
    """The SimJob's run directory on the Slurm site (status.workspace.directory)."""
    workspace = kube.status(namespace, name).get("workspace") or {}
    assert workspace.get("directory"), kube.status(namespace, name)
    return Path(workspace["directory"])


def output_file(kube: Kube, namespace: str, name: str) -> Path:
    """The batch output file of the SimJob's Slurm job, in its run directory."""
    job_id = backend_id(kube, namespace, name)
    return run_dir(kube, namespace, name) / f"simjob-{job_id}.out"
