"""Throughput (issue 11, target 3): N SimJobs through the operator vs N bare Jobs.

In one run: N bare batch/v1 Jobs with the pod template the operator builds, created at
once (8 client threads), then N SimJobs of a tier whose slots never hold anyone back
(``maxConcurrentPerOwner`` = N). Both batches are measured the same way: until all are
Running and all Succeeded, each object's own create → Running / Succeeded, API requests
from the API server's counters (writes per object, Events counted), CPU seconds per
process; the operator's CPU-seconds per SimJob and peak RSS. Plot: the create → Running
CDF of both. Built on ``common``; run by ``run`` (or alone: ``python bench/throughput.py
--n 200``); figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any

from cluster import Bench, Operator
from common import REPO, Metrics, Table, memory_mib, percentile, scrape
from tracking import Tracker, track_bare_pods, track_simjobs


@dataclass
class Batch:
    """One measured batch: create times, the tracker, metrics and CPU differences."""

    created: dict[str, float]
    tracker: Tracker
    metrics: Metrics
    cpu: dict[str, float]
    ok: bool

    def latencies(self, tag: str) -> list[float]:
        seen = self.tracker.times(tag, self.created)
        return [seen[n] - self.created[n] for n in seen]

    def all_by(self, tag: str) -> float:
        seen = self.tracker.times(tag, self.created)
        if len(seen) < len(self.created):
            return float("nan")
        return max(seen.values()) - min(self.created.values())


def measure(
    bench: Bench,
    tracker: Tracker,
    create: Any,
    names: list[str],
    timeout: float,
    extra: dict[str, int] | None = None,
) -> Batch:
    before, cpu_before = scrape(bench.api), bench.cpu(extra)
    created = create(names)
    ok = tracker.wait("Succeeded", names, timeout, "all Succeeded")
    cpu = {k: v - cpu_before[k] for k, v in bench.cpu(extra).items()}
    time.sleep(2)  # trailing status writes and Events land before the counters are read
    tracker.stop()
    return Batch(created, tracker, scrape(bench.api) - before, cpu, ok)


def run(bench: Bench, n: int, timeout: float = 900) -> tuple[Table, dict[str, Any]]:
    ns_jobs, ns_sj = bench.namespace("tp-jobs"), bench.namespace("tp-sj")
    tier = bench.tier("tp", slots=n)
    jobs = [f"job-{i:05d}" for i in range(n)]
    base = measure(
        bench,
        track_bare_pods(bench.api, ns_jobs),
        lambda names: bench.create_jobs(ns_jobs, names, tier),
        jobs,
        timeout,
    )
    operator = Operator(bench, [ns_sj], "throughput")
    operator.start()
    try:
        sjs = [f"sj-{i:05d}" for i in range(n)]
        ours = measure(
            bench,
            track_simjobs(bench.api, ns_sj),
            lambda names: bench.create_simjobs(ns_sj, names, tier),
            sjs,
            timeout,
            {"operator": operator.pid},
        )
        rss = memory_mib(operator.pid)
        op_requests = operator.requests(ours.metrics)
    finally:
        operator.stop()
    return report(n, base, ours, rss, op_requests), {
        "n": n,
        "bare_running": base.latencies("Running"),
        "simjob_running": ours.latencies("Running"),
        "bare_succeeded": base.latencies("Succeeded"),
        "simjob_succeeded": ours.latencies("Succeeded"),
    }


def report(
    n: int, base: Batch, ours: Batch, rss: tuple[float, float], op_requests: int | None
) -> Table:
    t = Table(f"Throughput: {n} SimJobs vs {n} bare Jobs (slots >= N)", "bare Jobs")
    for tag in ("Running", "Succeeded"):
        target = "<= 1.25x" if tag == "Succeeded" else ""
        t.add(f"all {tag} (s)", base.all_by(tag), ours.all_by(tag), target)
        b, o = base.latencies(tag), ours.latencies(tag)
        for label, q in (("p50", 0.5), ("p95", 0.95), ("max", 1.0)):
            t.add(f"  create -> {tag} {label} (s)", percentile(b, q), percentile(o, q))
    bw, ow = base.metrics.writes() / n, ours.metrics.writes() / n
    t.add("API writes per object (Events counted)", bw, ow, f"<= {bw + 4:.1f} (bare + 4)", 2)
    t.add(
        "  of which Events",
        base.metrics.writes("events") / n,
        ours.metrics.writes("events") / n,
        "",
        2,
    )
    t.add("  of which SimJob status", 0.0, ours.metrics.status_patches() / n, "", 2)
    t.add(
        "  refused with 409",
        base.metrics.count(code="409") / n,
        ours.metrics.count(code="409") / n,
        "",
        2,
    )
    t.add(
        "API reads (GET/LIST) per object", base.metrics.reads() / n, ours.metrics.reads() / n, "", 2
    )
    if op_requests is not None:
        t.add("operator's own requests per SimJob", None, op_requests / n, "", 2)
    t.add("CPU seconds, all processes", sum(base.cpu.values()), sum(ours.cpu.values()))
    t.add("operator CPU-seconds per SimJob", None, ours.cpu.get("operator", 0.0) / n, "printed", 3)
    t.add("operator RSS / peak (MiB)", None, rss[0], f"peak {rss[1]:.0f}")
    t.notes.append(
        "CPU s during the bare batch: "
        + ", ".join(f"{k}={v:.1f}" for k, v in sorted(base.cpu.items()))
    )
    t.notes.append(
        "CPU s during the SimJob batch: "
        + ", ".join(f"{k}={v:.1f}" for k, v in sorted(ours.cpu.items()))
    )
    for what, batch in (("bare Job", base), ("SimJob", ours)):
        shown = sorted(batch.metrics.writes_by_resource().items(), key=lambda kv: -kv[1])
        t.notes.append(
            f"writes per {what}: "
            + ", ".join(f"{r}={v / n:.2f}" for r, v in shown if v / n >= 0.01)
        )
    if not (base.ok and ours.ok):
        t.notes.append(f"INCOMPLETE: bare ok={base.ok}, SimJob ok={ours.ok}")
    return t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG", str(REPO / ".cluster" / "kubeconfig"))
    )
    parser.add_argument("--operator-src", default=str(REPO / "operator"))
    args = parser.parse_args()
    bench = Bench(args.kubeconfig, args.operator_src)
    bench.setup()
    try:
        table, _ = run(bench, args.n, args.timeout)
    finally:
        bench.cleanup()
    print(table.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
