"""Cancel at scale (issue 11, target 5): C cancels at 5 per second among K Running SimJobs.

Uses the fleet of ``idle`` (K SimJobs Running, pods kept Running by KWOK). It patches
``spec.cancel: true`` on C of them, 0.2 s apart, and watches the SimJobs and their pods:
patch → ``status.reason`` CancelRequested (target p99 ≤ 1 s); patch → the pod's deletion
mark and → the pod gone (KWOK ends a deleted pod at a random moment within its 30 s grace
period, like a slow real program: that is the pods' share); the last pod gone → phase
Cancelled (our share; target ≤ 1 s). Built on ``common``; run by ``run``.
"""

from __future__ import annotations

import time
from typing import Any

from cluster import Bench
from common import Table, percentile
from idle import Fleet
from simjob_operator.api import names as c
from tracking import track_simjob_pods


def run(
    bench: Bench, fleet: Fleet, cancels: int, rate: float = 5.0, timeout: float = 120
) -> tuple[Table, dict[str, Any]]:
    pods = track_simjob_pods(bench.api, fleet.namespace)
    chosen = fleet.names[:cancels]
    patched: dict[str, float] = {}
    try:
        began = time.monotonic()
        for i, name in enumerate(chosen):
            time.sleep(max(0.0, began + i / rate - time.monotonic()))
            patched[name] = time.monotonic()
            bench.custom.patch_namespaced_custom_object(
                c.GROUP,
                c.VERSION,
                fleet.namespace,
                c.SIMJOB_PLURAL,
                name,
                {"spec": {"cancel": True}},
            )
        ok = fleet.tracker.wait("Cancelled", chosen, timeout, "cancels: all Cancelled")
        time.sleep(1)  # pod DELETED events of the last ones
    finally:
        pods.stop()
    seen = fleet.tracker
    requested = {n: t - patched[n] for n, t in seen.times("reason:CancelRequested", chosen).items()}
    # A SimJob that went straight to Cancelled without a CancelRequested status in between
    # counts from its Cancelled status.
    for n, t in seen.times("Cancelled", chosen).items():
        requested.setdefault(n, t - patched[n])
    cancelled = seen.times("Cancelled", chosen)
    marked = pods.times("terminating", chosen)
    gone = pods.times("deleted", chosen)
    to_mark = [marked[n] - patched[n] for n in marked]
    to_gone = [gone[n] - patched[n] for n in gone]
    ours = [cancelled[n] - gone[n] for n in cancelled if n in gone]
    total = [cancelled[n] - patched[n] for n in cancelled]
    early = sum(1 for x in ours if x < 0)

    t = Table(f"Cancel at scale: {cancels} cancels at {rate:g}/s among {len(fleet.names)} Running")
    for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
        t.add(
            f"spec.cancel -> CancelRequested {label} (s)",
            None,
            percentile(requested.values(), q),
            "p99 <= 1 s" if label == "p99" else "",
            2,
        )
    for label, q in (("p50", 0.5), ("p95", 0.95), ("max", 1.0)):
        t.add(f"spec.cancel -> pod marked deleted {label} (s)", None, percentile(to_mark, q), "", 2)
    for label, q in (("p50", 0.5), ("p95", 0.95), ("max", 1.0)):
        t.add(f"spec.cancel -> pod gone {label} (s) [grace]", None, percentile(to_gone, q), "", 2)
    for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
        t.add(
            f"pod gone -> Cancelled {label} (s) [ours]",
            None,
            percentile(ours, q),
            "<= 1 s" if label == "p99" else "",
            2,
        )
    for label, q in (("p50", 0.5), ("max", 1.0)):
        t.add(f"spec.cancel -> Cancelled {label} (s)", None, percentile(total, q), "", 2)
    share = sum(to_gone) / sum(total) * 100 if total and to_gone and sum(total) else float("nan")
    t.notes.append(
        f"of spec.cancel -> Cancelled (summed), {share:.0f} % is waiting for the pods to go "
        "(KWOK: a random moment within the 30 s grace period), the rest is ours"
    )
    if early:
        t.notes.append(f"{early} SimJobs were Cancelled before their pod was gone")
    if not ok:
        t.notes.append(f"INCOMPLETE: {len(cancelled)}/{cancels} Cancelled within {timeout:.0f} s")
    return t, {
        "cancels": cancels,
        "requested": list(requested.values()),
        "to_gone": to_gone,
        "ours": ours,
        "total": total,
    }
