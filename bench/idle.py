"""Idle cost (issue 11, target 6) and the Running fleet the cancel scenario reuses.

``start_fleet`` brings K SimJobs to Running (slots >= K; KWOK keeps their pods Running
for an hour through the ``pod-complete.stage.kwok.x-k8s.io/delay`` pod annotation);
``measure_idle`` then lets nothing change for a window and measures the operator's CPU
(% of one core, /proc utime+stime), the requests it makes per second (its own FlowSchema
in APF's ``apiserver_flowcontrol_dispatched_requests_total``, so other users of the
shared cluster do not count) and the SimJob changes seen (should be none). Baseline: the
kube-controller-manager, which holds the same K Jobs, in the same window. Neighbours:
``cancel`` (cancels part of the fleet), ``common``; run by ``run``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cluster import Bench, Operator
from common import Table, cpu_seconds, scrape
from tracking import Tracker, track_simjobs

NATIVE_FLOWS = "kube-system-service-accounts"  # the controllers' own credentials


@dataclass
class Fleet:
    namespace: str
    names: list[str]
    operator: Operator
    tracker: Tracker
    to_running: float  # seconds from the first create until all were Running
    ok: bool


def start_fleet(bench: Bench, k: int, timeout: float = 900) -> Fleet:
    ns = bench.namespace("fleet")
    tier = bench.tier("fleet", slots=k)
    operator = Operator(bench, [ns], "fleet")
    operator.start()
    tracker = track_simjobs(bench.api, ns)
    names = [f"sj-{i:05d}" for i in range(k)]
    created = bench.create_simjobs(ns, names, tier, delay="3600s")
    ok = tracker.wait("Running", names, timeout, f"fleet of {k}: all Running")
    running = tracker.times("Running", names)
    to_running = max(running.values()) - min(created.values()) if ok else float("nan")
    return Fleet(ns, names, operator, tracker, to_running, ok)


def measure_idle(
    bench: Bench, fleet: Fleet, seconds: float, settle: float = 10
) -> tuple[Table, dict[str, Any]]:
    k = len(fleet.names)
    time.sleep(settle)  # the last Running writes and Events land
    kcm = bench.processes.get("kube-controller-manager")
    op_pid = fleet.operator.pid
    before = scrape(bench.api)
    cpu0 = {"operator": cpu_seconds(op_pid), "kcm": cpu_seconds(kcm) if kcm else 0.0}
    fleet.tracker.changes.clear()
    fleet.tracker.counting = True
    began = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - began
    fleet.tracker.counting = False
    metrics = scrape(bench.api) - before
    op_cpu = (cpu_seconds(op_pid) - cpu0["operator"]) / elapsed * 100
    kcm_cpu = (cpu_seconds(kcm) - cpu0["kcm"]) / elapsed * 100 if kcm else None
    op_requests = fleet.operator.requests(metrics)
    native = metrics.flows[NATIVE_FLOWS]
    t = Table(
        f"Idle cost: {k} Running SimJobs, nothing changing for {elapsed:.0f} s", "controller-mgr"
    )
    t.add("CPU, % of one core", kcm_cpu, op_cpu, "<= 2 %", 2)
    t.add(
        "API requests per second",
        native / elapsed,
        op_requests / elapsed if op_requests is not None else None,
        "stated",
        2,
    )
    t.add(
        "SimJob status writes per second (cluster)", None, metrics.status_patches() / elapsed, "", 2
    )
    t.add("SimJob changes seen (watch)", None, float(sum(fleet.tracker.changes.values())), "0", 0)
    t.add("time to all Running (s)", None, fleet.to_running, "")
    t.notes.append(
        "baseline: kube-controller-manager (it holds the same Jobs) and the requests of the "
        f"native controllers' FlowSchema {NATIVE_FLOWS!r} (whole cluster)"
    )
    t.notes.append(
        "cluster-wide requests in the window by verb/resource: "
        + ", ".join(
            f"{verb} {res}{'/' + sub if sub else ''}={n}"
            for (verb, res, sub, _), n in sorted(metrics.requests.items(), key=lambda kv: -kv[1])[
                :8
            ]
            if n
        )
    )
    if not fleet.ok:
        t.notes.append("INCOMPLETE: not all SimJobs reached Running")
    return t, {
        "k": k,
        "seconds": elapsed,
        "operator_cpu_percent": op_cpu,
        "kcm_cpu_percent": kcm_cpu,
        "operator_requests": op_requests,
        "to_running": fleet.to_running,
    }
