"""The fault suite's results: one ``ChaosResult`` per scenario, printed as a table at the
end of the run (``pytest_terminal_summary`` in conftest.py).

A scenario fills its result as it goes (cases, kills, outages), and its checks fill
``duplicates``, ``stuck`` and ``wrong`` from what they found, so a failing scenario still
shows its figures. Neighbours: conftest.py, checks.py, the test_*.py scenarios.
"""

from __future__ import annotations

import dataclasses
import time


@dataclasses.dataclass
class ChaosResult:
    scenario: str
    size: str
    seed: int
    cases: int = 0  # SimJobs in the scenario (probes not counted)
    kills: int = 0  # kill -9 of the operator
    outages: int = 0  # stops/stalls of a component
    duplicates: int = 0  # SimJobs with more than one Job, pod or Slurm job
    stuck: int = 0  # SimJobs not in a terminal phase at the deadline
    wrong: int = 0  # SimJobs in a terminal phase other than the expected one
    tracebacks: int = 0  # "Traceback" blocks the operator logged during the scenario
    outcome: str = "running"
    started: float = dataclasses.field(default_factory=time.monotonic)
    seconds: float = 0.0

    def finish(self, outcome: str) -> None:
        self.outcome = outcome
        self.seconds = time.monotonic() - self.started


RESULTS: list[ChaosResult] = []

COLUMNS = (
    ("scenario", 34),
    ("size", 4),
    ("cases", 5),
    ("kills", 5),
    ("outages", 7),
    ("duplicates", 10),
    ("stuck", 5),
    ("wrong", 5),
    ("tracebacks", 10),
    ("time", 7),
    ("outcome", 8),
)


def table(results: list[ChaosResult]) -> list[str]:
    """The summary table, one line per scenario, plus a seed line."""
    head = "  ".join(name.ljust(width) for name, width in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in results:
        cells = (
            r.scenario,
            r.size,
            r.cases,
            r.kills,
            r.outages,
            r.duplicates,
            r.stuck,
            r.wrong,
            r.tracebacks,
            f"{r.seconds:.0f} s",
            r.outcome,
        )
        lines.append(
            "  ".join(
                str(cell).ljust(width) for cell, (_, width) in zip(cells, COLUMNS, strict=True)
            )
        )
    seeds = sorted({r.seed for r in results})
    lines.append(f"seed: {', '.join(map(str, seeds))} (replay with SIMJOB_CHAOS_SEED=<seed>)")
    return lines
