"""The ``SlurmClient`` protocol: what the operator asks of a Slurm site.

Implementations: ``CliSlurmClient`` (cli.py: sbatch/squeue/sacct/scancel through a local
or SSH runner) and ``PyslurmClient`` (pyslurm_client.py: the same over pyslurm's API).
All methods are coroutines; they raise ``SlurmUnavailable`` when Slurm cannot be asked
(keep the phase, retry later) and ``submit`` raises ``SlurmRejected`` when Slurm refuses
the job. See errors.py for the ambiguity of an unavailable ``submit``.
Neighbours: specs.py (``JobSpec``), states.py (``JobState``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from slurm_bridge.specs import JobSpec
from slurm_bridge.states import JobState

__all__ = ["DEFAULT_TAIL_BYTES", "DEFAULT_TAIL_LINES", "Accounting", "SlurmClient"]

DEFAULT_TAIL_LINES = 20
DEFAULT_TAIL_BYTES = 4096


class Accounting(enum.StrEnum):
    """Where jobs that left ``squeue`` (after MinJobAge) are looked up."""

    AUTO = "auto"  # detect from `scontrol show config` on first need
    SACCT = "sacct"  # slurmdbd: AccountingStorageType=accounting_storage/slurmdbd
    COMPLETION = "completion"  # `sacct --completion`: JobCompType=jobcomp/filetxt
    NONE = "none"  # nothing: a job gone from squeue is reported MISSING


@runtime_checkable
class SlurmClient(Protocol):
    """Submit, observe (batched), cancel and adopt batch jobs on one Slurm site."""

    async def submit(self, spec: JobSpec) -> str:
        """Submit ``spec``; return the Slurm job id."""
        ...

    async def query(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        """States of all ``job_ids`` at once; unknown ids map to ``JobKind.MISSING``."""
        ...

    async def cancel(self, job_id: str) -> JobState:
        """Cancel the job and return its state once Slurm confirms it ended (or the last
        state seen when the confirmation window passed: the caller retries)."""
        ...

    async def find(self, marker: str) -> str | None:
        """The id of the job submitted with ``marker`` (pending, running or finished)."""
        ...

    async def output_tail(
        self,
        job_id: str,
        lines: int = DEFAULT_TAIL_LINES,
        max_bytes: int = DEFAULT_TAIL_BYTES,
        *,
        directory: str | None = None,
    ) -> str:
        """The last ``lines`` lines (at most ``max_bytes``) of the job's output file, in
        the work directory or in the job's own ``directory`` (``JobSpec.directory``)."""
        ...

    async def ping(self) -> None:
        """A cheap reachability check of the controller (``scontrol ping`` or its API
        twin); raises ``SlurmUnavailable`` when it cannot be asked or does not answer."""
        ...

    async def close(self) -> None:
        """Release connections or threads held by the client."""
        ...
