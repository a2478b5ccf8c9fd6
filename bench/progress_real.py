"""What live progress costs on the real node (issue 12, item 4): K real simulations.

K SimJobs of the example simulation (``docker.io/simjob/simulation:local``,
examples/simulation/heat.py, a progress line every second for ``--seconds``) on the real
kubelet node of the default cluster (pool ``simjob.io/pool=real``), on a tier reading
progress every ``--interval`` seconds, in a namespace of this run. Once all are Running
and one interval has passed, a window of ``--window`` seconds counts: pod-log reads
answered 200 (``CONNECT pods/log``; KWOK pods' logs on that cluster cannot be read, so
these are the real node's), the writes to this namespace's SimJobs (a watch's MODIFIED
events), the shortest gap between two progress versions of one SimJob and, when the
operator is ours, its requests (its FlowSchema, plus those log reads: APF does not count
the long-running ``pods/log``). An operator of this run serves the
namespace (``--namespace``) unless an operator for all namespaces (``-A``) already serves
the cluster: two operators must not serve one SimJob, so then that one does and its
requests cannot be told apart from its other work (said in the output).

    .venv/bin/python bench/progress_real.py --kubeconfig .cluster/kubeconfig --k 6

Neighbours: ``progress`` (the same on KWOK with 500 SimJobs and a baseline), ``cluster``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

from cluster import Bench, Operator
from common import REPO, Table, cpu_seconds, scrape
from progress import progress_tags
from simjob_operator.api import names as c
from tracking import Tracker, simjob_path

IMAGE = "docker.io/simjob/simulation:local"
POOL = {"simjob.io/pool": "real"}
TOLERATION = {"key": "simjob.io/pool", "operator": "Equal", "value": "real", "effect": "NoSchedule"}


def all_namespace_operators(kubeconfig: Path) -> list[int]:
    """PIDs of operators serving every namespace of the cluster of ``kubeconfig``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            env = (proc / "environ").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "simjob_operator.main" not in args or not {"-A", "--all-namespaces"} & set(args):
            continue
        config = next((e.split("=", 1)[1] for e in env if e.startswith("KUBECONFIG=")), "")
        if config and Path(config).resolve() == kubeconfig.resolve():
            found.append(int(proc.name))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", default=str(REPO / ".cluster" / "kubeconfig"))
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument("--seconds", type=float, default=180, help="each simulation's run")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    bench = Bench(args.kubeconfig, str(REPO / "operator"))
    others = all_namespace_operators(bench.kubeconfig)
    operator: Operator | None = None
    t = Table(
        f"Progress cost on the real node: {args.k} simulations, interval {args.interval} s", "-"
    )
    try:
        ns = bench.namespace("real")
        if not others:
            bench._operator_identity()  # the run's own identity, without applying CRDs
            operator = Operator(bench, [ns], "real")
            operator.start()
        tier = f"bench-{bench.run}-real"
        spec = {
            "cpu": "100m",
            "memory": "128Mi",
            "maxRuntimeSeconds": 900,
            "maxConcurrentPerOwner": args.k,
            "progressIntervalSeconds": args.interval,
            "nodeSelector": POOL,
            "tolerations": [TOLERATION],
        }
        manifest = {"apiVersion": c.API_VERSION, "kind": c.SIMTIER_KIND}
        manifest |= {"metadata": {"name": tier}, "spec": spec}
        bench.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        bench.tiers.append(tier)
        tracker = Tracker(
            bench.api, simjob_path(ns), lambda o: o["metadata"]["name"], progress_tags
        )
        names = [f"heat-{i}" for i in range(args.k)]
        command = ["python3", "/opt/simulation/heat.py", "--grid", "24", "--steps", "4000"]
        command += ["--seconds", str(args.seconds), "--progress-every", "20"]
        for name in names:
            body = {"apiVersion": c.API_VERSION, "kind": c.SIMJOB_KIND}
            body |= {"metadata": {"name": name, "namespace": ns}}
            body |= {"spec": {"tier": tier, "image": IMAGE, "command": command}}
            bench.custom.create_namespaced_custom_object(
                c.GROUP, c.VERSION, ns, c.SIMJOB_PLURAL, body
            )
        ok = tracker.wait("Running", names, 240, "real node: all Running")
        time.sleep(args.interval + 5)
        load0 = os.getloadavg()[0]
        before = scrape(bench.api)
        cpu0 = cpu_seconds(operator.pid) if operator else 0.0
        tracker.changes.clear()
        tracker.counting = True
        began = time.monotonic()
        time.sleep(args.window)
        ended = time.monotonic()
        tracker.counting = False
        metrics = scrape(bench.api) - before
        elapsed = ended - began
        marks = tracker.marks()
        running = tracker.count_now("Running", names)
        gaps: list[float] = []
        for name in names:
            seen = sorted(
                t for tag, t in marks.get(name, {}).items() if tag.startswith("progress:")
            )
            inside = [t for t in seen if began - args.interval <= t < ended]
            gaps += [b - a for a, b in itertools.pairwise(inside)]
        writes = sum(tracker.changes[n] for n in names)
        logs = metrics.count({"CONNECT", "GET"}, "pods", "log", "200")
        t.add("pod-log reads answered 200 per second (cluster)", None, logs / elapsed, "", 2)
        t.add("writes to these SimJobs per second (watch)", None, writes / elapsed, "", 2)
        per = writes / args.k / (elapsed / args.interval)
        t.add("writes per SimJob per interval", None, per, "<= 1", 3)
        t.add(
            "shortest gap between two progress versions (s)",
            None,
            min(gaps, default=None),
            f">= {args.interval}",
            1,
        )
        if operator is not None:
            mine = operator.requests(metrics)
            t.add(
                "operator API requests per second (APF + the log reads)",
                None,
                None if mine is None else (mine + logs) / elapsed,
                "stated",
                2,
            )
            t.add(
                "  of which APF saw (its FlowSchema)",
                None,
                None if mine is None else mine / elapsed,
                "",
                2,
            )
            t.add(
                "operator CPU, % of one core",
                None,
                (cpu_seconds(operator.pid) - cpu0) / elapsed * 100,
                "",
                1,
            )
        else:
            t.notes.append(
                f"served by an operator for all namespaces already running (pid "
                f"{', '.join(map(str, others))}): its requests are not separable from its "
                "other work, so only the figures attributable to this namespace are shown"
            )
        t.notes.append(
            f"window {elapsed:.0f} s; {running}/{args.k} still Running at its end; "
            f"{len(gaps)} gaps measured; load average {load0:.1f}-{os.getloadavg()[0]:.1f} "
            "(2 cores)"
        )
        if not ok:
            t.notes.append("INCOMPLETE: not all SimJobs reached Running")
        tracker.stop()
    finally:
        if operator is not None:
            operator.stop()
        bench.cleanup()
    print(t.text(), flush=True)
    if args.out:
        Path(args.out).write_text(t.markdown())
    return 1 if any(n.startswith("INCOMPLETE") for n in t.notes) else 0


if __name__ == "__main__":
    sys.exit(main())
