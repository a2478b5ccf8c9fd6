"""Listing one's own jobs by name prefix: the input of an orphan sweep.

``list_jobs`` runs ONE ``squeue --me`` through a ``Runner`` (local or SSH: the same
runner a ``CliSlurmClient`` uses, ``client.runner``) and returns the caller's
unfinished jobs whose name starts with a prefix, each with its comment (where SimJob
records which Kubernetes cluster and SimJob a job belongs to) — never other users'
jobs. Not part of the ``SlurmClient`` protocol: pyslurm sites have no sweep.
Neighbours: parsing.py (``parse_listed``), cli.py (``classify_failure``).
"""

from __future__ import annotations

from slurm_bridge.cli import classify_failure
from slurm_bridge.parsing import parse_listed
from slurm_bridge.runners import DEFAULT_TIMEOUT_S, Runner
from slurm_bridge.states import ListedJob

__all__ = ["UNFINISHED_STATES", "list_jobs"]

UNFINISHED_STATES = "PENDING,RUNNING,SUSPENDED,CONFIGURING,COMPLETING,REQUEUED,REQUEUE_HOLD"


async def list_jobs(
    runner: Runner, name_prefix: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[ListedJob]:
    """The unfinished jobs of the calling user named ``name_prefix...``: id, name,
    comment, state. Raises ``SlurmUnavailable`` when squeue cannot be asked."""
    argv = [
        "squeue",
        "--noheader",
        "--me",
        f"--states={UNFINISHED_STATES}",
        "--Format=JobID:|,Name:|,State:|,Comment:",
    ]
    result = await runner.run(argv, timeout_s=timeout_s)
    if not result.ok:
        raise classify_failure(result, refusal=False)
    return parse_listed(result.stdout, name_prefix)
