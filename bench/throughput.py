"""Throughput benchmark: N SimJobs through the operator vs N bare batch/v1 Jobs.

On the local control plane (``make cluster``; KWOK completes each pod ~2 s after it
runs), this creates N bare Jobs with the pod template the operator would build and
measures the time until all are Running and until all Succeeded, and each object's
own time from its create request to Running and to Succeeded (median, p95, max);
then it starts the operator, creates N SimJobs and measures the same. It prints
both, the ratio, how many objects were never seen Running, the operator's peak
RSS, the API requests per object (from the API server's ``apiserver_request_total``;
writes broken down by resource) and the CPU seconds each process of the control
plane (pid files next to the kubeconfig) and the operator spent during each batch. Run:
``make bench`` or ``python bench/throughput.py --n 500``. Neighbours:
simjob_operator.backends.kubernetes.manifests (the pod template), docs/benchmarks.md
(recorded figures).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))

from kubernetes import client, config, watch  # noqa: E402

from simjob_operator.api import names as c  # noqa: E402
from simjob_operator.api.simjob import SimJobSpec  # noqa: E402
from simjob_operator.api.simtier import SimTierSpec  # noqa: E402
from simjob_operator.backends.kubernetes.manifests import build_job_manifest  # noqa: E402
from simjob_operator.core.validation import Effective, resolve  # noqa: E402

WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE"}
READ_VERBS = {"GET", "LIST"}  # not WATCH: a watch is one long request
TIER = "bench"
TIER_SPEC = {"cpu": "100m", "memory": "64Mi", "maxRuntimeSeconds": 3600}
COMMAND = ["/bin/simulate", "--steps", "100"]
IMAGE = "example.invalid/simulation:1"
READS = "(reads)"  # request_counts: GET/LIST requests
CONFLICTS = "(conflicts)"  # request_counts: writes refused with 409 (also counted as writes)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` = 0.5 is the median's upper neighbour)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class Run:
    """Timings of one batch: when each object was created and first seen Running /
    Succeeded (an object first seen Succeeded counts as Running then, and as skipped)."""

    n: int
    started: float = 0.0
    created: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    succeeded: dict[str, float] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def creating(self, name: str) -> None:
        with self.lock:
            self.created[name] = time.monotonic()

    def saw(self, name: str, state: str) -> None:
        now = time.monotonic()
        with self.lock:
            if state == "Succeeded" and name not in self.running:
                self.skipped.add(name)
            if state in ("Running", "Succeeded"):
                self.running.setdefault(name, now)
            if state == "Succeeded":
                self.succeeded.setdefault(name, now)

    def done(self) -> bool:
        with self.lock:
            return len(self.succeeded) >= self.n

    def all_by(self, seen: dict[str, float]) -> float:
        """Seconds from the first create until every object got there."""
        with self.lock:
            return max(seen.values()) - self.started

    def latencies(self, seen: dict[str, float]) -> list[float]:
        """Per object: seconds from its own create request until it got there."""
        with self.lock:
            return [at - self.created[name] for name, at in seen.items() if name in self.created]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def control_plane(kubeconfig: Path) -> dict[str, int]:
    """The local control plane's processes, from the pid files next to its kubeconfig
    (``run/`` in hack/cluster/up.sh's state directory): name -> pid."""
    pids: dict[str, int] = {}
    for path in sorted((kubeconfig.parent / "run").glob("*.pid")):
        try:
            pids[path.stem] = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return pids


def request_counts(api: client.ApiClient) -> Counter[str]:
    """Requests the API server has served so far: writes by resource, and reads."""
    response = api.rest_client.pool_manager.request(
        "GET", api.configuration.host + "/metrics", preload_content=True
    )
    text = response.data.decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        value = int(float(line.rsplit(" ", 1)[1]))
        if labels.get("verb") in WRITE_VERBS:
            counts[labels.get("resource", "?")] += value
            if labels.get("code") == "409":
                counts[CONFLICTS] += value
        elif labels.get("verb") in READ_VERBS:
            counts[READS] += value
    return counts


def effective() -> Effective:
    spec = SimJobSpec.model_validate({"tier": TIER, "image": IMAGE, "command": COMMAND})
    result = resolve(
        spec, namespace="bench", tier_name=TIER, tier=SimTierSpec.model_validate(TIER_SPEC)
    )
    assert isinstance(result, Effective), result
    return result


def bare_job(namespace: str, name: str) -> dict[str, Any]:
    """The Job the operator would create, without owner reference or simjob labels."""
    spec = SimJobSpec.model_validate({"tier": TIER, "image": IMAGE, "command": COMMAND})
    job = build_job_manifest(
        namespace=namespace, name=name, uid=str(uuid.uuid4()), spec=spec, effective=effective()
    )
    job["metadata"] = {"name": name, "namespace": namespace, "labels": {"bench": "bare"}}
    job["spec"]["template"]["metadata"]["labels"] = {"bench": "bare"}
    return job


def simjob(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.SIMJOB_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"tier": TIER, "image": IMAGE, "command": COMMAND},
    }


def create_all(run: Run, create: Callable[[str], object], names: Iterable[str]) -> None:
    def one(name: str) -> None:
        run.creating(name)
        create(name)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(one, n) for n in names]:
            future.result()


def follow(
    run: Run,
    stream: Callable[..., Any],
    state_of: Callable[[dict[str, Any]], tuple[str, str]],
    timeout: float,
    **kwargs: Any,
) -> None:
    """Watch until every object has Succeeded (or the timeout); record first sightings."""
    deadline = time.monotonic() + timeout
    while not run.done() and time.monotonic() < deadline:
        w = watch.Watch()
        for event in w.stream(stream, timeout_seconds=30, **kwargs):
            obj = event["object"]
            name, state = state_of(obj if isinstance(obj, dict) else obj.to_dict())
            run.saw(name, state)
            if run.done() or time.monotonic() >= deadline:
                w.stop()
                break


def pod_state(pod: dict[str, Any]) -> tuple[str, str]:
    return pod["metadata"]["labels"].get("job-name", ""), pod["status"]["phase"] or ""


def simjob_state(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"]["name"], (obj.get("status") or {}).get("phase") or ""


@dataclass
class Batch:
    """One measured batch: timings, API requests and CPU seconds per process."""

    run: Run
    requests: Counter[str]
    cpu: dict[str, float]


def measure(
    api: client.ApiClient,
    n: int,
    timeout: float,
    kind: str,
    namespace: str,
    create: Callable[[str], object],
    watcher: Callable[[Run], None],
    processes: dict[str, int],
) -> Batch:
    run = Run(n)
    before = request_counts(api)
    thread = threading.Thread(target=watcher, args=(run,), daemon=True)
    thread.start()
    time.sleep(1)  # the watch is open before the first create
    cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    run.started = time.monotonic()
    create_all(run, create, [f"{kind}-{i:04d}" for i in range(n)])
    thread.join(timeout + 5)
    if not run.done():
        raise SystemExit(f"{kind}: only {len(run.succeeded)}/{n} succeeded within {timeout:.0f}s")
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in processes.items()}
    time.sleep(2)  # let trailing status writes land before reading the counters
    return Batch(run, request_counts(api) - before, cpu)


def release_simjobs(custom: client.CustomObjectsApi, namespace: str) -> None:
    """Drop the finalizers of the batch's SimJobs (the operator is stopped), so that
    deleting the namespace does not leave them, or a later operator, to clean up;
    their Jobs are garbage-collected through the owner references."""
    listed = custom.list_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.SIMJOB_PLURAL)
    names = [item["metadata"]["name"] for item in listed.get("items") or []]
    patch = {"metadata": {"finalizers": None}}

    def release(name: str) -> None:
        custom.patch_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.SIMJOB_PLURAL, name, patch
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(release, name) for name in names]:
            future.result()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG", str(REPO / ".cluster" / "kubeconfig"))
    )
    parser.add_argument("--keep", action="store_true", help="keep the namespaces")
    parser.add_argument(
        "--operator-src",
        default=str(REPO / "operator"),
        help="the directory holding the simjob_operator package to run (e.g. an older "
        "version, to compare); default: this checkout's",
    )
    args = parser.parse_args()

    api = config.new_client_from_config(args.kubeconfig)
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    custom = client.CustomObjectsApi(api)
    kubectl = str(REPO / ".cluster" / "bin" / "kubectl")
    env = {**os.environ, "KUBECONFIG": args.kubeconfig}
    subprocess.run(
        [kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds")],
        check=True,
        env=env,
        capture_output=True,
    )
    subprocess.run(
        [kubectl, "wait", "--for=condition=Established", "crd", "--all"],
        check=True,
        env=env,
        capture_output=True,
    )
    tier = {
        "apiVersion": c.API_VERSION,
        "kind": c.SIMTIER_KIND,
        "metadata": {"name": TIER},
        "spec": {**TIER_SPEC, "maxConcurrentPerOwner": args.n},
    }
    subprocess.run(
        [kubectl, "apply", "-f", "-"],
        input=json.dumps(tier),
        text=True,
        check=True,
        env=env,
        capture_output=True,
    )

    suffix = uuid.uuid4().hex[:6]
    ns_jobs, ns_sj = f"bench-jobs-{suffix}", f"bench-sj-{suffix}"
    for ns in (ns_jobs, ns_sj):
        core.create_namespace({"metadata": {"name": ns}})
    while (
        not core.list_namespaced_service_account(ns_sj).items
        or not core.list_namespaced_service_account(ns_jobs).items
    ):
        time.sleep(0.2)

    print(
        f"# {args.n} objects; machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        flush=True,
    )
    processes = control_plane(Path(args.kubeconfig))
    base = measure(
        api,
        args.n,
        args.timeout,
        "job",
        ns_jobs,
        lambda name: batch.create_namespaced_job(ns_jobs, bare_job(ns_jobs, name)),
        lambda run: follow(
            run,
            core.list_namespaced_pod,
            pod_state,
            args.timeout,
            namespace=ns_jobs,
            label_selector="bench=bare",
        ),
        processes,
    )

    log_path = REPO / ".cluster" / "logs" / f"bench-operator-{suffix}.log"
    python_path = os.pathsep.join(filter(None, [args.operator_src, env.get("PYTHONPATH")]))
    with log_path.open("w") as log:
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kopf",
                "run",
                "-m",
                "simjob_operator.main",
                "--namespace",
                ns_sj,
                "--standalone",
            ],
            # Only the batch's namespace (admission LISTs only there too): the
            # operators of other people's tests on this cluster are left alone.
            env={**env, "PYTHONPATH": python_path, c.ENV_WATCH_NAMESPACES: ns_sj},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(3)  # kopf start-up; not part of either figure
        if operator.poll() is not None:
            raise SystemExit(f"operator exited at start-up; log: {log_path}")
        ours = measure(
            api,
            args.n,
            args.timeout,
            "sj",
            ns_sj,
            lambda name: custom.create_namespaced_custom_object(
                c.GROUP, c.VERSION, ns_sj, c.SIMJOB_PLURAL, simjob(ns_sj, name)
            ),
            lambda run: follow(
                run,
                custom.list_namespaced_custom_object,
                simjob_state,
                args.timeout,
                group=c.GROUP,
                version=c.VERSION,
                namespace=ns_sj,
                plural=c.SIMJOB_PLURAL,
            ),
            {**processes, "operator": operator.pid},
        )
        rss = peak_rss_mib(operator.pid)
    finally:
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(30)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
    if not args.keep:
        release_simjobs(custom, ns_sj)
        for ns in (ns_jobs, ns_sj):
            core.delete_namespace(ns)
    report(args.n, base, ours, rss, log_path)
    return 0


def report(n: int, base: Batch, ours: Batch, rss: float, log_path: Path) -> None:
    def row(label: str, b: float, o: float) -> None:
        ratio = f"{o / b:8.2f}" if b else f"{'-':>8}"
        print(f"{label:34}{b:12.1f}{o:12.1f}{ratio}")

    print(f"{'':34}{'bare Jobs':>12}{'SimJobs':>12}{'ratio':>8}")
    for state, b_seen, o_seen in (
        ("Running", base.run.running, ours.run.running),
        ("Succeeded", base.run.succeeded, ours.run.succeeded),
    ):
        row(f"all {state} (s)", base.run.all_by(b_seen), ours.run.all_by(o_seen))
        b_lat, o_lat = base.run.latencies(b_seen), ours.run.latencies(o_seen)
        for label, fraction in (("median", 0.5), ("p95", 0.95), ("max", 1.0)):
            row(
                f"  create -> {state}, {label} (s)",
                percentile(b_lat, fraction),
                percentile(o_lat, fraction),
            )
    writes = {
        "bare Job": {r: v for r, v in base.requests.items() if not r.startswith("(")},
        "SimJob": {r: v for r, v in ours.requests.items() if not r.startswith("(")},
    }
    row(
        "API writes per object",
        sum(writes["bare Job"].values()) / n,
        sum(writes["SimJob"].values()) / n,
    )
    row("  of which refused (409)", base.requests[CONFLICTS] / n, ours.requests[CONFLICTS] / n)
    row("API reads (GET/LIST) per object", base.requests[READS] / n, ours.requests[READS] / n)
    row("CPU seconds, all processes", sum(base.cpu.values()), sum(ours.cpu.values()))
    print(
        f"never seen Running (first seen Succeeded): bare Jobs {len(base.run.skipped)}, "
        f"SimJobs {len(ours.run.skipped)} of {n}"
    )
    print(f"operator peak RSS: {rss:.1f} MiB")
    for what, counts in writes.items():
        shown = [(r, v / n) for r, v in sorted(counts.items(), key=lambda kv: -kv[1])]
        print(
            f"writes per {what} by resource: "
            + ", ".join(f"{r}={v:.2f}" for r, v in shown if round(v, 2) > 0)
        )
    for what, batch in (("bare Jobs", base), ("SimJobs", ours)):
        print(
            f"CPU seconds during the {what} batch: "
            + ", ".join(f"{name}={sec:.1f}" for name, sec in sorted(batch.cpu.items()))
        )
    print(f"operator log: {log_path}")


if __name__ == "__main__":
    raise SystemExit(main())
