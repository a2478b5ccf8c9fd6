"""Latency at rest (issue 11, target 4): one object at a time, SimJob vs bare Job.

S samples of each, interleaved (bare Job, SimJob, bare Job, …) so both see the same
background load; each is created only after the previous one Succeeded. Figures:
create → Running and create → Succeeded p50 / p95 / max, and the difference in seconds
(target: within 0.5 s). Built on ``common``; run by ``run``; figures in
docs/benchmarks.md.
"""

from __future__ import annotations

from typing import Any

from cluster import Bench, Operator
from common import Table, percentile
from tracking import track_bare_pods, track_simjobs


def run(bench: Bench, samples: int, timeout: float = 60) -> tuple[Table, dict[str, Any]]:
    ns_jobs, ns_sj = bench.namespace("lat-jobs"), bench.namespace("lat-sj")
    tier = bench.tier("lat", slots=samples + 1)
    operator = Operator(bench, [ns_sj], "latency")
    operator.start()
    pods, sjs = track_bare_pods(bench.api, ns_jobs), track_simjobs(bench.api, ns_sj)
    lat: dict[str, list[float]] = {k: [] for k in ("job_r", "job_s", "sj_r", "sj_s")}
    failures = 0
    try:
        for i in range(samples):
            for kind, tracker in (("job", pods), ("sj", sjs)):
                name = f"{kind}-{i:03d}"
                if kind == "job":
                    created = bench.create_jobs(ns_jobs, [name], tier)[name]
                else:
                    created = bench.create_simjobs(ns_sj, [name], tier)[name]
                if not tracker.wait("Succeeded", [name], timeout, f"latency {name}"):
                    failures += 1
                    continue
                running, done = tracker.at(name, "Running"), tracker.at(name, "Succeeded")
                assert running is not None
                assert done is not None
                lat[f"{kind}_r"].append(running - created)
                lat[f"{kind}_s"].append(done - created)
    finally:
        pods.stop()
        sjs.stop()
        operator.stop()
    t = Table(f"Latency at rest: {samples} samples, one at a time", "bare Job")
    for state, b, o in (
        ("Running", lat["job_r"], lat["sj_r"]),
        ("Succeeded", lat["job_s"], lat["sj_s"]),
    ):
        for label, q in (("p50", 0.5), ("p95", 0.95), ("max", 1.0)):
            base, ours = percentile(b, q), percentile(o, q)
            target = f"<= +0.5 s (now {ours - base:+.2f} s)" if label != "max" else ""
            t.add(f"create -> {state} {label} (s)", base, ours, target, 2)
    if failures:
        t.notes.append(f"INCOMPLETE: {failures} samples did not finish within {timeout:.0f} s")
    return t, {"samples": samples, **lat}
