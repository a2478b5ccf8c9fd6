"""What live progress costs (issue 12, item 4): N Running SimJobs whose logs print progress.

KWOK serves every pod's log from one file (``kwok-pod.log`` next to the kubeconfig, a
``ClusterLogs`` in the KWOK config written by hack/cluster/up.sh), but the API server
reaches KWOK's kubelet-like server only on a node whose address and kubeletEndpoint
point at it: this scenario creates such a node (``bench-<run>-logs``, tainted, KWOK
managed) and two SimTiers that select it. A thread appends CRI-format lines to the
file every second: a simulation's own output and a ``SIMJOB_PROGRESS`` line whose
percent rises, so every read of every log finds a new progress.

Baseline, in the same run: the same N SimJobs with progress off (their tier's
``progressIntervalSeconds`` is 3600, so no log is read within the window), served by an
operator of their own; it is stopped before the second batch starts. Then N SimJobs on
a tier with the default interval (10 s), with their own operator; each window begins
once every SimJob had its first read (one interval, plus N / 10 s for the reads' rate
limit, plus a settle) after the last SimJob was Running, so it shows the steady state
(the first read of each SimJob also LISTs its pods once). Printed per second: the
operator's requests (its FlowSchema in APF, which does not see pod-log reads: the API
server treats ``pods/log`` as long-running, so they are added from
``apiserver_request_total``; only the operator reads logs on a private cluster),
pod-log reads, LISTs of pods, GETs of Jobs, SimJob status writes; writes per SimJob
per interval (mean) and the shortest gap between two progress versions of one SimJob
seen by a watch (check: >= the interval, i.e. at most one write per SimJob per
interval). Neighbours: ``idle`` (the same fleet without logs), ``common``, ``cluster``;
run by ``run``.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cluster import Bench, Operator
from common import Metrics, Table, cpu_seconds, scrape, tier_manifest
from tracking import Tracker, simjob_path, simjob_tags

INTERVAL = 10  # the tier's progressIntervalSeconds (the default)
OFF = 3600  # progress off: the first read would come an hour after Running
READS_PER_SECOND = 10  # the progress reader's rate limit (ProgressReader's default)
LOG_VERBS = {"GET", "CONNECT"}


def _kwok_port(bench: Bench) -> int | None:
    pid = bench.processes.get("kwok")
    if pid is None:
        return None
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    for arg in args:
        if arg.startswith("--server-address="):
            return int(arg.rsplit(":", 1)[1])
    return None


def _logs_node(bench: Bench, port: int) -> tuple[str, str]:
    """A KWOK node whose kubelet address is KWOK's own server; returns (name, label)."""
    name = f"bench-{bench.run}-logs"
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "bench-logs": bench.run},
        },
        "spec": {"taints": [{"key": "bench-logs", "value": bench.run, "effect": "NoSchedule"}]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": "127.0.0.1"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "allocatable": {"cpu": "1k", "memory": "4Ti", "pods": "2000"},
            "capacity": {"cpu": "1k", "memory": "4Ti", "pods": "2000"},
        },
    }
    bench.kubectl("apply", "-f", "-", stdin=json.dumps(node))
    bench.cluster_objects.append(("node", name))
    bench.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")
    return name, bench.run


def _tier(bench: Bench, label: str, slots: int, interval: int) -> str:
    name = f"bench-{bench.run}-{label}"
    tier = tier_manifest(name, slots)
    tier["spec"].update(
        progressIntervalSeconds=interval,
        nodeSelector={"bench-logs": bench.run},
        tolerations=[{"key": "bench-logs", "operator": "Exists"}],
    )
    bench.kubectl("apply", "-f", "-", stdin=json.dumps(tier))
    bench.tiers.append(name)
    return name


class LogWriter:
    """Appends a simulation's output and a rising SIMJOB_PROGRESS line every second to
    the file KWOK serves as every pod's log (CRI format: time, stream, tag, text)."""

    def __init__(self, path: Path) -> None:
        self.path, self.step = path, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.step += 1
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            report = {"percent": (self.step % 1000) / 10, "message": f"step {self.step}"}
            with self.path.open("a") as out:
                out.write(f"{stamp} stdout F t={self.step} energy=-{self.step * 0.37:.2f}\n")
                out.write(f"{stamp} stdout F SIMJOB_PROGRESS {json.dumps(report)}\n")


def progress_tags(obj: dict[str, Any]) -> list[str]:
    progress = (obj.get("status") or {}).get("progress") or {}
    tags = simjob_tags(obj)
    if progress.get("updateTime"):
        tags.append(f"progress:{progress.get('percent')}:{progress['updateTime']}")
    return tags


def _phase(
    bench: Bench, label: str, n: int, interval: int, seconds: float, settle: float
) -> dict[str, Any]:
    """N SimJobs on a tier with ``interval``, under an operator of their own, to Running;
    then (when it reads logs) one interval and N / 10 s plus ``settle``, so that every
    SimJob had its first read; then a measured window of ``seconds``."""
    ns = bench.namespace(label)
    tier = _tier(bench, label, n, interval)
    operator = Operator(bench, [ns], label)
    operator.start()
    tracker = Tracker(bench.api, simjob_path(ns), lambda o: o["metadata"]["name"], progress_tags)
    try:
        names = [f"sj-{i:05d}" for i in range(n)]
        created = bench.create_simjobs(ns, names, tier, delay="3600s")
        ok = tracker.wait("Running", names, 900, f"{label}: {n} SimJobs Running")
        running = tracker.times("Running", names)
        to_running = max(running.values()) - min(created.values()) if ok else float("nan")
        time.sleep((interval + n / READS_PER_SECOND if interval < OFF else 0) + settle)
        before: Metrics = scrape(bench.api)
        cpu0 = cpu_seconds(operator.pid)
        load0 = os.getloadavg()[0]
        began = time.monotonic()
        time.sleep(seconds)
        ended = time.monotonic()
        elapsed = ended - began
        metrics = scrape(bench.api) - before
        cpu = (cpu_seconds(operator.pid) - cpu0) / elapsed * 100
        load1 = os.getloadavg()[0]
        # Progress versions of each SimJob first seen in the window (or just before it,
        # so that a gap across its start counts too).
        gaps: list[float] = []
        changed = most = 0
        marks = tracker.marks()
        for name in names:
            seen = sorted(
                t for tag, t in marks.get(name, {}).items() if tag.startswith("progress:")
            )
            written = sum(1 for t in seen if began <= t < ended)
            changed += 1 if written else 0
            most = max(most, written)
            inside = [t for t in seen if began - interval <= t < ended]
            gaps += [b - a for a, b in itertools.pairwise(inside)]
    finally:
        tracker.stop()
        operator.stop()
    return {
        "namespace": ns,
        "n": n,
        "interval": interval,
        "ok": ok,
        "seconds": elapsed,
        "to_running": to_running,
        "operator_requests": operator.requests(metrics),
        "log_gets": metrics.count(LOG_VERBS, "pods", "log"),
        "pod_lists": metrics.count({"LIST"}, "pods"),
        "job_gets": metrics.count({"GET"}, "jobs"),
        "status_patches": metrics.status_patches(),
        "simjob_writes": metrics.count({"PATCH", "PUT", "UPDATE", "APPLY"}, "simjobs"),
        "cpu_percent": cpu,
        "load": (load0, load1),
        "simjobs_with_new_progress": changed,
        "most_writes": most,
        "min_gap": min(gaps) if gaps else None,
        "gaps": len(gaps),
        "by_kind": {
            f"{verb} {res}{'/' + sub if sub else ''}": count
            for (verb, res, sub, _), count in metrics.requests.items()
            if count
        },
    }


def run(bench: Bench, n: int, seconds: float, settle: float = 10) -> tuple[Table, dict[str, Any]]:
    title = f"Progress cost: {n} Running SimJobs printing progress, interval {INTERVAL} s"
    t = Table(title, "progress off")
    port = _kwok_port(bench)
    log_file = bench.kubeconfig.parent / "kwok-pod.log"
    if port is None or not log_file.exists():
        t.notes.append(
            "INCOMPLETE: KWOK does not serve pod logs on this cluster (no kwok-pod.log next "
            "to the kubeconfig: started before hack/cluster/up.sh wrote its ClusterLogs; "
            "restart it with make cluster-down cluster)"
        )
        return t, {}
    _logs_node(bench, port)
    writer = LogWriter(log_file)
    writer.start()
    try:
        off = _phase(bench, "progress-off", n, OFF, seconds, settle)
        on = _phase(bench, "progress-on", n, INTERVAL, seconds, settle)
    finally:
        writer.stop()

    def rate(phase: dict[str, Any], key: str) -> float | None:
        value = phase[key]
        return None if value is None else value / phase["seconds"]

    for phase in (off, on):
        mine = phase["operator_requests"]
        phase["operator_total"] = None if mine is None else mine + phase["log_gets"]
    t.add(
        "operator API requests per second",
        rate(off, "operator_total"),
        rate(on, "operator_total"),
        "stated",
        2,
    )
    t.add(
        "  of which APF saw (its FlowSchema)",
        rate(off, "operator_requests"),
        rate(on, "operator_requests"),
        "",
        2,
    )
    t.add(
        "pod-log GETs per second (cluster)",
        rate(off, "log_gets"),
        rate(on, "log_gets"),
        "<= 10 (the reads' rate limit)",
        2,
    )
    t.add(
        "LISTs of pods per second (cluster)", rate(off, "pod_lists"), rate(on, "pod_lists"), "", 2
    )
    t.add("GETs of Jobs per second (cluster)", rate(off, "job_gets"), rate(on, "job_gets"), "", 2)
    t.add(
        "SimJob status writes per second (cluster)",
        rate(off, "status_patches"),
        rate(on, "status_patches"),
        "",
        2,
    )
    per = on["status_patches"] / n / (on["seconds"] / INTERVAL)
    t.add("status writes per SimJob per interval (mean)", None, per, "<= 1 (+ window edges)", 3)
    bound = int(on["seconds"] // INTERVAL) + 1
    t.add(
        "most progress writes of one SimJob in the window",
        None,
        float(on["most_writes"]),
        f"<= {bound} (one per interval)",
        0,
    )
    t.add(
        "shortest gap between two progress writes of one SimJob (s)",
        None,
        on["min_gap"],
        f">= {INTERVAL} (at most one per interval)",
        1,
    )
    t.add(
        "SimJobs whose progress changed in the window",
        None,
        float(on["simjobs_with_new_progress"]),
        f"{n}",
        0,
    )
    t.add("operator CPU, % of one core", off["cpu_percent"], on["cpu_percent"], "", 1)
    t.add("time to all Running (s)", off["to_running"], on["to_running"], "", 1)
    cost = None
    if on["operator_total"] is not None and off["operator_total"] is not None:
        cost = rate(on, "operator_total") - rate(off, "operator_total")  # type: ignore[operator]
        t.notes.append(
            f"what progress costs: {cost:.2f} requests/s for {n} Running SimJobs "
            f"({cost / n * INTERVAL:.3f} per SimJob per interval)"
        )
    t.notes.append(
        f"baseline: the same {n} Running SimJobs on the same node with progressIntervalSeconds "
        f"{OFF} (no log read in the window), under an operator of their own, measured "
        "before the progress batch; each batch's operator serves only its namespace"
    )
    t.notes.append(
        f"windows {off['seconds']:.0f} s / {on['seconds']:.0f} s, the second from "
        f"{INTERVAL} + {n / READS_PER_SECOND:.0f} + {settle:.0f} s after all Running; "
        f"load average {off['load'][0]:.1f}-"
        f"{off['load'][1]:.1f} / {on['load'][0]:.1f}-{on['load'][1]:.1f} (2 cores); "
        f"{on['gaps']} gaps between progress versions measured"
    )
    top = sorted(on["by_kind"].items(), key=lambda kv: -kv[1])[:8]
    t.notes.append("progress window, cluster-wide: " + ", ".join(f"{k}={v}" for k, v in top))
    bad = [p["namespace"] for p in (off, on) if not p["ok"]]
    if bad:
        t.notes.append(f"INCOMPLETE: not all SimJobs reached Running in {', '.join(bad)}")
    if on["min_gap"] is not None and on["min_gap"] < INTERVAL - 1.0:
        t.notes.append(f"CHECK FAILED: a SimJob's progress was written {on['min_gap']:.1f} s apart")
    if on["most_writes"] > bound:
        t.notes.append(
            f"CHECK FAILED: a SimJob's progress was written {on['most_writes']} times in "
            f"{on['seconds']:.0f} s (interval {INTERVAL} s)"
        )
    return t, {"off": off, "on": on, "cost_requests_per_second": cost, "writes_per_interval": per}
