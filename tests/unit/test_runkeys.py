"""One run per simulation (simjob_operator.core.runkeys) and its effects through the
admitter (the one fake API server): Replace cancels the older unfinished run, Forbid
fails the newer one with RunInProgress, reuse IfSucceeded ends a SimJob Succeeded
(Reused) without a Job or a slot. Decided from the order of creation, so two
concurrent submits and a restart decide the same. No cluster.
"""

from __future__ import annotations

import asyncio
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.core.runkeys import Forbid, Replace, Reuse, Superseded, decide_run_key
from simjob_operator.core.view import SimJobRecord
from tests.support.bodies import admitted_status, simjob_body, tier_spec
from tests.support.fake_kube import FakeKube
from tests.unit.test_admitting import admitter, body_of, watch


def run(
    name: str, created: str, *, status: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    spec.setdefault("runKey", "alice-heat-1")
    body = simjob_body(name, created=created, status=status, **spec)
    body["metadata"]["finalizers"] = [c.FINALIZER]
    return body


def rec(body: dict[str, Any]) -> SimJobRecord:
    return SimJobRecord.from_body(body)


def test_the_decision_follows_the_order_of_creation() -> None:
    old = rec(run("old", "2025-01-01T12:00:00Z", status=admitted_status("Running")))
    new = rec(run("new", "2025-01-01T12:00:05Z"))
    assert decide_run_key(new, [old, new]) == Replace((old,))
    assert decide_run_key(old, [old, new]) is None  # the older one is not affected
    forbid = rec(run("new", "2025-01-01T12:00:05Z", concurrencyPolicy="Forbid"))
    assert decide_run_key(forbid, [old, forbid]) == Forbid(old)
    done = rec(run("done", "2025-01-01T11:00:00Z", status={"phase": "Succeeded"}, inputHash="h1"))
    again = rec(run("again", "2025-01-01T12:00:09Z", inputHash="h1", reuse="IfSucceeded"))
    assert decide_run_key(again, [done, again]) == Reuse(done)
    other_inputs = rec(run("x", "2025-01-01T12:00:09Z", inputHash="h2", reuse="IfSucceeded"))
    assert decide_run_key(other_inputs, [done, other_inputs]) is None
    no_key = rec(simjob_body("plain"))
    assert decide_run_key(no_key, [old]) is None


def test_an_older_run_without_a_slot_is_superseded_by_a_newer_replace() -> None:
    first = rec(run("first", "2025-01-01T12:00:00Z"))
    second = rec(run("second", "2025-01-01T12:00:00Z"))  # same second: then by name
    third = rec(run("third", "2025-01-01T12:00:07Z"))
    assert decide_run_key(first, [first, second, third]) == Superseded(third)
    assert decide_run_key(second, [first, second, third]) == Superseded(third)
    assert decide_run_key(third, [first, second, third]) == Replace((first, second))
    forbid = rec(run("late", "2025-01-01T12:00:09Z", concurrencyPolicy="Forbid"))
    assert decide_run_key(first, [first, forbid]) is None  # a Forbid run replaces nobody


def test_two_submits_in_one_pass_never_start_the_older() -> None:
    kube = world(run("first", "2025-01-01T12:00:00Z"), run("second", "2025-01-01T12:00:00Z"))
    assert one_pass(kube) == ["second"]
    first = body_of(kube, "first")
    assert first["spec"]["cancel"] is True
    assert first["metadata"]["annotations"][c.ANNOTATION_REPLACED_BY] == "second"
    assert "status" not in first or not first["status"].get("conditions")  # no slot taken


def world(*bodies: dict[str, Any]) -> FakeKube:
    kube = FakeKube()
    kube.add_simtier("small", tier_spec(maxConcurrentPerOwner=5))
    for body in bodies:
        kube.add_simjob(body)
    return kube


def one_pass(kube: FakeKube) -> list[str]:
    admitted: list[str] = []
    asyncio.run(asyncio.wait_for(admitter(kube, admitted).run_pass(), 10))
    return admitted


def test_replace_cancels_the_older_unfinished_run() -> None:
    kube = world(
        run("first", "2025-01-01T12:00:00Z", status=admitted_status("Running")),
        run("second", "2025-01-01T12:00:05Z"),
    )
    assert one_pass(kube) == ["second"]
    assert body_of(kube, "first")["spec"]["cancel"] is True  # its reconcile stops it
    annotations = body_of(kube, "first")["metadata"]["annotations"]
    assert annotations[c.ANNOTATION_REPLACED_BY] == "second"  # the same write: reason Replaced
    assert kube.calls["cancel_simjob"] == 1


def test_forbid_fails_the_newer_run_with_run_in_progress() -> None:
    kube = world(
        run("first", "2025-01-01T12:00:00Z", status=admitted_status("Running")),
        run("second", "2025-01-01T12:00:05Z", concurrencyPolicy="Forbid"),
    )
    assert one_pass(kube) == []
    status = kube.status_of("lab", "second")
    assert (status["phase"], status["reason"]) == ("Failed", Reason.RUN_IN_PROGRESS)
    assert "first" in status["message"]
    assert "cancel" not in body_of(kube, "first")["spec"]


def test_two_concurrent_submits_are_decided_one_way_also_after_a_restart() -> None:
    bodies = (
        run("a", "2025-01-01T12:00:00Z", concurrencyPolicy="Forbid"),
        run("b", "2025-01-01T12:00:00Z", concurrencyPolicy="Forbid"),  # same second: by name
    )
    kube = world(*bodies)
    assert one_pass(kube) == ["a"]
    assert kube.status_of("lab", "b")["reason"] == Reason.RUN_IN_PROGRESS
    # A new admitter (an operator restarted) decides nothing differently.
    from tests.unit import test_admitting

    test_admitting.CACHES.pop(id(kube), None)
    assert one_pass(kube) == []
    assert kube.status_of("lab", "a")["reason"] == Reason.ADMITTED


def test_reuse_ends_succeeded_without_a_slot_or_a_job() -> None:
    done_status = {
        "phase": "Succeeded",
        "reason": Reason.COMPLETED,
        "workspace": {"claimName": "outputs", "path": "lab/done-u1"},
    }
    kube = world(
        run("done", "2025-01-01T11:00:00Z", status=done_status, inputHash="h1"),
        run("again", "2025-01-01T12:00:00Z", inputHash="h1", reuse="IfSucceeded"),
    )
    assert one_pass(kube) == []
    status = kube.status_of("lab", "again")
    assert (status["phase"], status["reason"]) == ("Succeeded", Reason.REUSED)
    assert status["reusedFrom"]["name"] == "done"
    assert status["workspace"] == {"claimName": "outputs", "path": "lab/done-u1"}
    assert kube.calls["create_job"] == 0
    assert "grant" not in status  # no slot was ever held


def test_watch_keeps_the_run_key_index() -> None:
    kube = world(run("first", "2025-01-01T12:00:00Z", status=admitted_status("Running")))
    one_pass(kube)
    kube.add_simjob(run("second", "2025-01-01T12:00:05Z"))
    watch(kube, "second")
    assert one_pass(kube) == ["second"]
    assert body_of(kube, "first")["spec"]["cancel"] is True
