"""The progress protocol a simulation follows, in any language: one line on stdout.

    SIMJOB_PROGRESS {"percent": 42.5, "message": "step 420 of 1000"}

The prefix starts the line; the rest is a JSON object with ``percent`` (a number, 0 to
100) and, optionally, ``message`` (a string; cut at ``MESSAGE_LIMIT`` characters).
Anything else on the line, or a line that does not parse, is ignored (a simulation's
own output is never an error). stdout was chosen over a ``progress.json`` file because
it reaches the operator the same way on both backends without a shared filesystem:
the pod's log on Kubernetes, the batch output file on Slurm. ``last_progress`` reads
the newest valid line of a log tail. Pure; used by the progress readers of the
backends and by the reconciler, which writes ``status.progress``.
"""

from __future__ import annotations

import dataclasses
import json
import math

PREFIX = "SIMJOB_PROGRESS "
MESSAGE_LIMIT = 256


@dataclasses.dataclass(frozen=True)
class ProgressReport:
    percent: float
    message: str = ""


def parse_line(line: str) -> ProgressReport | None:
    """One line, or None when it is not a valid progress line."""
    if not line.startswith(PREFIX):
        return None
    try:
        data = json.loads(line[len(PREFIX) :])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    percent = data.get("percent")
    if isinstance(percent, bool) or not isinstance(percent, int | float):
        return None
    if not math.isfinite(percent):
        return None
    message = data.get("message", "")
    if not isinstance(message, str):
        message = ""
    clean = "".join(ch if ch.isprintable() else " " for ch in message)[:MESSAGE_LIMIT]
    return ProgressReport(percent=round(min(100.0, max(0.0, float(percent))), 2), message=clean)


def last_progress(text: str) -> ProgressReport | None:
    """The newest valid progress line of ``text`` (e.g. the tail of a log)."""
    for line in reversed(text.splitlines()):
        report = parse_line(line.rstrip("\r"))
        if report is not None:
            return report
    return None
