"""Which status changes deserve an Event (simjob_operator.controller.recorder.event_for):
the end of a run (Warning when it failed or timed out) and a wait that is not routine;
never admission, start or a queue move. Pure; no cluster.
"""

from __future__ import annotations

from typing import Any

import pytest

from simjob_operator.api.reasons import Reason
from simjob_operator.controller.recorder import event_for
from simjob_operator.core.view import SimJobRecord
from tests.support.bodies import simjob_body


def at(phase: str | None, reason: str | None = None) -> SimJobRecord:
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if reason is not None:
        status["reason"] = reason
    return SimJobRecord.from_body(simjob_body(status=status or None))


@pytest.mark.parametrize(
    ("old", "new", "event"),
    [
        (at(None), at("Queued", Reason.WAITING_FOR_SLOT), None),
        (at("Queued", Reason.WAITING_FOR_SLOT), at("Queued", Reason.ADMITTED), None),
        (at("Queued", Reason.ADMITTED), at("Running", Reason.STARTED), None),
        (at("Running", Reason.STARTED), at("Running", Reason.CANCEL_REQUESTED), None),
        (at("Running", Reason.STARTED), at("Succeeded", Reason.COMPLETED), ("Normal", "Completed")),
        (at("Running", Reason.STARTED), at("Failed", "OOMKilled"), ("Warning", "OOMKilled")),
        (at("Running"), at("TimedOut", Reason.DEADLINE_EXCEEDED), ("Warning", "DeadlineExceeded")),
        (at("Running", Reason.CANCEL_REQUESTED), at("Cancelled", Reason.CANCEL_REQUESTED),
         ("Normal", "CancelRequested")),
        (at("Queued", Reason.ADMITTED), at("Queued", "Unschedulable"),
         ("Warning", "Unschedulable")),
        (at("Queued", "Unschedulable"), at("Queued", "Unschedulable"), None),  # said once
        (at("Queued", Reason.ADMITTED), at("Queued", "ContainerCreating"), None),
        (at("Queued", Reason.ADMITTED), at("Failed", Reason.UNSCHEDULABLE),
         ("Warning", "Unschedulable")),
    ],
)  # fmt: skip
def test_events_only_for_endings_and_unusual_waits(
    old: SimJobRecord, new: SimJobRecord, event: tuple[str, str] | None
) -> None:
    assert event_for(old, new) == event
