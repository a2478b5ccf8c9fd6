"""Issue 15 on the real local Slurm (hack/slurm/up.sh: GRES gpu:2 on placeholder devices,
the completion log as accounting) and the real control plane: GPUs, the orphan sweep and
usage from accounting, as a user sees them.

* A tier with 2 GPUs runs with ``--gres=gpu:2`` (scontrol's TresPerNode); a job
  asking 2 GPUs while another holds both waits Queued with Slurm's reason and a message
  saying it waits for GPUs in use; a tier asking 3 (more than any node has) fails
  ``SlurmUnsatisfiable`` at once, with sbatch's own words.
* The orphan sweep: a running SimJob whose finalizer is removed by hand (while the
  operator is down) and which is then deleted leaves its job running; the sweep of the
  restarted operator cancels it after the SlurmCluster's
  ``orphanGraceSeconds`` and logs its ids — while a job carrying another Kubernetes
  cluster's mark, submitted by hand under the same Slurm account, keeps running.
* ``status.usage`` of a finished run comes from accounting (source, elapsed seconds,
  allocated CPUs x elapsed).
Neighbours: test_slurm_operator.py, test_slurm_operator_certs.py,
tests/unit/test_slurm_site_features.py (the same decisions without Slurm).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Kube, OperatorProcess, wait_for
from tests.integration.slurm_operator_helpers import (
    apply_slurm_tiers,
    backend_id,
    scontrol_job,
    slurm_cluster,
    slurm_simjob,
    slurm_state,
    wait_reachable,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

CLUSTER = "it-site"
GRACE_S = 10
TIERS = {
    "it-slurm-gpu1": {"cpu": "1", "memory": "100Mi", "gpu": 1, "maxRuntimeSeconds": 600,
                      "maxConcurrentPerOwner": 5},
    "it-slurm-gpu2": {"cpu": "1", "memory": "100Mi", "gpu": 2, "maxRuntimeSeconds": 600,
                      "maxConcurrentPerOwner": 5},
    "it-slurm-gpu3": {"cpu": "1", "memory": "100Mi", "gpu": 3, "maxRuntimeSeconds": 600,
                      "maxConcurrentPerOwner": 5},
    "it-slurm-cpu2": {"cpu": "1", "memory": "100Mi", "maxRuntimeSeconds": 600,
                      "maxConcurrentPerOwner": 5, "slurm": {"cpusPerTask": 2}},
}  # fmt: skip


@pytest.fixture(scope="module")
def site(
    kube: Kube,
    operator: OperatorProcess,
    slurm_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    apply_slurm_tiers(kube)
    kube.apply(
        *(
            {
                "apiVersion": "simjob.io/v1alpha1",
                "kind": "SimTier",
                "metadata": {"name": name},
                "spec": spec,
            }
            for name, spec in TIERS.items()
        )
    )
    work_dir: Path = tmp_path_factory.mktemp("slurm-site-work")
    kube.apply(
        slurm_cluster(CLUSTER, mode="local", workDir=str(work_dir), orphanGraceSeconds=GRACE_S)
    )
    wait_reachable(kube, CLUSTER, "True", timeout=60)
    yield CLUSTER
    kube.run("delete", "slurmclusters.simjob.io", CLUSTER, "--ignore-not-found", check=False)


def cancel(env: dict[str, str], *job_ids: str) -> None:
    if job_ids:
        subprocess.run(["scancel", *job_ids], env=env, capture_output=True, timeout=60, check=False)


def test_gpus_are_asked_waited_for_and_refused_when_no_node_has_them(
    kube: Kube, namespace: str, site: str, slurm_env: dict[str, str]
) -> None:
    kube.apply(
        slurm_simjob("gpu-one", site, "sh", "-c", "sleep 2", tier="it-slurm-gpu1"),
        slurm_simjob("gpu-hog", site, "sleep", "300", tier="it-slurm-gpu2"),
        namespace=namespace,
    )
    status = kube.wait_phase(namespace, "gpu-one", {"Succeeded", "Failed"}, timeout=300)
    assert status["phase"] == "Succeeded", status
    assert status["resources"]["gpu"] == 1
    hog = kube.wait_phase(namespace, "gpu-hog", {"Running"}, timeout=300)
    hog_id = backend_id(kube, namespace, "gpu-hog")
    assert hog_id is not None, hog
    try:
        asked = scontrol_job(slurm_env, hog_id)
        assert asked.get("TresPerNode") == "gres:gpu:2", asked  # --gres=gpu:2
        # Both GPUs are taken: a second 2-GPU job waits in Slurm, and says why.
        kube.apply(
            slurm_simjob("gpu-waits", site, "true", tier="it-slurm-gpu2"), namespace=namespace
        )
        waiting = wait_for(
            lambda: (s := kube.status(namespace, "gpu-waits")).get("reason") == "Resources" and s,
            timeout=300,
            what="gpu-waits Queued with Slurm's reason Resources",
            detail=lambda: kube.status(namespace, "gpu-waits"),
        )
        assert waiting["phase"] == "Queued", waiting
        assert "in use by other jobs" in waiting["message"], waiting
        assert "GPUs: it asks 2" in waiting["message"], waiting
        # More GPUs than any node has: refused at once, with sbatch's words.
        kube.apply(
            slurm_simjob("gpu-never", site, "true", tier="it-slurm-gpu3"), namespace=namespace
        )
        never = kube.wait_phase(namespace, "gpu-never", {"Failed", "Succeeded"}, timeout=300)
        assert never["reason"] == "SlurmUnsatisfiable", never
        assert "3 GPUs" in never["message"], never
        assert "requested node configuration is not available" in never["message"].lower(), never
        assert "backendRef" not in never, never  # nothing was submitted
    finally:
        kube.patch_simjob(namespace, "gpu-hog", {"spec": {"cancel": True}})
    # The GPUs are free again: the waiting job runs.
    done = kube.wait_phase(namespace, "gpu-waits", {"Succeeded", "Failed"}, timeout=300)
    assert done["phase"] == "Succeeded", done


def test_usage_of_a_slurm_run_comes_from_accounting(
    kube: Kube, namespace: str, site: str, slurm_env: dict[str, str]
) -> None:
    kube.apply(
        slurm_simjob("acct", site, "sh", "-c", "sleep 3", tier="it-slurm-cpu2"),
        namespace=namespace,
    )
    status = kube.wait_phase(namespace, "acct", {"Succeeded", "Failed"}, timeout=300)
    assert status["phase"] == "Succeeded", status
    usage = status["usage"]
    assert usage["source"] == "sacct --completion", usage  # the local Slurm's accounting
    assert 3 <= usage["wallSeconds"] <= 60, usage
    assert usage["wallSeconds"] == int(usage["wallSeconds"])  # Slurm's whole seconds
    assert usage["cpuSeconds"] == 2 * usage["wallSeconds"], usage  # the 2 CPUs allocated


def sbatch_marked(env: dict[str, str], comment: str) -> str:
    """A job named like a SimJob's, with ``comment``, submitted by hand (held: it stays
    pending, an unfinished job the sweep lists, and takes no CPU from the others)."""
    name = f"simjob-{uuid.uuid4()}"
    result = subprocess.run(
        ["sbatch", "--parsable", "--hold", f"--job-name={name}", f"--comment={comment}",
         "--output=/dev/null", "--mem=50M", "--wrap=sleep 300"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout.strip().split(";")[0]


def comment_of(env: dict[str, str], job_id: str) -> str:
    result = subprocess.run(
        ["squeue", "--noheader", f"--jobs={job_id}", "--Format=Comment:"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout.strip()


def test_the_sweep_cancels_an_orphan_of_this_cluster_only(
    kube: Kube,
    namespace: str,
    site: str,
    slurm_env: dict[str, str],
    operator: OperatorProcess,
) -> None:
    cluster_id = kube.run(
        "get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}"
    ).stdout.strip()
    foreign = sbatch_marked(slurm_env, f"cluster=another-{cluster_id} simjob={namespace}/ghost")
    unmarked = sbatch_marked(slurm_env, f"{namespace}/ghost")  # no cluster: never ours
    try:
        kube.apply(slurm_simjob("orphan", site, "sleep", "300"), namespace=namespace)
        kube.wait_phase(namespace, "orphan", {"Running"}, timeout=300)
        job_id = backend_id(kube, namespace, "orphan")
        assert job_id is not None
        uid = kube.simjob(namespace, "orphan")["metadata"]["uid"]
        assert comment_of(slurm_env, job_id) == f"cluster={cluster_id} simjob={namespace}/orphan"
        # The finalizer removed by hand and the SimJob deleted while the operator was
        # away (a running operator would put its finalizer back at once): no cleanup ran.
        operator.stop()
        try:
            kube.run(
                "patch", "simjob", "orphan", "-n", namespace, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}',
            )  # fmt: skip
            kube.run("delete", "simjob", "orphan", "-n", namespace, "--wait=true")
        finally:
            operator.start()
        gone_at = time.monotonic()
        assert slurm_state(slurm_env, job_id) == "RUNNING"  # nobody cancelled it (yet)
        wait_for(
            lambda: slurm_state(slurm_env, job_id) in ("CANCELLED", ""),
            timeout=GRACE_S + 60,
            what=f"the sweep to cancel orphaned Slurm job {job_id}",
            detail=lambda: scontrol_job(slurm_env, job_id),
        )
        assert time.monotonic() - gone_at >= GRACE_S - 1  # not before the grace
        line = f"cancelling orphaned Slurm job {job_id} of SimJob {namespace}/orphan (uid {uid})"
        assert line in operator.log_text(), operator.tail()
        # Another sweep has passed (sweeps run every 5 s for this grace): the job of
        # another Kubernetes cluster and the unmarked one run on.
        time.sleep(12)
        assert slurm_state(slurm_env, foreign) == "PENDING"
        assert slurm_state(slurm_env, unmarked) == "PENDING"
        for other in (foreign, unmarked):
            assert f"orphaned Slurm job {other} " not in operator.log_text()
    finally:
        cancel(slurm_env, foreign, unmarked)
