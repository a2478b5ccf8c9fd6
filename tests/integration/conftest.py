"""Fixtures for the operator's integration tests on the real local control plane.

``operator`` (session) applies crds/ and the test SimTiers, then runs the
operator as a subprocess (``python -m kopf run -m simjob_operator.main -A
--standalone``) with KUBECONFIG from the session fixture ``kubeconfig``; its
output goes to a log file under pytest's tmp dir (printed on failure), and it
is stopped by PID; it serves its Prometheus metrics on a free local port
(``OperatorProcess.metrics_port``). ``OperatorProcess.kill9()``/``start()`` let a test crash
and restart it. ``kube`` wraps kubectl (JSON in, JSON out, bounded polling);
``namespace`` makes a fresh namespace and removes it, SimJobs first, after
the test; it may bill the suite's fictional users ``TEST_OWNERS`` besides itself (the
owner policy of crds/owner-policy.yaml, which the ``operator`` fixture applies with the
CRDs). The operator runs with ``OPERATOR_SECRET`` in its environment, which no
simulation may see (test_slurm_operator_env.py). ``SESSION_OPERATORS`` holds the
session operator while it runs, so a module that must be the only operator on the
cluster (test_chart.py runs one with the Helm chart's ServiceAccount) can stop it and
start it again; ``serving_operator`` (which tests/sdk and tests/chaos reuse) never
starts a second one while it is held.

Neighbours: tests/conftest.py (``kubeconfig``, ``kubectl_path``),
test_operator.py, test_operator_restart.py, test_semantic_corpus.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from simjob_operator.api.owner_policy import ALLOWED_OWNERS_ANNOTATION

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

TEST_TIERS: dict[str, dict[str, Any]] = {
    # One slot per owner: strict order, cancel while queued.
    "it-one": {
        "cpu": "500m",
        "memory": "256Mi",
        "maxRuntimeSeconds": 600,
        "maxConcurrentPerOwner": 1,
    },
    # Many slots: the bulk tests.
    "it-wide": {
        "cpu": "250m",
        "memory": "128Mi",
        "maxRuntimeSeconds": 600,
        "maxConcurrentPerOwner": 20,
    },
    # Finished SimJobs are deleted 8 s after completionTime.
    "it-ttl": {
        "cpu": "100m",
        "memory": "64Mi",
        "maxRuntimeSeconds": 60,
        "maxConcurrentPerOwner": 5,
        "ttlSecondsAfterFinished": 8,
    },
    # A short limit for the timeout test.
    "it-short": {
        "cpu": "100m",
        "memory": "64Mi",
        "maxRuntimeSeconds": 4,
        "maxConcurrentPerOwner": 5,
    },
}


class Kube:
    """kubectl with the test kubeconfig."""

    def __init__(self, kubeconfig: Path, kubectl: Path) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl = kubectl

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def apply(self, *docs: dict[str, Any], namespace: str | None = None) -> None:
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self.run(*args, stdin=yaml.safe_dump_all(docs))

    def get(
        self,
        kind: str,
        name: str | None = None,
        *,
        namespace: str | None = None,
        selector: str | None = None,
    ) -> Any:
        args = ["get", kind] + ([name] if name else []) + ["-o", "json"]
        if namespace:
            args += ["-n", namespace]
        if selector:
            args += ["-l", selector]
        result = self.run(*args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(f"kubectl get {kind} {name} failed: {result.stderr}")
        return json.loads(result.stdout)

    def items(
        self, kind: str, *, namespace: str | None = None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        found = self.get(kind, namespace=namespace, selector=selector)
        return list(found["items"]) if found else []

    def simjob(self, namespace: str, name: str) -> dict[str, Any]:
        body = self.get("simjobs.simjob.io", name, namespace=namespace)
        assert body is not None, f"SimJob {namespace}/{name} not found"
        return dict(body)

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self.simjob(namespace, name).get("status") or {})

    def patch_simjob(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.run(
            "patch",
            "simjobs.simjob.io",
            name,
            "-n",
            namespace,
            "--type=merge",
            "-p",
            json.dumps(patch),
        )

    def wait_phase(
        self, namespace: str, name: str, phases: set[str] | str, timeout: float = 90
    ) -> dict[str, Any]:
        wanted = {phases} if isinstance(phases, str) else phases

        def reached() -> dict[str, Any] | None:
            status = self.status(namespace, name)
            return status if status.get("phase") in wanted else None

        return wait_for(
            reached,
            timeout=timeout,
            what=f"{namespace}/{name} to reach {sorted(wanted)}",
            detail=lambda: self.status(namespace, name),
        )


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.25,
    detail: Callable[[], Any] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"; last seen: {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(interval)


def simjob(
    name: str,
    *,
    tier: str = "it-wide",
    run_seconds: float | None = None,
    fail_exit_code: int | None = None,
    fail_reason: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A SimJob manifest; KWOK is steered through spec.podMetadata."""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    if run_seconds is not None:
        annotations["pod-complete.stage.kwok.x-k8s.io/delay"] = f"{run_seconds}s"
    if fail_exit_code is not None:
        labels["pod-container-running-failed.stage.kwok.x-k8s.io"] = "true"
        annotations["pod-container-running-failed.stage.kwok.x-k8s.io/exit-code"] = str(
            fail_exit_code
        )
        if run_seconds is not None:  # fail after the same run time, not KWOK's default 1 s
            annotations["pod-container-running-failed.stage.kwok.x-k8s.io/delay"] = (
                f"{run_seconds}s"
            )
        if fail_reason:
            annotations["pod-container-running-failed.stage.kwok.x-k8s.io/reason"] = fail_reason
    body: dict[str, Any] = {
        "tier": tier,
        "image": "busybox:1.36",
        "command": ["sleep", "1"],
        **spec,
    }
    if labels or annotations:
        body["podMetadata"] = {"labels": labels, "annotations": annotations}
    return {
        "apiVersion": "simjob.io/v1alpha1",
        "kind": "SimJob",
        "metadata": {"name": name},
        "spec": body,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# spec.owner values the tests use besides the namespace: every test namespace lists them
# in its simjob.io/allowed-owners annotation (an administrator's setting in production).
TEST_OWNERS = ("alice", "bob", "carol", "dave", "eve")
# In the operator's environment only: a Slurm job must never see it (--export=NONE).
OPERATOR_SECRET = ("SIMJOB_IT_OPERATOR_SECRET", "operator-only-" + uuid.uuid4().hex)


def namespace_manifest(name: str, owners: tuple[str, ...] = TEST_OWNERS) -> dict[str, Any]:
    """A Namespace whose SimJobs may also be billed to ``owners`` (created with the
    annotation: the API server's admission reads namespaces from a cache that can lag a
    moment behind a later change)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "annotations": {ALLOWED_OWNERS_ANNOTATION: ",".join(owners)}},
    }


# The session's operator while the ``operator`` fixture holds it (at most one).
def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to our child by its PID, SIGKILL after 30 s; waits for it to end."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


SESSION_OPERATORS: list[OperatorProcess] = []


class OperatorProcess:
    """The operator under test, as a child process (stopped by PID, never by name)."""

    def __init__(self, kubeconfig: Path, log_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = log_dir / "operator-0.log"
        self.metrics_port = 0  # where it serves /metrics (a free port, chosen at each start)
        self.extra_modules: list[str] = []  # more kopf modules, e.g. tests.support.crash_hooks

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        self.log_path = self.log_dir / f"operator-{self.starts}.log"
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        self.metrics_port = free_port()  # test_metrics.py scrapes it
        env.update(SIMJOB_METRICS_PORT=str(self.metrics_port), SIMJOB_METRICS_ADDRESS="127.0.0.1")
        # SlurmClusters in local mode use the operator's SLURM_CONF: the repo's Slurm
        # (hack/slurm/up.sh; started by the tests that use it, via ``slurm_env``).
        env["SLURM_CONF"] = str(REPO / ".slurm" / "etc" / "slurm.conf")
        env[OPERATOR_SECRET[0]] = OPERATOR_SECRET[1]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kopf",
                    "run",
                    "-m",
                    "simjob_operator.main",
                    *(arg for module in self.extra_modules for arg in ("-m", module)),
                    "-A",
                    "--standalone",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        wait_for(
            lambda: "Activity 'startup' succeeded" in self.log_text() or self.exited(),
            timeout=60,
            what="the operator to start",
            detail=self.tail,
        )
        assert not self.exited(), f"the operator exited at start:\n{self.tail()}"

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def all_logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        stop_process(self.proc)


@pytest.fixture(scope="session")
def kube(kubeconfig: Path, kubectl_path: Path) -> Kube:
    return Kube(kubeconfig, kubectl_path)


def install(kube: Kube, tiers: dict[str, dict[str, Any]]) -> None:
    """crds/ (each CRD waited for until Established) and the SimTiers ``tiers``."""
    kube.run("apply", "-f", str(REPO / "crds"))
    for plural in ("simjobs", "simtiers", "slurmclusters", "simusages"):
        crd = f"crd/{plural}.simjob.io"
        kube.run("wait", "--for=condition=Established", crd, "--timeout=60s")
    kind = {"apiVersion": "simjob.io/v1alpha1", "kind": "SimTier"}
    kube.apply(*({**kind, "metadata": {"name": n}, "spec": s} for n, s in tiers.items()))


@contextlib.contextmanager
def serving_operator(
    kube: Kube, kubeconfig: Path, log_dir: Callable[[], Path], tiers: dict[str, dict[str, Any]]
) -> Iterator[OperatorProcess]:
    """The one operator serving the cluster, after ``install(kube, tiers)``: the one in
    ``SESSION_OPERATORS`` when another fixture holds it (two operators on one cluster
    would each act on every SimJob; started again if a test left it dead), else a new
    one (logs in ``log_dir()``), stopped at the end. Used by every ``operator`` fixture
    (here, tests/sdk, tests/chaos)."""
    install(kube, tiers)
    if SESSION_OPERATORS:
        held = SESSION_OPERATORS[0]
        if held.exited():
            held.start()
        yield held
        if held.exited():
            held.start()
        return
    process = OperatorProcess(kubeconfig, log_dir())
    process.start()
    SESSION_OPERATORS.append(process)
    try:
        yield process
    finally:
        SESSION_OPERATORS.remove(process)
        process.stop()
        print(f"\noperator logs: {process.log_dir}")


@pytest.fixture(scope="session")
def operator(
    kube: Kube, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with serving_operator(
        kube, kubeconfig, lambda: tmp_path_factory.mktemp("operator"), TEST_TIERS
    ) as process:
        yield process


@pytest.fixture
def namespace(
    kube: Kube, operator: OperatorProcess, request: pytest.FixtureRequest
) -> Iterator[str]:
    short = re.sub(r"[^a-z0-9]+", "-", request.node.name.removeprefix("test_").lower())[:24]
    name = f"it-{short.strip('-')}-{uuid.uuid4().hex[:6]}"
    kube.apply(namespace_manifest(name))
    yield name
    if operator.exited():
        operator.start()  # a test that killed it must not leave finalizers stuck
    kube.run("delete", "simjobs.simjob.io", "--all", "-n", name, "--timeout=60s", check=False)
    kube.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(autouse=True)
def _operator_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "operator" in request.fixturenames:
        process = request.getfixturevalue("operator")
        print(f"\n--- operator log tail ({process.log_path}) ---\n{process.tail(120)}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
