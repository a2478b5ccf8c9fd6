"""Throughput benchmark: N SimJobs through the operator vs N bare batch/v1 Jobs.

On the local control plane (``make cluster``; KWOK completes each pod ~2 s after it
runs), this creates N bare Jobs with the pod template the operator would build and
measures the time until all are Running and until all Succeeded; then it starts the
operator, creates N SimJobs and measures the same. It prints both, the ratio, the
operator's peak RSS and the API write requests per object (from the API server's
``apiserver_request_total``), broken down by resource. Run: ``make bench`` or
``python bench/throughput.py --n 500``. Neighbours: simjob_operator.manifests (the
pod template), docs/benchmarks.md (recorded figures).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
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

from simjob_operator import constants as c  # noqa: E402
from simjob_operator.manifests import build_job_manifest  # noqa: E402
from simjob_operator.models import SimJobSpec, SimTierSpec  # noqa: E402
from simjob_operator.validation import Effective, resolve  # noqa: E402

WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE"}
TIER = "bench"
TIER_SPEC = {"cpu": "100m", "memory": "64Mi", "maxRuntimeSeconds": 3600}
COMMAND = ["/bin/simulate", "--steps", "100"]
IMAGE = "example.invalid/simulation:1"


@dataclass
class Run:
    """Timings of one batch: first time each object was seen Running / Succeeded."""

    n: int
    started: float = 0.0
    running: dict[str, float] = field(default_factory=dict)
    succeeded: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, name: str, state: str) -> None:
        now = time.monotonic()
        with self.lock:
            if state in ("Running", "Succeeded"):
                self.running.setdefault(name, now)
            if state == "Succeeded":
                self.succeeded.setdefault(name, now)

    def done(self) -> bool:
        with self.lock:
            return len(self.succeeded) >= self.n

    def figures(self) -> tuple[float, float]:
        with self.lock:
            return (
                max(self.running.values()) - self.started,
                max(self.succeeded.values()) - self.started,
            )


def write_counts(api: client.ApiClient) -> Counter[str]:
    """Write requests the API server has served so far, by resource."""
    response = api.rest_client.pool_manager.request(
        "GET", api.configuration.host + "/metrics", preload_content=True
    )
    text = response.data.decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels.get("verb") in WRITE_VERBS:
            counts[labels.get("resource", "?")] += int(float(line.rsplit(" ", 1)[1]))
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


def create_all(create: Callable[[str], object], names: Iterable[str]) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(create, n) for n in names]:
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


def measure(
    api: client.ApiClient,
    n: int,
    timeout: float,
    kind: str,
    namespace: str,
    create: Callable[[str], object],
    watcher: Callable[[Run], None],
) -> tuple[Run, Counter[str]]:
    run = Run(n)
    before = write_counts(api)
    thread = threading.Thread(target=watcher, args=(run,), daemon=True)
    thread.start()
    time.sleep(1)  # the watch is open before the first create
    run.started = time.monotonic()
    create_all(create, [f"{kind}-{i:04d}" for i in range(n)])
    thread.join(timeout + 5)
    if not run.done():
        raise SystemExit(f"{kind}: only {len(run.succeeded)}/{n} succeeded within {timeout:.0f}s")
    time.sleep(2)  # let trailing status writes land before reading the counters
    return run, write_counts(api) - before


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
    base, base_writes = measure(
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
    )

    log_path = REPO / ".cluster" / "logs" / f"bench-operator-{suffix}.log"
    with log_path.open("w") as log:
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kopf",
                "run",
                "-m",
                "simjob_operator.main",
                "--all-namespaces",
                "--standalone",
            ],
            env={**env, "PYTHONPATH": str(REPO / "operator")},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(3)  # kopf start-up; not part of either figure
        if operator.poll() is not None:
            raise SystemExit(f"operator exited at start-up; log: {log_path}")
        ours, our_writes = measure(
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
        for ns in (ns_jobs, ns_sj):
            core.delete_namespace(ns)

    b_run, b_done = base.figures()
    o_run, o_done = ours.figures()
    print(f"{'':28}{'bare Jobs':>12}{'SimJobs':>12}{'ratio':>8}")
    print(f"{'all Running (s)':28}{b_run:12.1f}{o_run:12.1f}{o_run / b_run:8.2f}")
    print(f"{'all Succeeded (s)':28}{b_done:12.1f}{o_done:12.1f}{o_done / b_done:8.2f}")
    b_total, o_total = sum(base_writes.values()) / args.n, sum(our_writes.values()) / args.n
    print(f"{'API writes per object':28}{b_total:12.1f}{o_total:12.1f}{o_total / b_total:8.2f}")
    print(f"operator peak RSS: {rss:.1f} MiB")
    print(
        "writes per SimJob by resource: "
        + ", ".join(f"{r}={v / args.n:.2f}" for r, v in our_writes.most_common())
    )
    print(
        "writes per bare Job by resource: "
        + ", ".join(f"{r}={v / args.n:.2f}" for r, v in base_writes.most_common())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
