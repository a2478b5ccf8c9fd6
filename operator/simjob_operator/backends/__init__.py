"""Where simulations run: the ``Backend`` protocol every backend implements.

A backend turns an admitted SimJob into something running (``submit``), says
what it sees (``observe`` -> ``phases.Observation``) and stops it (``cancel``,
which reports whether everything is gone, so callers retry until it is).
All three are idempotent and safe to call again after an operator crash:
``submit`` adopts what an earlier run of the operator created, never creating
twice. ``kubernetes_backend`` runs a batch/v1 Job; ``slurm_backend`` a Slurm job.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Protocol

from ..phases import Observation
from ..records import SimJobRecord
from ..sightings import Seen
from ..validation import Effective


class Submitted(enum.StrEnum):
    CREATED = "created"
    ADOPTED = "adopted"  # it already existed and is ours (e.g. after a restart)
    BLOCKED = "blocked"  # cannot create yet (e.g. an old object of the same name)


@dataclasses.dataclass(frozen=True)
class SubmitResult:
    outcome: Submitted
    backend_id: str
    message: str = ""


class Backend(Protocol):
    """The three operations the reconciler needs from a place that runs simulations."""

    kind: str  # status.backendRef.kind

    def backend_id(self, record: SimJobRecord) -> str:
        """The deterministic name/id of the backend object of ``record``."""
        ...

    async def submit(self, record: SimJobRecord, effective: Effective) -> SubmitResult: ...

    async def observe(self, record: SimJobRecord, seen: Seen | None = None) -> Observation:
        """What the backend says now; ``seen`` is the newest watch event about the
        backend object, if one was delivered (a hint that may spare a read)."""
        ...

    async def cancel(self, record: SimJobRecord) -> bool:
        """Stop and delete everything; True once nothing is left."""
        ...
