"""A Slurm job sees its SimJob's environment, never the operator's.

The operator (conftest ``operator``) runs with ``OPERATOR_SECRET`` and KUBECONFIG in
its environment; a SimJob on a SlurmCluster in local mode (the real local Slurm,
hack/slurm/up.sh) prints its whole environment into its output file. The job must show
the SimJob's ``spec.env`` and what Slurm sets (SLURM_JOB_ID), and neither the secret's
name nor its value nor any other variable of the operator: the bridge submits with
``--export=NONE`` and exports exactly ``spec.env`` (slurm_bridge/scripts.py).

Neighbours: test_slurm_operator.py (the other local-mode tests), test_bridge_slurm.py
(the same rule at the bridge), slurm_operator_helpers.py, conftest.py.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import OPERATOR_SECRET, Kube, OperatorProcess
from tests.integration.slurm_operator_helpers import (
    apply_slurm_tiers,
    backend_id,
    jobs_named,
    marker_of,
    slurm_cluster,
    slurm_simjob,
    wait_reachable,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

CLUSTER = "it-local-env"


@pytest.fixture(scope="module")
def local_cluster(
    kube: Kube,
    operator: OperatorProcess,
    slurm_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path]]:
    work_dir = tmp_path_factory.mktemp("slurm-env-work")
    apply_slurm_tiers(kube)
    kube.apply(slurm_cluster(CLUSTER, mode="local", workDir=str(work_dir)))
    wait_reachable(kube, CLUSTER, "True", timeout=60)
    yield CLUSTER, work_dir
    kube.run("delete", "slurmclusters.simjob.io", CLUSTER, "--ignore-not-found", check=False)


def test_the_job_sees_its_own_environment_and_not_the_operators(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    local_cluster: tuple[str, Path],
    slurm_env: dict[str, str],
) -> None:
    cluster, work_dir = local_cluster
    secret_name, secret_value = OPERATOR_SECRET
    # the operator process really holds the secret (read from /proc, as root could)
    assert operator.proc is not None
    environ = Path(f"/proc/{operator.proc.pid}/environ").read_bytes().split(b"\0")
    assert f"{secret_name}={secret_value}".encode() in environ
    kube.apply(
        slurm_simjob(
            "env",
            cluster,
            "env",
            env=[
                {"name": "SIM_SETTING", "value": "the SimJob's own"},
                {"name": "SIM_EMPTY", "value": ""},
            ],
        ),
        namespace=namespace,
    )
    status = kube.wait_phase(namespace, "env", {"Succeeded", "Failed"}, timeout=120)
    assert status["phase"] == "Succeeded", status
    job_id = backend_id(kube, namespace, "env")
    assert job_id is not None
    assert jobs_named(slurm_env, marker_of(kube, namespace, "env")) == {job_id}
    # the output file, in the work directory or a run directory below it
    (output_file,) = work_dir.rglob(f"simjob-{job_id}.out")
    output = output_file.read_text()
    seen = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    assert seen["SIM_SETTING"] == "the SimJob's own"
    assert seen["SIM_EMPTY"] == ""
    assert seen["SLURM_JOB_ID"] == job_id  # what Slurm itself sets
    assert secret_name not in output
    assert secret_value not in output
    # Nothing else of the operator's environment either: with --export=NONE, Slurm gives
    # the job the site user's *login* environment (as --get-user-env), so a variable the
    # operator holds may appear only if a login shell of that user has it too.
    assert "KUBECONFIG" not in seen
    assert "PYTHONUNBUFFERED" not in seen
    operator_env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
    leaked = {
        name
        for name, value in operator_env.items()
        if seen.get(name) == value and login_environment().get(name) != value
    }
    # Slurm sets SLURM_CONF (the same file) for every job; SHLVL is a shell's depth counter
    assert leaked <= {"SLURM_CONF", "SHLVL"}, leaked


def login_environment() -> dict[str, str]:
    """The environment of a login shell of this (the operator's and the job's) user."""
    user = pwd.getpwuid(os.getuid()).pw_name
    result = subprocess.run(
        ["su", "-", user, "-c", "env"], capture_output=True, text=True, timeout=30, check=True
    )
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
