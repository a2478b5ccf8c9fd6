"""What the watches delivered about a SimJob: hints for its next reconcile.

kopf's watches hand ``handlers`` the newest body of a SimJob and of its Job; a
``Sighting`` carries them through the ``workqueue`` (a newer sighting replaces
the parts it carries: ``Sighting.merge``) to ``reconciling``, so a reconcile
does not GET what an event already delivered. A hint is only ever a starting
point: every status write still carries the SimJob's resourceVersion (a stale
SimJob body costs a 409 and a re-read, never a wrong write), a Job body is used
only when its ``simjob.io/uid`` label names the SimJob (``kubernetes_backend``),
and a deleted Job is a sighting without a body, so it is looked up again. One
hint is not from a watch: ``Seen.nothing_yet`` is what ``admitting`` knows when
its conditional write has just given a SimJob its slot: it held none before,
and a Job is only ever created for a SimJob holding a slot, so nothing of it
exists on the backend. That holds for the SimJob as written (its
resourceVersion), so it is ignored once the SimJob has changed, and a newer Job
event replaces it, as any other hint.

``simjob_event_wanted`` filters SimJob watch events the way controller-runtime's
GenerationChangedPredicate does: the operator's own status writes (and kopf's
finalizer patch) need no reconcile, because whoever wrote acted on what it
wrote; a new SimJob, the listing at start-up, a SimJob not processed yet and
a spec change (``metadata.generation`` ahead of ``status.observedGeneration``)
do, once kopf's finalizer is on it (kopf adds it on the first event, and the
event of that patch is the one reconciled, so no status write races the
finalizer patch). Deletion belongs to kopf's on.delete handler. Pure; used by ``handlers``,
``runtime``, ``reconciling`` and ``backends``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.core.progress import ProgressReport

Body = Mapping[str, Any]

# The parts of a backend object a backend reads (the rest, e.g. managedFields, is
# dropped, so a hint is small and owned by us: kopf's bodies are live views).
KEPT_METADATA = ("name", "namespace", "uid", "resourceVersion", "labels")


@dataclasses.dataclass(frozen=True)
class Seen:
    """One backend object as a watch event delivered it; ``body`` None: DELETED (look
    it up again), or known not to exist for the SimJob at ``nothing_at``."""

    body: Body | None
    nothing_at: str | None = None  # a SimJob resourceVersion

    @classmethod
    def nothing_yet(cls, resource_version: str) -> Seen:
        """The SimJob (as of ``resource_version``) has just been given its slot:
        nothing of it exists on the backend."""
        return cls(None, nothing_at=resource_version)

    def nothing_for(self, resource_version: str) -> bool:
        """Whether this says that nothing exists for the SimJob at that version."""
        return self.nothing_at is not None and self.nothing_at == resource_version

    @classmethod
    def of(cls, event_type: str | None, body: Body) -> Seen:
        if event_type == "DELETED":
            return cls(None)
        meta = body.get("metadata") or {}
        kept = {key: copy.deepcopy(meta[key]) for key in KEPT_METADATA if key in meta}
        return cls({"metadata": kept, "status": copy.deepcopy(dict(body.get("status") or {}))})


@dataclasses.dataclass(frozen=True)
class Sighting:
    """The newest SimJob body and the newest event about its backend object, if any."""

    simjob: Body | None = None
    backend: Seen | None = None
    progress: ProgressReport | None = None  # the newest progress line a reader saw

    def merge(self, newer: Sighting) -> Sighting:
        """This sighting updated by a newer one (which wins where it says something)."""
        return Sighting(
            simjob=newer.simjob if newer.simjob is not None else self.simjob,
            backend=newer.backend if newer.backend is not None else self.backend,
            progress=newer.progress if newer.progress is not None else self.progress,
        )


def simjob_event_wanted(event_type: str | None, body: Body) -> bool:
    """Whether a SimJob watch event calls for a reconcile (see the module docstring)."""
    if event_type == "DELETED":
        return False
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False  # kopf's on.delete handler (Reconciler.finalize) owns it now
    if c.FINALIZER not in (meta.get("finalizers") or ()):
        return False  # kopf adds it on this event; the event of that patch comes next
    if event_type in (None, "ADDED"):
        return True  # the listing at start-up (type None), or a new SimJob
    status = body.get("status") or {}
    if not status.get("phase"):
        return True  # not processed yet
    return bool(meta.get("generation") != status.get("observedGeneration"))


def owning_simjob(body: Body) -> str | None:
    """The name of the SimJob that controls a Job (its owner reference), if any."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == c.SIMJOB_KIND and str(ref.get("apiVersion", "")).startswith(
            f"{c.GROUP}/"
        ):
            name = ref.get("name")
            return str(name) if name else None
    return None
