"""Run the benchmark suite of issue 11 at a size: ``make bench`` (ci) or ``make bench-full``.

Scenarios, each in its module: ``backlog`` (5 slots, N one-second SimJobs),
``throughput`` (N SimJobs vs N bare Jobs), ``latency`` (one at a time), ``idle`` (K
Running, nothing changing) then ``cancel`` (C cancels among those K), ``restart`` (M
SimJobs, RSS, SIGTERM and start), ``progress`` (N Running SimJobs printing progress,
issue 12: what live progress costs). Prints one table per scenario (baseline, SimJob,
ratio, target) and writes to bench/results/: the tables as Markdown (``<size>.md``), the
raw numbers (``<size>.json``) and the PNG plots of ``plots``. ``--only`` runs a subset.
Helpers in ``common``; recorded figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backlog
import cancel
import idle
import latency
import plots
import progress
import restart
import throughput
from cluster import Bench
from common import REPO, RESULTS, Table


@dataclass(frozen=True)
class Size:
    backlog: tuple[int, ...]
    throughput: int
    latency: int
    fleet: int
    cancels: int
    idle_seconds: float
    restart: int
    progress: int
    progress_seconds: float


SIZES = {
    # a quick check of the harness itself (~2 min), not a measurement
    "smoke": Size(
        backlog=(20,),
        throughput=20,
        latency=2,
        fleet=20,
        cancels=5,
        idle_seconds=5,
        restart=40,
        progress=10,
        progress_seconds=10,
    ),
    "ci": Size(
        backlog=(200,),
        throughput=200,
        latency=10,
        fleet=300,
        cancels=30,
        idle_seconds=30,
        restart=1000,
        progress=100,
        progress_seconds=30,
    ),
    "full": Size(
        backlog=(200, 1000, 2000),
        throughput=1000,
        latency=30,
        fleet=1000,
        cancels=100,
        idle_seconds=60,
        restart=10000,
        progress=500,
        progress_seconds=120,
    ),
}
SCENARIOS = ("backlog", "throughput", "latency", "idle", "cancel", "restart", "progress")


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    except OSError:
        mem = float("nan")
    return (
        f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB, Python "
        f"{platform.python_version()}, load {os.getloadavg()[0]:.1f} at start"
    )


def suite(bench: Bench, size: Size, only: set[str]) -> tuple[list[Table], dict[str, Any]]:
    tables: list[Table] = []
    raw: dict[str, Any] = {}

    def done(name: str, began: float, got: tuple[Any, Any]) -> None:
        new = got[0] if isinstance(got[0], list) else [got[0]]
        for t in new:
            t.notes.append(f"scenario took {time.monotonic() - began:.0f} s")
            print(t.text() + "\n", flush=True)
        tables.extend(new)
        raw[name] = got[1]

    for name in ("backlog", "throughput", "latency"):
        if name in only:
            began = time.monotonic()
            if name == "backlog":
                done(name, began, backlog.run(bench, list(size.backlog)))
            elif name == "throughput":
                done(name, began, throughput.run(bench, size.throughput))
            else:
                done(name, began, latency.run(bench, size.latency))
    if only & {"idle", "cancel"}:
        began = time.monotonic()
        fleet = idle.start_fleet(bench, size.fleet)
        try:
            if "idle" in only:
                done("idle", began, idle.measure_idle(bench, fleet, size.idle_seconds))
            if "cancel" in only:
                began = time.monotonic()
                done("cancel", began, cancel.run(bench, fleet, size.cancels))
        finally:
            fleet.tracker.stop()
            fleet.operator.stop()
    if "restart" in only:
        began = time.monotonic()
        done("restart", began, restart.run(bench, size.restart))
    if "progress" in only:
        began = time.monotonic()
        done("progress", began, progress.run(bench, size.progress, size.progress_seconds))
    return tables, raw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="ci")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG", str(REPO / ".cluster" / "kubeconfig"))
    )
    parser.add_argument(
        "--operator-src",
        default=str(REPO / "operator"),
        help="the directory holding the simjob_operator package to run",
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    size = SIZES[args.size]
    header = f"# bench size {args.size}; machine: {machine()}"
    print(header, flush=True)
    began = time.monotonic()
    bench = Bench(args.kubeconfig, args.operator_src)
    bench.setup()
    try:
        tables, raw = suite(bench, size, only)
    finally:
        bench.cleanup()
    elapsed = time.monotonic() - began
    out = Path(args.out)
    drawn = plots.draw(raw, out)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (out / f"{args.size}.md").write_text(
        f"# `bench/run.py --size {args.size}`, {stamp}\n\n{header[2:]}; "
        f"suite {elapsed:.0f} s\n\n" + "\n".join(t.markdown() for t in tables)
    )
    (out / f"{args.size}.json").write_text(
        json.dumps(
            {
                "size": args.size,
                "when": stamp,
                "machine": machine(),
                "seconds": elapsed,
                "raw": raw,
            },
            indent=1,
            default=str,
        )
    )
    print(
        f"# suite took {elapsed:.0f} s; wrote {out}/{args.size}.md, {args.size}.json, "
        + ", ".join(p.name for p in drawn),
        flush=True,
    )
    failed = [t.title for t in tables if any(n.startswith("INCOMPLETE") for n in t.notes)]
    if failed:
        print(f"# INCOMPLETE: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
