"""PNG figures of a benchmark run (matplotlib, no display), written to bench/results/.

Reads the raw data ``run`` collects from the scenario modules (``throughput``,
``backlog``, ``latency``, ``cancel``): the create → Running CDF of SimJobs vs bare Jobs,
writes per SimJob vs N and the drain of a backlog against the ideal, latency at rest,
and the split of cancel time between the pods' grace period and the operator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _cdf(ax: Any, values: list[float], label: str) -> None:
    ordered = sorted(values)
    if ordered:
        ax.step(
            ordered,
            [(i + 1) / len(ordered) for i in range(len(ordered))],
            where="post",
            label=label,
        )


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput_cdf(data: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    _cdf(ax, data["bare_running"], f"bare Jobs (N={data['n']})")
    _cdf(ax, data["simjob_running"], f"SimJobs (N={data['n']})")
    ax.set(
        xlabel="seconds from create to Running",
        ylabel="fraction of objects",
        title="Throughput: create -> Running",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out / "throughput-running-cdf.png")


def backlog_writes(data: dict[str, Any], out: Path) -> Path:
    rows = data["results"]
    ns = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot(ns, [r["status_writes"] / r["n"] for r in rows], "o-", label="SimJob status writes")
    ax.plot(ns, [r["writes"] / r["n"] for r in rows], "s-", label="all API writes")
    ax.plot(ns, [r["simjob_lists"] / r["n"] for r in rows], "^-", label="LISTs of SimJobs")
    ax.axhline(3, color="grey", linestyle="--", label="target: 3 status writes")
    ax.set(
        xlabel="N (SimJobs in the backlog)",
        ylabel="per SimJob",
        title=f"Backlog, {data['slots']} slots: cost per SimJob vs N",
    )
    ax.set_xticks(ns)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out / "backlog-writes-per-simjob.png")


def backlog_drain(data: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for r in data["results"]:
        done = r["finished_at"]
        ax.plot(done, range(1, len(done) + 1), label=f"SimJobs, N={r['n']}")
        ax.plot([r["bare_to_running"], r["ideal"]], [0, r["n"]], "--", color="grey")
    ax.set(
        xlabel="seconds since the first create",
        ylabel="SimJobs Succeeded",
        title="Backlog drain (dashed: the ideal)",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out / "backlog-drain.png")


def latency(data: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    series = [data["job_r"], data["sj_r"], data["job_s"], data["sj_s"]]
    ax.boxplot(series)
    ax.set_xticks(
        [1, 2, 3, 4], ["Job\nRunning", "SimJob\nRunning", "Job\nSucceeded", "SimJob\nSucceeded"]
    )
    ax.set(ylabel="seconds from create", title=f"Latency at rest ({data['samples']} samples)")
    ax.grid(alpha=0.3)
    return _save(fig, out / "latency-at-rest.png")


def cancel(data: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    _cdf(ax, data["requested"], "spec.cancel -> CancelRequested")
    _cdf(ax, data["to_gone"], "spec.cancel -> pod gone (grace)")
    _cdf(ax, data["ours"], "pod gone -> Cancelled (ours)")
    _cdf(ax, data["total"], "spec.cancel -> Cancelled")
    ax.set(
        xlabel="seconds",
        ylabel="fraction of cancels",
        title=f"Cancel at scale ({data['cancels']} cancels)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / "cancel.png")


def draw(raw: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    drawn = []
    for key, painters in (
        ("throughput", [throughput_cdf]),
        ("backlog", [backlog_writes, backlog_drain]),
        ("latency", [latency]),
        ("cancel", [cancel]),
    ):
        if key in raw:
            drawn += [paint(raw[key], out) for paint in painters]
    return drawn
