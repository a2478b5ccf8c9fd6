"""Checks at the edges of a Slurm client: the job ids it is asked about, and what a failed
command means.

``checked_ids`` turns the ids a caller passes into unique, plain Slurm job ids (never an
option or a list in disguise; ``plain``: numeric only, as pyslurm takes ints).
``classify_failure`` judges a failed command: Slurm unreachable (``SlurmUnavailable``,
retry) or, for a submit, refused (``SlurmRejected``; ``SlurmUnsatisfiable`` when no node
can ever run it), from the stderr fragments below. Used by cli.py (``CliSlurmClient``,
which re-exports them), pyslurm_client.py (the same patterns, the same id rules) and
listing.py; neighbours: errors.py (the exceptions), runners.py (``RunResult``).
"""

from __future__ import annotations

from collections.abc import Iterable

from slurm_bridge.errors import (
    InvalidJobSpec,
    SlurmRejected,
    SlurmUnavailable,
    SlurmUnsatisfiable,
)
from slurm_bridge.parsing import JOB_ID
from slurm_bridge.runners import RunResult

# stderr fragments (lower case) meaning "Slurm could not be reached", not "refused".
UNAVAILABLE_PATTERNS = (
    "unable to contact slurm controller",
    "socket timed out",
    "connection refused",
    "connection reset",
    "communication connection failure",
    "zero bytes were transmitted",
    "transport endpoint",
    "no route to host",
    "network is unreachable",
    "slurm_load_jobs error: unexpected message",
    "munge",
    "authentication failure",
    "invalid authentication credential",
    "could not establish a configuration source",
    "unable to establish controller",
    "command not found",
    "slurmctld not responding",
    "resource temporarily unavailable",
)
# stderr fragments (lower case) of a refusal that no node of the partition can ever satisfy.
UNSATISFIABLE_PATTERNS = (
    "requested node configuration is not available",
    "node count specification invalid",
)


def classify_failure(result: RunResult, *, refusal: bool) -> SlurmRejected | SlurmUnavailable:
    """The error for a failed command: unreachable Slurm, or (if ``refusal``) a refusal
    (``SlurmUnsatisfiable`` when no node can ever run the job as asked)."""
    text = f"{result.stderr}\n{result.stdout}".lower()
    unavailable = result.returncode in (126, 127) or any(p in text for p in UNAVAILABLE_PATTERNS)
    cls: type[SlurmRejected | SlurmUnavailable]
    if not refusal or unavailable:
        cls = SlurmUnavailable
    elif any(p in text for p in UNSATISFIABLE_PATTERNS):
        cls = SlurmUnsatisfiable
    else:
        cls = SlurmRejected
    return cls(result.describe(), argv=result.argv, stderr=result.stderr)


def checked_ids(job_ids: Iterable[str], *, plain: bool = False) -> list[str]:
    """Unique job ids in order; each must be a Slurm job id (no options, commas), and
    with ``plain`` a numeric one (no array tasks: pyslurm takes ints)."""
    if isinstance(job_ids, str):
        raise TypeError("job_ids must be an iterable of ids, not one string")
    ids: dict[str, None] = {}
    for job_id in job_ids:
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            raise InvalidJobSpec(f"{job_id!r} is not a {'plain ' if plain else ''}Slurm job id")
        if plain and "_" in job_id:
            raise InvalidJobSpec(f"{job_id!r} is not a plain Slurm job id")
        ids[job_id] = None
    return list(ids)
