"""How the ``simjob`` command prints: tables like kubectl's, json/yaml, and the live view.

``table`` prints NAME PHASE TIER BACKEND OWNER AGE (``-o wide`` adds QUEUE, EXIT, REASON,
MESSAGE); ``dump`` prints the raw objects as JSON or YAML. ``LiveView`` is the line
``watch`` and ``--wait`` show: phase, queue position and reason while queued, a progress
bar (rich) from ``status.progress`` while running, the exit code and message at the
end; on a terminal it redraws in place (rich Live), elsewhere it prints one line per
change. ``usage_table``/``usage_json`` print the usage ledger (``simjob usage``).
Used by ``simjob_sdk.cli.commands`` and ``simjob_sdk.cli.session`` (the live view).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

from simjob_sdk.objects import SimJobObject
from simjob_sdk.usage import UsageReport, UsageTotals

PHASE_STYLE = {
    "Pending": "dim",
    "Queued": "yellow",
    "Running": "cyan",
    "Succeeded": "green",
    "Failed": "red",
    "Cancelled": "magenta",
    "TimedOut": "red",
}


def age(timestamp: str, now: datetime | None = None) -> str:
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def dump(jobs: Sequence[SimJobObject], output: str, *, single: bool) -> str:
    data: Any = (
        jobs[0].raw
        if single
        else {"apiVersion": "v1", "kind": "List", "items": [j.raw for j in jobs]}
    )
    if output == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False).rstrip("\n")


def table(console: Console, jobs: Sequence[SimJobObject], *, wide: bool) -> None:
    grid = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    columns = ["NAME", "PHASE", "TIER", "BACKEND", "OWNER", "AGE"]
    if wide:
        columns += ["QUEUE", "EXIT", "REASON", "MESSAGE"]
    for column in columns:
        grid.add_column(column, no_wrap=column != "MESSAGE")
    for job in jobs:
        status = job.status
        row: list[str | Text] = [
            job.name,
            Text(job.phase or "", style=PHASE_STYLE.get(job.phase or "", "")),
            job.spec.tier,
            job.spec.backend,
            status.owner or job.owner,
            age(job.creation_timestamp),
        ]
        if wide:
            row += [
                "" if status.queue_position is None else str(status.queue_position),
                "" if status.exit_code is None else str(status.exit_code),
                status.reason or "",
                status.message or "",
            ]
        grid.add_row(*row)
    console.print(grid)


def describe(job: SimJobObject, position: int | None) -> str:
    """The one-line state (also what a non-terminal output prints per change)."""
    status = job.status
    parts = [f"{job.namespace}/{job.name}", job.phase or "Pending"]
    if job.phase == "Queued" or (job.phase in (None, "Pending") and position):
        if position is not None:
            parts.append("next" if position == 0 else f"position {position}")
        if status.reason:
            parts.append(status.reason)
    progress = job.progress
    if job.phase == "Running" and progress is not None:
        if progress.percent is not None:
            parts.append(f"{progress.percent:.0f}%")
        if progress.message:
            parts.append(progress.message)
    if job.finished:
        if status.exit_code is not None:
            parts.append(f"exit code {status.exit_code}")
        if status.reason:
            parts.append(status.reason)
    if status.message and (job.finished or job.phase == "Queued"):
        parts.append(f"— {status.message}")
    return "  ".join(parts)


class LiveView:
    """The live line of one SimJob (a context manager; call ``update`` on every change)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            console=console,
            auto_refresh=False,
        )
        self.task = self.bar.add_task("", total=100, start=False)
        self.live: Live | None = None
        self.last_line = ""

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self.live = Live(Text(""), console=self.console, refresh_per_second=8)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def update(self, job: SimJobObject, position: int | None) -> None:
        line = describe(job, position)
        style = PHASE_STYLE.get(job.phase or "", "")
        progress = job.progress
        running_bar = (
            job.phase == "Running" and progress is not None and progress.percent is not None
        )
        if self.live is None:
            if line != self.last_line:
                self.console.print(line, markup=False, highlight=False)
            self.last_line = line
            return
        self.last_line = line
        if running_bar and progress is not None and progress.percent is not None:
            if not self.bar.tasks[0].started:
                self.bar.start_task(self.task)
            self.bar.update(
                self.task,
                completed=progress.percent,
                description=f"{job.name} Running {progress.message or ''}",
            )
            self.live.update(Group(Text(line, style=style), self.bar))
        else:
            self.live.update(Text(line, style=style))
        self.live.refresh()

    def finish(self, job: SimJobObject) -> None:
        """Leave the final line on screen (the live region is replaced by it)."""
        line = describe(job, None)
        if self.live is not None:
            self.live.update(Text(line, style=PHASE_STYLE.get(job.phase or "", "")))
            self.live.refresh()
        elif line != self.last_line:
            self.console.print(line, markup=False, highlight=False)
        self.last_line = line


def _totals_json(totals: UsageTotals) -> dict[str, Any]:
    return {
        "simJobs": totals.sim_jobs,
        "outcomes": dict(totals.outcomes),
        "wallSeconds": str(totals.wall_seconds),
        "cpuSeconds": str(totals.cpu_seconds),
        "gpuSeconds": str(totals.gpu_seconds),
        "memoryGiBSeconds": str(totals.memory_gib_seconds),
    }


def usage_json(report: UsageReport) -> dict[str, Any]:
    """The ledger records and their total, seconds as exact decimal strings."""
    return {
        "records": [
            {
                "period": record.period.isoformat(),
                "owner": record.owner,
                "tier": record.tier,
                **_totals_json(record.totals),
            }
            for record in report.records
        ],
        "total": _totals_json(report.total()),
    }


def usage_table(console: Console, report: UsageReport) -> None:
    """PERIOD OWNER TIER SIMJOBS SUCCEEDED FAILED CPU-S GPU-S MEM-GIB-S WALL-S, and TOTAL."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("PERIOD", "OWNER", "TIER", "SIMJOBS", "SUCCEEDED", "FAILED"):
        table.add_column(column)
    for column in ("CPU-S", "GPU-S", "MEM-GIB-S", "WALL-S"):
        table.add_column(column, justify="right")

    def row(period: str, owner: str, tier: str, totals: UsageTotals) -> None:
        table.add_row(
            period,
            owner,
            tier,
            str(totals.sim_jobs),
            str(totals.outcomes.get("Succeeded", 0)),
            str(totals.outcomes.get("Failed", 0)),
            str(totals.cpu_seconds),
            str(totals.gpu_seconds),
            str(totals.memory_gib_seconds),
            str(totals.wall_seconds),
        )

    for record in report.records:
        row(record.period.isoformat(), record.owner, record.tier, record.totals)
    row("TOTAL", "", "", report.total())
    console.print(table)
