"""The ``Backend`` protocol and the results its calls return.

A backend is an adapter (Kueue's jobframework is the model): it turns an admitted
SimJob into something running (``submit``), says what it sees (``observe`` ->
``core.phases.Observation``) and stops it (``cancel``, True once nothing is left).
It never writes SimJob status or posts Events: ``submit`` returns a result and the
reconciler (``controller.reconciler``) records it — the backend reference, a
rejection that fails the SimJob, a retry after a delay — and cancels a job whose
SimJob went away while it was being submitted. All three calls are idempotent and
safe after an operator crash: ``submit`` adopts what an earlier run created, never
creating twice. A backend runs a SimJob with exactly its ``api.simjob.Grant``
(recorded at admission), never with a re-read tier.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from simjob_operator.api.data import WorkspaceStatus
from simjob_operator.api.simjob import BackendRef, Grant
from simjob_operator.core.phases import Observation, ObservedState
from simjob_operator.core.sightings import Seen
from simjob_operator.core.view import SimJobRecord


@dataclasses.dataclass(frozen=True)
class Submitted:
    """The backend object exists: created now, or adopted (``created`` False)."""

    ref: BackendRef
    created: bool
    message: str = ""
    workspace: WorkspaceStatus | None = None  # where the outputs go, when only now known


@dataclasses.dataclass(frozen=True)
class Rejected:
    """The backend refuses this SimJob for good: it fails with ``reason``."""

    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class RetryAfter:
    """Nothing was created; try again after ``delay`` seconds (e.g. an old object of
    the same name is still being deleted). With ``reason`` the SimJob shows it: it is
    waiting on the backend (``Queued``, this reason and ``message``), and the tier's
    maxPendingSeconds bounds the wait like a pod's that does not start."""

    delay: float
    message: str
    reason: str | None = None

    def as_pending(self) -> Observation | None:
        """The wait as the backend's observation (None without a reason)."""
        if self.reason is None:
            return None
        return Observation(
            ObservedState.PENDING,
            reason=self.reason,
            message=self.message,
            recheck_after=self.delay,
        )


SubmitResult = Submitted | Rejected | RetryAfter


class BackendUnavailable(Exception):
    """The backend could not be asked (e.g. Slurm does not answer). Nothing is decided:
    the reconciler keeps the phase and retries with backoff. For ``submit`` it is
    ambiguous (the object may exist): the retry's ``submit`` adopts it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Backend(Protocol):
    """The operations the reconciler needs from a place that runs simulations."""

    kind: str  # status.backendRef.kind

    def backend_id(self, record: SimJobRecord) -> str:
        """The name/id of the backend object of ``record`` (for logs)."""
        ...

    def planned_ref(self, record: SimJobRecord) -> BackendRef | None:
        """The reference known before submitting (a deterministic name), or None when
        only ``submit`` learns it (a Slurm job id)."""
        ...

    def planned_workspace(self, record: SimJobRecord, grant: Grant) -> WorkspaceStatus | None:
        """Where the outputs will be, when known before submitting (else None)."""
        ...

    async def submit(self, record: SimJobRecord, grant: Grant) -> SubmitResult: ...

    async def observe(self, record: SimJobRecord, seen: Seen | None = None) -> Observation:
        """What the backend says now; ``seen`` is the newest watch event about the
        backend object, if one was delivered (a hint that may spare a read)."""
        ...

    async def cancel(self, record: SimJobRecord) -> bool:
        """Stop and delete everything; True once nothing is left."""
        ...
