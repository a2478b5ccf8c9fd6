"""Backlog (issue 11, targets 1-2): one owner, a tier with 5 slots, N one-second SimJobs
created at once.

For each N: one bare Job of the same pod template (KWOK keeps it Running 1 s) measures
the start latency in the same run; then the operator drains N SimJobs through 5 slots.
Figures: SimJob status writes per SimJob (PATCH on simjobs/status from the API server's
``apiserver_request_total``), LISTs of SimJobs, all writes per SimJob, the operator's own
requests, and the drain time against the ideal N / slots x run time + the bare Job's
start latency. Plots: writes per SimJob vs N; SimJobs finished over time vs the ideal.
Built on ``common``; run by ``run``; figures in docs/benchmarks.md.
"""

from __future__ import annotations

import time
from typing import Any

from cluster import Bench, Operator
from common import Table, scrape
from tracking import track_bare_pods, track_simjobs

SLOTS = 5
RUN_SECONDS = 1.0
DELAY = "1s"


def start_latency(bench: Bench, namespace: str, tier: str) -> tuple[float, float]:
    """One bare Job with the backlog's pod: (create -> Running, create -> Succeeded)."""
    tracker = track_bare_pods(bench.api, namespace)
    try:
        created = bench.create_jobs(namespace, ["probe"], tier, delay=DELAY)["probe"]
        tracker.wait("Succeeded", ["probe"], 60, "bare Job Succeeded")
        running, done = tracker.at("probe", "Running"), tracker.at("probe", "Succeeded")
    finally:
        tracker.stop()
    nan = float("nan")
    return (running - created if running else nan, done - created if done else nan)


def one(bench: Bench, n: int, timeout: float) -> dict[str, Any]:
    ns = bench.namespace(f"backlog-{n}")
    tier = bench.tier(f"backlog-{n}", slots=SLOTS)
    to_running, to_done = start_latency(bench, ns, tier)
    operator = Operator(bench, [ns], f"backlog-{n}")
    operator.start()
    tracker = track_simjobs(bench.api, ns)
    names = [f"sj-{i:05d}" for i in range(n)]
    try:
        before = scrape(bench.api)
        cpu_before = bench.cpu({"operator": operator.pid})
        created = bench.create_simjobs(ns, names, tier, delay=DELAY)
        ok = tracker.wait("Succeeded", names, timeout, f"backlog {n}: all Succeeded")
        cpu = {k: v - cpu_before[k] for k, v in bench.cpu({"operator": operator.pid}).items()}
        time.sleep(2)
        metrics = scrape(bench.api) - before
        op_requests = operator.requests(metrics)
    finally:
        tracker.stop()
        operator.stop()
    start = min(created.values())
    finished = sorted(t - start for t in tracker.times("Succeeded", names).values())
    drain = finished[-1] if ok and finished else float("nan")
    return {
        "n": n,
        "ok": ok,
        "drain": drain,
        "ideal": n / SLOTS * RUN_SECONDS + to_running,
        "bare_to_running": to_running,
        "bare_to_succeeded": to_done,
        "status_writes": metrics.status_patches(),
        "simjob_lists": metrics.count({"LIST"}, "simjobs"),
        "writes": metrics.writes(),
        "events": metrics.writes("events"),
        "conflicts": metrics.count(code="409"),
        "operator_requests": op_requests,
        "operator_cpu": cpu.get("operator", 0.0),
        "apiserver_cpu": cpu.get("kube-apiserver", 0.0),
        "finished_at": finished,
    }


def run(
    bench: Bench, sizes: list[int], timeout: float = 1800
) -> tuple[list[Table], dict[str, Any]]:
    results = [one(bench, n, timeout) for n in sizes]
    tables = []
    for r in results:
        n = r["n"]
        t = Table(f"Backlog: one owner, {SLOTS} slots, {n} one-second SimJobs", "ideal / bare")
        t.add("drain time (s) vs ideal", r["ideal"], r["drain"], "<= 1.10x")
        t.add("SimJob status writes per SimJob", None, r["status_writes"] / n, "<= 3, flat in N", 2)
        t.add("LISTs of SimJobs (total)", None, r["simjob_lists"], "flat in N", 0)
        t.add("API writes per SimJob (all resources)", None, r["writes"] / n, "", 2)
        t.add("  of which Events", None, r["events"] / n, "", 2)
        t.add("  refused with 409", None, r["conflicts"] / n, "", 2)
        if r["operator_requests"] is not None:
            t.add("operator's own requests per SimJob", None, r["operator_requests"] / n, "", 2)
        t.add("operator CPU-seconds per SimJob", None, r["operator_cpu"] / n, "", 3)
        t.add("bare Job create -> Running (s)", r["bare_to_running"], None, "in the ideal", 2)
        t.notes.append(
            f"ideal = {n} / {SLOTS} x {RUN_SECONDS:.0f} s + {r['bare_to_running']:.2f} s; "
            f"kube-apiserver CPU {r['apiserver_cpu']:.1f} s, operator {r['operator_cpu']:.1f} s"
        )
        if not r["ok"]:
            t.notes.append(f"INCOMPLETE: {len(r['finished_at'])}/{n} Succeeded before the timeout")
        tables.append(t)
    return tables, {"slots": SLOTS, "run_seconds": RUN_SECONDS, "results": results}
