"""The SDK's Slurm side on the real local Slurm: logs, outputs and download of a run.

A SimJob runs on a local-mode SlurmCluster through the session operator; the gateway's
``SimJobClient`` reaches the site with ``SlurmAccess(runner=LocalRunner, work_dir=...)``
(over SSH it is an ``SshRunner`` instead; the bridge functions underneath are tested over
the real sshd in tests/integration/test_slurm_operator_ssh.py). ``logs`` reads the batch
output in the run directory, ``outputs`` lists the run directory, ``download`` copies its
regular files; a path out of the run directory is refused, a planted symlink is listed as
a link and never followed by ``download``.
Neighbours: conftest.py, simjob_sdk/slurm.py, tests/integration/test_slurm_data.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simjob_sdk import Rejected, SimJobClient, SimJobSpec, SlurmAccess
from slurm_bridge import LocalRunner
from tests.integration.conftest import Kube, OperatorProcess
from tests.integration.slurm_operator_helpers import (
    apply_slurm_tiers,
    slurm_cluster,
    slurm_simjob,
    wait_reachable,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

CLUSTER = "sdk-slurm"


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sdk-slurm-work")


@pytest.fixture(scope="module")
def site(
    kube: Kube, operator: OperatorProcess, slurm_env: dict[str, str], work_dir: Path
) -> Iterator[str]:
    apply_slurm_tiers(kube)
    kube.apply(slurm_cluster(CLUSTER, mode="local", workDir=str(work_dir)))
    wait_reachable(kube, CLUSTER, "True", timeout=60)
    yield CLUSTER
    kube.run("delete", "slurmclusters.simjob.io", CLUSTER, "--ignore-not-found", check=False)


@pytest.fixture
def slurm_client(
    kubeconfig: Path, namespace: str, slurm_env: dict[str, str], work_dir: Path
) -> Iterator[SimJobClient]:
    access = SlurmAccess(
        runner=lambda job: LocalRunner(slurm_env), work_dir=lambda job: str(work_dir)
    )
    with SimJobClient(namespace, kubeconfig=kubeconfig, slurm=access) as made:
        yield made


def test_logs_outputs_and_download_of_a_slurm_run(
    slurm_client: SimJobClient, site: str, tmp_path: Path
) -> None:
    script = (
        'echo "hello from $SLURM_JOB_ID"; mkdir -p "$SIMJOB_OUTPUT_DIR/sub"; '
        'echo 42 > "$SIMJOB_OUTPUT_DIR/answer.txt"; echo deep > "$SIMJOB_OUTPUT_DIR/sub/x.txt"; '
        'ln -s /etc/passwd "$SIMJOB_OUTPUT_DIR/passwd"; echo bye'
    )
    manifest = slurm_simjob("sdk-run", site, "sh", "-c", script)
    job = slurm_client.submit(SimJobSpec.model_validate(manifest["spec"]), name="sdk-run")
    ended = slurm_client.wait(job.name, timeout=180)
    assert ended.phase == "Succeeded", ended.raw_status
    job_id = ended.status.backend_ref.id if ended.status.backend_ref else None
    assert job_id

    lines = list(slurm_client.logs("sdk-run"))
    assert f"hello from {job_id}" in lines, lines
    assert "bye" in lines, lines

    outputs = slurm_client.outputs("sdk-run")
    assert outputs.backend == "slurm"
    assert outputs.location == ended.workspace_directory
    kinds = {f.path: f.kind for f in outputs.files}
    assert kinds["outputs/answer.txt"] == "file"
    assert kinds["outputs/sub/x.txt"] == "file"
    assert kinds["outputs/passwd"] == "symlink", kinds
    assert kinds[f"simjob-{job_id}.out"] == "file"

    written = slurm_client.download("sdk-run", tmp_path / "copy")
    copied = {p.relative_to(tmp_path / "copy").as_posix() for p in written}
    assert {"outputs/answer.txt", "outputs/sub/x.txt", f"simjob-{job_id}.out"} <= copied
    assert "outputs/passwd" not in copied  # a link is never followed
    assert (tmp_path / "copy" / "outputs" / "answer.txt").read_text() == "42\n"

    from simjob_sdk import slurm as sdk_slurm

    for hostile in ("../../etc/passwd", "/etc/passwd", "outputs/passwd"):
        with pytest.raises(Rejected):
            sdk_slurm.fetch_output(slurm_client.slurm, ended, hostile)
