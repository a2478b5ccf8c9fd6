"""The Python package as it ships: ``python -m build`` makes a wheel and an sdist
(the wheel built from the sdist, so the sdist is complete). The wheel installed into
a fresh virtualenv (dependencies from the package index, no source tree on the path)
gives the SDK and a working ``simjob`` (and ``kubectl-simjob``) command without kopf;
with the ``operator`` extra (``simjob[operator]``, what the image installs) its
``simjob-operator`` entry point starts the operator against the real control plane
and answers on kopf's health endpoint and, with ``--metrics-port``, on ``/metrics``
(prometheus_client comes with the extra).

The started operator serves one fresh, empty namespace (``-n``): it has nothing to
act on, so it cannot disturb the session's operator. ~30 s, mostly pip.

Neighbours: pyproject.toml, Dockerfile (the same wheel in the image),
test_chart.py (the chart's Deployment runs this entry point).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

import pytest

from simjob_operator.api import names as c
from tests.integration.conftest import Kube, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.packaging]

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout
    )
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_wheel_and_sdist_install_into_a_clean_venv_and_start(
    kube: Kube, kubeconfig: Path, tmp_path: Path
) -> None:
    version = next(
        line.split('"')[1]
        for line in (REPO / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )
    dist = tmp_path / "dist"
    started = time.monotonic()
    run(sys.executable, "-m", "build", "--outdir", str(dist), str(REPO), cwd=tmp_path, timeout=600)
    build_seconds = time.monotonic() - started
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    assert wheel.name == f"simjob-{version}-py3-none-any.whl"
    assert sdist.name == f"simjob-{version}.tar.gz"

    with zipfile.ZipFile(wheel) as zipped:
        names = zipped.namelist()
        entry_points = zipped.read(f"simjob-{version}.dist-info/entry_points.txt").decode()
    assert "simjob_operator/main.py" in names
    assert "simjob_operator/backends/kubernetes/backend.py" in names
    assert "slurm_bridge/__init__.py" in names
    # only the two packages: no tests, and no top-level `operator` shadowing the stdlib
    assert "simjob_sdk/client.py" in names
    assert {n.split("/")[0] for n in names} == {
        "simjob_operator", "slurm_bridge", "simjob_sdk", f"simjob-{version}.dist-info"
    }  # fmt: skip
    assert "simjob-operator = simjob_operator.main:cli" in entry_points
    assert "simjob = simjob_sdk.cli:main" in entry_points
    assert "kubectl-simjob = simjob_sdk.cli:main" in entry_points
    with tarfile.open(sdist) as tarred:
        members = {m.name.split("/", 1)[1] for m in tarred.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "README.md", "operator/simjob_operator/main.py",
            "slurm_bridge/__init__.py"} <= members  # fmt: skip

    venv = tmp_path / "venv"
    started = time.monotonic()
    run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path, timeout=120)
    run(str(venv / "bin" / "pip"), "install", "--quiet", str(wheel), cwd=tmp_path, timeout=900)
    install_seconds = time.monotonic() - started

    # The bare wheel: the SDK and the CLI, no kopf.
    python = str(venv / "bin" / "python")
    run(python, "-c",
        "import importlib.util, sys, simjob_sdk, simjob_sdk.cli\n"
        "assert importlib.util.find_spec('kopf') is None, 'kopf is installed'\n"
        "assert 'kopf' not in sys.modules\n"
        f"assert simjob_sdk.__file__.startswith({str(venv)!r}), simjob_sdk.__file__\n",
        cwd=tmp_path, timeout=60)  # fmt: skip
    for script in ("simjob", "kubectl-simjob"):
        helped = run(str(venv / "bin" / script), "--help", cwd=tmp_path, timeout=60)
        assert "submit" in helped.stdout
        assert "watch" in helped.stdout
    sdk_namespace = f"pkg-sdk-{uuid.uuid4().hex[:6]}"
    kube.run("create", "namespace", sdk_namespace)
    try:
        listed = run(
            str(venv / "bin" / "simjob"), "--kubeconfig", str(kubeconfig),
            "-n", sdk_namespace, "list", "-o", "json", cwd=tmp_path, timeout=60,
        )  # fmt: skip
        assert '"items": []' in listed.stdout
    finally:
        kube.run("delete", "namespace", sdk_namespace, "--wait=false", check=False)

    # simjob[operator]: the operator (what the Dockerfile and hack/images install).
    run(str(venv / "bin" / "pip"), "install", "--quiet", f"{wheel}[operator]",
        cwd=tmp_path, timeout=900)  # fmt: skip

    entry = venv / "bin" / "simjob-operator"
    helped = run(str(entry), "--help", cwd=tmp_path, timeout=60)
    assert "--namespace" in helped.stdout
    assert "--liveness" in helped.stdout
    where = run(
        str(venv / "bin" / "python"), "-c",
        "import simjob_operator.main, slurm_bridge; print(simjob_operator.main.__file__)",
        cwd=tmp_path, timeout=60,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(venv)), where  # the installed copy, not the source tree

    namespace = f"pkg-{uuid.uuid4().hex[:6]}"
    kube.run("create", "namespace", namespace)
    port, metrics_port = free_port(), free_port()
    log_path = tmp_path / "operator.log"
    env = {k: v for k, v in os.environ.items() if k != c.ENV_WATCH_NAMESPACES}
    env |= {"KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(entry), "-n", namespace, f"--liveness=http://127.0.0.1:{port}/healthz",
             f"--metrics-port={metrics_port}"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip

    def healthy() -> bool:
        assert proc.poll() is None, f"the operator exited:\n{log_path.read_text()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    try:
        wait_for(healthy, timeout=60, what="the installed operator's health endpoint")
        wait_for(
            lambda: "Activity 'startup' succeeded" in log_path.read_text(),
            timeout=30,
            what="the startup activity",
        )
        # the operator extra brings prometheus_client: --metrics-port serves /metrics
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert "simjob_workqueue_depth 0.0" in resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        kube.run("delete", "namespace", namespace, "--wait=false", check=False)
    assert proc.returncode == 0, log_path.read_text()
    text = log_path.read_text()
    assert "Traceback" not in text, text
    print(f"\npython -m build {build_seconds:.1f} s; venv + pip install {install_seconds:.1f} s")
