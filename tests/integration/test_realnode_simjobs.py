"""SimJobs on the real node: real containers through the operator (issues 9 item 6 and 12).

Every test runs SimJobs through the session's operator (conftest.py ``operator``) on the
real control plane, on SimTiers (cluster-scoped, named ``rn-<hex>-*``, made by the module
fixture ``tiers``) that place their pods on the real node: ``nodeSelector
simjob.io/pool=real`` and a toleration of its taint. The image is the example simulation
``docker.io/simjob/simulation:local`` (examples/simulation/heat.py), built and imported by
hack/images/build.sh (a cache hit once built); its tag is not ``latest``, so the Job's pod
pulls ``IfNotPresent``, i.e. never here.

What the host shows is read from the host: the container's cgroup (cgroup v1,
``/sys/fs/cgroup/cpu/kubepods/pod<uid>/<container id>``: the tiers give requests = limits,
so pods are Guaranteed), its processes (``cgroup.procs``, ``/proc/<pid>/status``, a scan of
``/proc/*/cmdline`` for a token unique to the test) and containerd (``ctr -n k8s.io``).
Workspaces are PersistentVolumeClaims bound to a ``local`` PersistentVolume on the real
node, a fresh temporary directory per test (fixture ``workspace``); the test reads the
simulation's files from that directory.

Neighbours: test_realnode_node.py (plain pods), test_operator.py (the same phases on KWOK).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.conftest import REPO, Kube, OperatorProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.realnode]

POOL_LABEL = "simjob.io/pool"
POOL = "real"
SIMULATION = "docker.io/simjob/simulation:local"
HEAT = ["python3", "/opt/simulation/heat.py"]  # spec.command is required
MISSING_IMAGE = "docker.io/simjob/nothere:local"
RUN_AS_UID = 65532
CONTAINERD_SOCKET = REPO / ".cluster" / "node" / "containerd.sock"
CTR = REPO / ".cluster" / "bin" / "ctr"
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
CLAIM = "rn-workspace"
PLACEMENT: dict[str, Any] = {
    "nodeSelector": {POOL_LABEL: POOL},
    "tolerations": [
        {"key": POOL_LABEL, "operator": "Equal", "value": POOL, "effect": "NoSchedule"}
    ],
}
PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def real_node(kube: Kube) -> str:
    """The real node's name; builds and imports the simulation image (a cache hit when
    built)."""
    if os.environ.get("SIMJOB_REAL_NODE", "1") == "0":
        pytest.skip("SIMJOB_REAL_NODE=0: the cluster runs KWOK nodes only")
    skipped = REPO / ".cluster" / "real-node-skipped"
    if skipped.exists():
        pytest.skip(f"no real node in this cluster: {skipped.read_text().strip()}")
    nodes = kube.items("nodes", selector=f"{POOL_LABEL}={POOL}")
    assert len(nodes) == 1, "hack/cluster/up.sh should have started one real node"
    subprocess.run(
        [str(REPO / "hack" / "images" / "build.sh"), "--import", "simulation"],
        check=True,
        timeout=1800,
        stdout=subprocess.DEVNULL,
    )
    return str(nodes[0]["metadata"]["name"])


@dataclass(frozen=True)
class Tiers:
    run: str  # 500m / 256Mi, 120 s, progress every 1 s
    short: str  # maxRuntimeSeconds 5
    small: str  # 64Mi: the memory hog's
    pending: str  # maxPendingSeconds 20
    workspace: str  # the default claim CLAIM, progress every 1 s


@pytest.fixture(scope="module")
def tiers(kube: Kube, operator: OperatorProcess, real_node: str) -> Iterator[Tiers]:
    prefix = f"rn-{uuid.uuid4().hex[:6]}"
    names = Tiers(
        run=f"{prefix}-run",
        short=f"{prefix}-short",
        small=f"{prefix}-small",
        pending=f"{prefix}-pending",
        workspace=f"{prefix}-ws",
    )
    base: dict[str, Any] = {
        "cpu": "500m",
        "memory": "256Mi",
        "maxRuntimeSeconds": 120,
        "maxConcurrentPerOwner": 20,
        "progressIntervalSeconds": 1,
        **PLACEMENT,
    }
    specs: dict[str, dict[str, Any]] = {
        names.run: base,
        names.short: {**base, "maxRuntimeSeconds": 5},
        names.small: {**base, "memory": "64Mi"},
        names.pending: {**base, "maxPendingSeconds": 20},
        names.workspace: {**base, "workspace": {"claimName": CLAIM}},
    }
    kube.apply(
        *(
            {
                "apiVersion": "simjob.io/v1alpha1",
                "kind": "SimTier",
                "metadata": {"name": name},
                "spec": spec,
            }
            for name, spec in specs.items()
        )
    )
    try:
        yield names
    finally:
        kube.run("delete", "simtiers.simjob.io", *specs, "--ignore-not-found", check=False)


@dataclass(frozen=True)
class Workspace:
    claim: str
    volume: str
    host_dir: Path


@pytest.fixture
def workspace(kube: Kube, namespace: str, real_node: str) -> Iterator[Workspace]:
    """A PersistentVolumeClaim ``CLAIM`` in the test's namespace, bound to a ``local``
    PersistentVolume on the real node: a fresh directory under the system's temp dir."""
    host_dir = Path(tempfile.mkdtemp(prefix="rn-pv-"))
    host_dir.chmod(0o777)
    volume = f"rn-pv-{uuid.uuid4().hex[:8]}"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "volumeMode": "Filesystem",
                "local": {"path": str(host_dir)},
                "claimRef": {"namespace": namespace, "name": CLAIM},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "In",
                                        "values": [real_node],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": CLAIM, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    try:
        wait_for(
            lambda: (
                (kube.get("pvc", CLAIM, namespace=namespace) or {}).get("status", {}).get("phase")
                == "Bound"
            ),
            timeout=60,
            what=f"claim {namespace}/{CLAIM} to be Bound",
        )
        yield Workspace(CLAIM, volume, host_dir)
    finally:
        kube.run(
            "delete", "simjobs.simjob.io", "--all", "-n", namespace, "--timeout=60s", check=False
        )
        kube.run("delete", "pods", "--all", "-n", namespace, "--timeout=60s", check=False)
        kube.run("delete", "pvc", CLAIM, "-n", namespace, "--timeout=60s", check=False)
        kube.run("delete", "pv", volume, "--timeout=60s", check=False)
        shutil.rmtree(host_dir, ignore_errors=True)


# ---------------------------------------------------------------- helpers


def heat(name: str, tier: str, *args: str, **spec: Any) -> dict[str, Any]:
    """A SimJob of the example simulation."""
    return {
        "apiVersion": "simjob.io/v1alpha1",
        "kind": "SimJob",
        "metadata": {"name": name},
        "spec": {
            "tier": tier,
            "image": SIMULATION,
            "command": HEAT,
            "args": list(args),
            **spec,
        },
    }


def token() -> str:
    """A string unique to one test, put on the simulation's command line to find its
    process on the host."""
    return f"/tmp/rn-token-{uuid.uuid4().hex}"


def ctr(*args: str) -> str:
    result = subprocess.run(
        [str(CTR), "--address", str(CONTAINERD_SOCKET), "-n", "k8s.io", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, f"ctr {' '.join(args)}: {result.stderr}"
    return result.stdout


def containers_of_pod(pod_uid: str) -> list[str]:
    """containerd's containers (sandbox included) of a pod."""
    return ctr("containers", "ls", "-q", f'labels."io.kubernetes.pod.uid"=={pod_uid}').split()


def tasks() -> dict[str, int]:
    """containerd's running tasks: container id -> host PID."""
    found: dict[str, int] = {}
    for line in ctr("tasks", "ls").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            found[parts[0]] = int(parts[1])
    return found


def processes_with(text: str) -> list[int]:
    """Host PIDs whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def pods_of(kube: Kube, namespace: str, uid: str) -> list[dict[str, Any]]:
    return kube.items("pods", namespace=namespace, selector=f"simjob.io/uid={uid}")


@dataclass(frozen=True)
class Running:
    pod_uid: str
    container_id: str
    cgroup: Path  # the container's cgroup in the cpu hierarchy
    pids: list[int]  # its host processes


def running_container(kube: Kube, namespace: str, name: str, timeout: float = 90) -> Running:
    """Wait until the SimJob is Running and its container's process shows on the host."""
    kube.wait_phase(namespace, name, "Running", timeout=timeout)
    uid = kube.simjob(namespace, name)["metadata"]["uid"]

    def probe() -> Running | None:
        for pod in pods_of(kube, namespace, uid):
            for status in pod.get("status", {}).get("containerStatuses") or []:
                if "running" not in (status.get("state") or {}):
                    continue
                container_id = str(status["containerID"]).split("://", 1)[1]
                pod_uid = pod["metadata"]["uid"]
                for qos in ("", "burstable/", "besteffort/"):
                    cgroup = CGROUP_CPU / f"kubepods/{qos}pod{pod_uid}" / container_id
                    if cgroup.is_dir():
                        pids = [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
                        if pids:
                            return Running(pod_uid, container_id, cgroup, pids)
        return None

    return wait_for(probe, timeout=60, what=f"the container of {namespace}/{name} on the host")


def wait_started_printing(kube: Kube, namespace: str, name: str) -> None:
    """heat.py installs its SIGTERM handler before its first line of output."""
    wait_for(
        lambda: (
            "heat: grid" in kube.run("logs", f"job/sj-{name}", "-n", namespace, check=False).stdout
        ),
        timeout=60,
        what=f"{namespace}/{name} to print",
    )


def wait_gone_from_host(run: Running, marker: str) -> None:
    """No process, task or container of the run is left on the host."""

    def gone() -> bool:
        alive = [pid for pid in run.pids if Path(f"/proc/{pid}").exists()]
        return (
            not alive
            and not processes_with(marker)
            and run.container_id not in tasks()
            and not containers_of_pod(run.pod_uid)
        )

    wait_for(
        gone,
        timeout=90,
        what="the run's processes and containers to be gone from the host",
        detail=lambda: {
            "pids": [pid for pid in run.pids if Path(f"/proc/{pid}").exists()],
            "cmdline": processes_with(marker),
            "task": run.container_id in tasks(),
            "containers": containers_of_pod(run.pod_uid),
        },
    )


# ---------------------------------------------------------------- issue 9, item 6


def test_exit_zero_succeeds_with_output_in_job_logs(
    kube: Kube, namespace: str, tiers: Tiers
) -> None:
    kube.apply(heat("ok", tiers.run, "--grid", "16", "--steps", "10"), namespace=namespace)
    status = kube.wait_phase(namespace, "ok", {"Succeeded", "Failed", "TimedOut"}, timeout=120)
    assert status["phase"] == "Succeeded", status
    assert status.get("exitCode", 0) == 0
    logs = kube.run("logs", "job/sj-ok", "-n", namespace).stdout
    assert "heat: grid 16x16, 10 steps" in logs
    assert 'SIMJOB_PROGRESS {"percent": 100.0, "message": "step 10 of 10"}' in logs
    assert "heat: done" in logs


def test_exit_three_fails_with_exit_code_and_last_lines(
    kube: Kube, namespace: str, tiers: Tiers
) -> None:
    kube.apply(
        heat("three", tiers.run, "--grid", "16", "--steps", "10", "--exit-code", "3"),
        namespace=namespace,
    )
    status = kube.wait_phase(namespace, "three", {"Succeeded", "Failed", "TimedOut"}, timeout=120)
    assert status["phase"] == "Failed", status
    assert status["exitCode"] == 3
    message = status["message"]
    assert "exited with code 3" in message
    assert "step 10 of 10" in message
    assert "heat: done" in message


def test_memory_hog_is_oom_killed_by_the_kernel(kube: Kube, namespace: str, tiers: Tiers) -> None:
    kube.apply(heat("hog", tiers.small, "--alloc-mib", "300"), namespace=namespace)
    status = kube.wait_phase(namespace, "hog", {"Succeeded", "Failed", "TimedOut"}, timeout=120)
    assert status["phase"] == "Failed", status
    assert status["reason"] == "OOMKilled", status
    assert status.get("exitCode") == 137
    # The kernel's verdict, as the kubelet read it from the container's state.
    uid = kube.simjob(namespace, "hog")["metadata"]["uid"]
    [pod] = pods_of(kube, namespace, uid)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["memory"] == "64Mi"


def test_tier_cpu_is_the_container_cgroup_quota(kube: Kube, namespace: str, tiers: Tiers) -> None:
    kube.apply(heat("cpu", tiers.run, "--seconds", "60"), namespace=namespace)
    run = running_container(kube, namespace, "cpu")
    # Guaranteed QoS: the pod's cgroup is directly under kubepods/.
    assert run.cgroup.parent.parent == CGROUP_CPU / "kubepods"
    quota = int((run.cgroup / "cpu.cfs_quota_us").read_text())
    period = int((run.cgroup / "cpu.cfs_period_us").read_text())
    assert quota / period == pytest.approx(0.5), (quota, period)
    memory = CGROUP_CPU.parent / "memory" / run.cgroup.relative_to(CGROUP_CPU)
    assert int((memory / "memory.limit_in_bytes").read_text()) == 256 * 1024 * 1024
    kube.patch_simjob(namespace, "cpu", {"spec": {"cancel": True}})
    kube.wait_phase(namespace, "cpu", "Cancelled", timeout=90)


def test_past_its_runtime_is_timed_out_and_gone_from_the_host(
    kube: Kube, namespace: str, tiers: Tiers
) -> None:
    marker = token()
    kube.apply(
        heat("sleepy", tiers.short, "--seconds", "300", "--term-marker", marker),
        namespace=namespace,
    )
    run = running_container(kube, namespace, "sleepy")
    assert processes_with(marker), "the simulation's process should show on the host"
    status = kube.wait_phase(namespace, "sleepy", {"TimedOut", "Failed", "Succeeded"}, timeout=60)
    assert status["phase"] == "TimedOut", status
    wait_gone_from_host(run, marker)


def test_cancel_sends_sigterm_then_nothing_is_left(
    kube: Kube, namespace: str, tiers: Tiers, workspace: Workspace
) -> None:
    every = str(1_000_000 + uuid.uuid4().int % 1_000_000)  # unique: finds the process
    kube.apply(
        heat(
            "cancelme",
            tiers.run,
            "--seconds",
            "300",
            "--progress-every",
            every,
            "--term-marker",
            "/simjob/workspace/terminated",
            workspace={"claimName": workspace.claim},
        ),
        namespace=namespace,
    )
    run = running_container(kube, namespace, "cancelme")
    wait_started_printing(kube, namespace, "cancelme")
    sj = kube.simjob(namespace, "cancelme")
    kube.patch_simjob(namespace, "cancelme", {"spec": {"cancel": True}})
    status = kube.wait_phase(namespace, "cancelme", {"Cancelled", "Failed", "Succeeded"}, 90)
    assert status["phase"] == "Cancelled", status
    path = workspace.host_dir / sj["status"]["workspace"]["path"] / "terminated"
    assert (
        path == workspace.host_dir / namespace / f"cancelme-{sj['metadata']['uid']}" / "terminated"
    )
    assert path.read_text().startswith("SIGTERM at "), path
    wait_gone_from_host(run, f"--progress-every {every}")


def test_restricted_pod_security_holds_for_a_real_process(
    kube: Kube, namespace: str, tiers: Tiers
) -> None:
    kube.run(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    kube.apply(heat("strict", tiers.run, "--seconds", "60"), namespace=namespace)
    run = running_container(kube, namespace, "strict")
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{run.pids[0]}/status").read_text().splitlines()
        if ":" in line
    )
    assert fields["Uid"].split() == [str(RUN_AS_UID)] * 4
    assert fields["Gid"].split() == [str(RUN_AS_UID)] * 4
    assert str(RUN_AS_UID) in fields["Groups"].split()  # fsGroup/supplementary
    assert int(fields["CapEff"].strip(), 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"  # a filter: RuntimeDefault
    kube.patch_simjob(namespace, "strict", {"spec": {"cancel": True}})
    kube.wait_phase(namespace, "strict", "Cancelled", timeout=90)


def test_operator_kill9_adopts_the_running_container(
    kube: Kube, namespace: str, tiers: Tiers, operator: OperatorProcess
) -> None:
    kube.apply(heat("adopt", tiers.run, "--seconds", "15"), namespace=namespace)
    run = running_container(kube, namespace, "adopt")
    uid = kube.simjob(namespace, "adopt")["metadata"]["uid"]
    operator.kill9()
    seen_pods: set[str] = set()
    for _ in range(6):  # the container runs on without an operator
        seen_pods |= {p["metadata"]["uid"] for p in pods_of(kube, namespace, uid)}
        time.sleep(0.5)
    operator.start()
    deadline = time.monotonic() + 120
    while kube.status(namespace, "adopt").get("phase") not in {"Succeeded", "Failed", "TimedOut"}:
        seen_pods |= {p["metadata"]["uid"] for p in pods_of(kube, namespace, uid)}
        assert time.monotonic() < deadline, kube.status(namespace, "adopt")
        time.sleep(0.5)
    status = kube.status(namespace, "adopt")
    assert status["phase"] == "Succeeded", status
    pods = pods_of(kube, namespace, uid)
    seen_pods |= {p["metadata"]["uid"] for p in pods}
    assert seen_pods == {run.pod_uid}
    assert pods[0]["status"]["containerStatuses"][0]["restartCount"] == 0
    job = kube.get("jobs", "sj-adopt", namespace=namespace)
    assert job["status"].get("succeeded") == 1, job["status"]
    assert not job["status"].get("failed"), job["status"]
    # containerd made exactly one container for the simulation (plus the pod's sandbox).
    simulation = ctr(
        "containers",
        "ls",
        "-q",
        f'labels."io.kubernetes.pod.namespace"=={namespace},'
        'labels."io.kubernetes.container.name"==simulation',
    ).split()
    assert simulation == [run.container_id]
    assert "adopted the existing Job" in operator.log_text() or "sj-adopt" in operator.log_text()


def test_missing_image_shows_the_kubelet_reason_then_max_pending_fails_it(
    kube: Kube, namespace: str, tiers: Tiers
) -> None:
    body = heat("nothere", tiers.pending)
    body["spec"]["image"] = MISSING_IMAGE
    started = time.monotonic()
    kube.apply(body, namespace=namespace)

    def pulling() -> dict[str, Any] | None:
        status = kube.status(namespace, "nothere")
        return status if status.get("reason") in PULL_REASONS else None

    status = wait_for(
        pulling,
        timeout=30,
        what="the image pull failure in status",
        detail=lambda: kube.status(namespace, "nothere"),
    )
    shown_after = time.monotonic() - started
    assert status["phase"] == "Queued", status
    assert status.get("message"), status
    assert MISSING_IMAGE in status["message"] or "nothere" in status["message"], status
    status = kube.wait_phase(namespace, "nothere", {"Failed", "Succeeded", "Cancelled"}, 60)
    ended_after = time.monotonic() - started
    assert status["phase"] == "Failed", status
    assert status["reason"] == "Unschedulable", status
    assert 18 <= ended_after <= 50, (shown_after, ended_after)
    print(f"pull failure shown after {shown_after:.1f} s, Failed after {ended_after:.1f} s")


# ---------------------------------------------------------------- issue 12


PARAMS = {"grid": 40, "steps": 100, "alpha": 0.2, "seconds": 10, "progress_every": 5}


def run_plate(kube: Kube, namespace: str, tier: str) -> tuple[dict[str, Any], list[float]]:
    """The example simulation with params.json from a ConfigMap (spec.inputs) on ``tier``
    (its default claim): its final status and the progress percentages seen in status
    while it ran."""
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "heat-params"},
            "data": {"params.json": json.dumps(PARAMS)},
        },
        heat("plate", tier, inputs=[{"configMap": {"name": "heat-params"}}]),
        namespace=namespace,
    )
    seen: list[float] = []
    deadline = time.monotonic() + 120
    while True:
        status = kube.status(namespace, "plate")
        percent = (status.get("progress") or {}).get("percent")
        if status.get("phase") == "Running" and percent is not None:
            value = float(percent)
            if not seen or value != seen[-1]:
                seen.append(value)
        if status.get("phase") in {"Succeeded", "Failed", "TimedOut", "Cancelled"}:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    print(f"progress seen while Running: {seen}")
    return status, seen


def test_inputs_and_workspace_outputs_on_the_real_node(
    kube: Kube, namespace: str, tiers: Tiers, workspace: Workspace
) -> None:
    status, _seen = run_plate(kube, namespace, tiers.workspace)
    assert status["phase"] == "Succeeded", status
    uid = kube.simjob(namespace, "plate")["metadata"]["uid"]
    assert status["workspace"] == {"claimName": CLAIM, "path": f"{namespace}/plate-{uid}"}
    out = workspace.host_dir / namespace / f"plate-{uid}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grid"] == PARAMS["grid"]  # from the ConfigMap's params.json
    assert summary["steps"] == PARAMS["steps"]
    assert summary["wall_seconds"] >= 9
    field = np.load(out / "field.npy")
    assert field.shape == (40, 40)
    assert float(field.max()) == pytest.approx(summary["max_temperature"])
    # Written by the pod's user (uid 65532) into a directory of the fsGroup.
    assert (out / "summary.json").stat().st_uid == RUN_AS_UID
    assert out.stat().st_gid == RUN_AS_UID


def test_progress_rises_in_status_on_the_real_node(
    kube: Kube, namespace: str, tiers: Tiers, workspace: Workspace
) -> None:
    status, seen = run_plate(kube, namespace, tiers.workspace)
    assert status["phase"] == "Succeeded", status
    rises = sum(1 for a, b in itertools.pairwise(seen) if b > a)
    assert rises >= 2, f"progress seen while Running: {seen}; status: {status}"
