"""What the watches deliver (simjob_operator.core.sightings): the SimJob event filter,
the Job hint taken from an event, merging hints, the owner of a Job; and kopf's
diff-base storage that writes nothing (handlers.NoDiffBase). Pure; no cluster.
"""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.controller.handlers import NoDiffBase
from simjob_operator.core.sightings import Seen, Sighting, owning_simjob, simjob_event_wanted
from tests.support.bodies import admitted_status, simjob_body


def job_body(owner: str = "sim", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"sj-{owner}",
            "namespace": "lab",
            "uid": "job-uid",
            "resourceVersion": "7",
            "labels": {c.LABEL_UID: "uid-lab-sim"},
            "managedFields": [{"manager": "kube-controller-manager"}],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "unrelated"},
                {"apiVersion": c.API_VERSION, "kind": c.SIMJOB_KIND, "name": owner},
            ],
        },
        "spec": {"template": {"spec": {"containers": [{"name": c.CONTAINER_NAME}]}}},
        "status": status,
    }


# ----------------------------------------------------------------------------- SimJob events


def managed(finalizer: bool = True, **kwargs: Any) -> dict[str, Any]:
    """A SimJob body; with kopf's finalizer on it (the operator has taken charge)."""
    body = simjob_body(**kwargs)
    if finalizer:
        body["metadata"]["finalizers"] = ["example.com/other", c.FINALIZER]
    return body


def test_new_and_listed_simjobs_are_reconciled() -> None:
    assert simjob_event_wanted("ADDED", managed())
    assert simjob_event_wanted(None, managed())  # kopf's listing at start-up: resume everything
    # ...even finished ones (their ttlSecondsAfterFinished is re-checked at every start).
    finished = managed(status={"phase": "Succeeded", "observedGeneration": 1})
    assert simjob_event_wanted(None, finished)


def test_simjobs_wait_for_the_finalizer() -> None:
    # kopf adds it on this very event; the event of that patch is the one reconciled
    assert not simjob_event_wanted("ADDED", managed(finalizer=False))
    assert not simjob_event_wanted(None, managed(finalizer=False))
    assert simjob_event_wanted("MODIFIED", managed())


def test_unprocessed_simjobs_are_reconciled() -> None:
    assert simjob_event_wanted("MODIFIED", managed())
    assert simjob_event_wanted("MODIFIED", managed(status={}))


def test_status_writes_are_not_reconciled_again() -> None:
    status = {**admitted_status("Running"), "observedGeneration": 1}
    assert not simjob_event_wanted("MODIFIED", managed(status=status))
    queued = {"phase": "Queued", "reason": Reason.WAITING_FOR_SLOT, "observedGeneration": 1}
    assert not simjob_event_wanted("MODIFIED", managed(status=queued))


def test_spec_changes_are_reconciled() -> None:
    body = managed(status={**admitted_status("Running"), "observedGeneration": 1}, cancel=True)
    body["metadata"]["generation"] = 2
    assert simjob_event_wanted("MODIFIED", body)
    # a status written before observedGeneration existed counts as behind
    legacy = managed(status=admitted_status("Running"))
    assert simjob_event_wanted("MODIFIED", legacy)


def test_deletion_belongs_to_the_delete_handler() -> None:
    assert not simjob_event_wanted("MODIFIED", managed(deleting=True))
    assert not simjob_event_wanted(None, managed(deleting=True))
    assert not simjob_event_wanted("DELETED", managed())


# ----------------------------------------------------------------------------- Job events


def test_a_job_event_keeps_what_a_backend_reads() -> None:
    body = job_body(active=1, ready=1)
    seen = Seen.of("MODIFIED", body)
    assert seen.body is not None
    assert seen.body["status"] == {"active": 1, "ready": 1}
    assert seen.body["metadata"] == {
        "name": "sj-sim",
        "namespace": "lab",
        "uid": "job-uid",
        "resourceVersion": "7",
        "labels": {c.LABEL_UID: "uid-lab-sim"},
    }
    # a copy: kopf's bodies are live views
    body["status"]["ready"] = 0
    body["metadata"]["labels"][c.LABEL_UID] = "other"
    assert seen.body["status"]["ready"] == 1
    assert seen.body["metadata"]["labels"][c.LABEL_UID] == "uid-lab-sim"


def test_a_deleted_job_is_a_sighting_without_a_body() -> None:
    assert Seen.of("DELETED", job_body(active=1)).body is None


def test_the_owner_of_a_job() -> None:
    assert owning_simjob(job_body("sim-7")) == "sim-7"
    orphan = job_body()
    orphan["metadata"]["ownerReferences"] = orphan["metadata"]["ownerReferences"][:1]
    assert owning_simjob(orphan) is None
    foreign = job_body()
    foreign["metadata"]["ownerReferences"][1]["apiVersion"] = "simjob.io.example/v1"
    assert owning_simjob(foreign) is None


# ----------------------------------------------------------------------------- merging


def test_a_newer_sighting_wins_where_it_says_something() -> None:
    old_simjob, new_simjob = simjob_body(), simjob_body(status={"phase": "Queued"})
    running = Seen.of("MODIFIED", job_body(ready=1))
    gone = Seen.of("DELETED", job_body())

    merged = Sighting(simjob=old_simjob).merge(Sighting(backend=running))
    assert merged == Sighting(simjob=old_simjob, backend=running)
    merged = merged.merge(Sighting(simjob=new_simjob))
    assert merged.simjob is new_simjob
    assert merged.backend is running
    # a deletion replaces the Job seen before it (the Job must be looked up again)
    assert merged.merge(Sighting(backend=gone)).backend == Seen(None)
    assert Sighting().merge(Sighting()) == Sighting()
    # what admission knows is replaced by the first Job event, as any hint
    admitted = Sighting(simjob=new_simjob, backend=Seen.nothing_yet("100"))
    assert admitted.merge(Sighting(backend=running)).backend is running


def test_nothing_exists_only_for_the_simjob_as_admitted() -> None:
    nothing = Seen.nothing_yet("100")
    assert nothing.body is None
    assert nothing.nothing_for("100")
    assert not nothing.nothing_for("101")  # changed since (e.g. a reconcile made the Job)
    assert not Seen(None).nothing_for("100")  # a deleted Job: look again


# ----------------------------------------------------------------------------- kopf


@pytest.mark.parametrize("annotated", [False, True])
def test_kopf_keeps_no_diff_base(annotated: bool) -> None:
    raw = simjob_body()
    if annotated:  # left by an older operator version
        raw["metadata"]["annotations"] = {
            f"{c.KOPF_ANNOTATION_PREFIX}/last-handled-configuration": '{"spec": {}}'
        }
    body = kopf.Body(copy.deepcopy(raw))
    storage = NoDiffBase()
    assert storage.fetch(body=body) is None
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch  # nothing to write
