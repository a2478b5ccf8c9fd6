"""PyslurmClient on the real local Slurm — only where pyslurm matches the running Slurm.

pyslurm X.Y.* is built against libslurm X.Y (PyPI's 25.11.x needs Slurm 25.11); Debian 12
ships Slurm 22.05.8, so here this test is skipped with that reason. The client itself is
tested against tests/unit/fake_pyslurm.py (tests/unit/test_pyslurm_client.py).
"""

from __future__ import annotations

import importlib
import subprocess
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from slurm_bridge import JobKind, JobSpec
from slurm_bridge.pyslurm_client import PyslurmClient, pyslurm_version_mismatch
from tests.support.slurm_bridge_helpers import finished, run, scancel_all, wait_for_state

pytestmark = pytest.mark.slurm


@pytest.fixture
def pyslurm_module(slurm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    version = subprocess.run(
        ["scontrol", "--version"], env=slurm_env, capture_output=True, text=True, timeout=30
    ).stdout.strip()
    # libslurm reads SLURM_CONF when pyslurm is imported (slurm_init).
    monkeypatch.setenv("SLURM_CONF", slurm_env["SLURM_CONF"])
    try:
        module = importlib.import_module("pyslurm")
    except ImportError as exc:
        pytest.skip(
            f"pyslurm is not importable ({exc}); PyPI's pyslurm 25.11.x needs Slurm 25.11, "
            f"this Slurm is {version or 'unknown'}"
        )
    reason = pyslurm_version_mismatch(str(getattr(module, "__version__", "?")), version)
    if reason is not None:
        pytest.skip(reason)
    return module


def test_pyslurm_client_runs_a_job(
    pyslurm_module: ModuleType, slurm_env: dict[str, str], tmp_path: Path
) -> None:
    client = PyslurmClient(work_dir=str(tmp_path), pyslurm_module=pyslurm_module)
    marker = f"simjob-pyslurm-{uuid.uuid4().hex[:12]}"
    ids: list[str] = []

    async def scenario() -> None:
        job_id = await client.submit(
            JobSpec(marker=marker, command=["printf", "%s\\n"], args=["a b", "$(id)"])
        )
        ids.append(job_id)
        assert await client.find(marker) == job_id
        state = await wait_for_state(client, job_id, finished, timeout_s=90)
        assert state.kind is JobKind.SUCCEEDED
        held = await client.submit(JobSpec(marker=marker + "h", command=["true"], hold=True))
        ids.append(held)
        assert (await client.cancel(held)).kind is JobKind.CANCELLED
        await client.close()

    try:
        run(scenario())
    finally:
        scancel_all(slurm_env, ids)
    assert (tmp_path / f"simjob-{ids[0]}.out").read_text() == "a b\n$(id)\n"
