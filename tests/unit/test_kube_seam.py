"""The API seam's own logic, without a server: HTTP failures judged once
(kube.translate), the client-side token bucket (kube.ratelimit), and the SimJob cache
that admission reads (controller.cache: newer bodies win, dirty slot keys).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from simjob_operator.controller.cache import SimJobCache
from simjob_operator.kube.ratelimit import TokenBucket
from simjob_operator.kube.seam import (
    AlreadyExists,
    Conflict,
    Gone,
    KubeError,
    Refused,
    Unavailable,
)
from simjob_operator.kube.translate import translate
from tests.support.bodies import simjob_body


def api_error(status: int, body: str = "", headers: dict[str, str] | None = None) -> ApiException:
    error = ApiException(status=status, reason="x")
    error.body = body
    error.headers = headers or {}
    return error


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (409, '{"reason": "AlreadyExists", "message": "x already exists"}', AlreadyExists),
        (409, '{"reason": "Conflict", "message": "the object has been modified"}', Conflict),
        (404, '{"message": "not found"}', Gone),
        (422, '{"message": "Job x is invalid: metadata.labels: Invalid value"}', Refused),
        (403, '{"message": "forbidden"}', Refused),
        (400, "not json", Refused),
        (429, '{"message": "too many requests"}', Unavailable),
        (503, "", Unavailable),
    ],
)  # fmt: skip
def test_statuses_are_judged_once(status: int, body: str, kind: type[KubeError]) -> None:
    error = translate(api_error(status, body), "CREATE Job lab/x")
    assert type(error) is kind
    assert error.status == status
    assert error.message.startswith("CREATE Job lab/x: ")


def test_the_servers_message_and_retry_after_survive() -> None:
    error = translate(api_error(422, '{"message": "spec.x: Invalid value"}'), "PATCH")
    assert error.message == "PATCH: spec.x: Invalid value"
    busy = translate(api_error(429, "", {"Retry-After": "3"}), "LIST")
    assert isinstance(busy, Unavailable)
    assert busy.retry_after == 3.0


def test_a_connection_failure_is_temporary() -> None:
    error = translate(MaxRetryError(None, "/api", "Connection refused"), "GET SimJob lab/x")  # type: ignore[arg-type]
    assert isinstance(error, Unavailable)
    assert error.status is None


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(qps=10, burst=5, clock=lambda: now[0])

    async def main() -> list[float]:
        waits: list[float] = []
        for _ in range(5):
            waits.append(bucket.delay())
            await bucket.acquire()  # the burst: no wait
        waits.append(bucket.delay())
        return waits

    waits = asyncio.run(main())
    assert waits[:5] == [0.0] * 5
    assert waits[5] == pytest.approx(0.1)  # one token per 1/qps seconds
    now[0] += 0.1
    assert bucket.delay() == 0.0
    with pytest.raises(ValueError, match="qps"):
        TokenBucket(qps=0, burst=1)


def versioned(rv: str, **status: Any) -> dict[str, Any]:
    body = simjob_body("sim", status=status or None)
    body["metadata"]["resourceVersion"] = rv
    body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    return body


def test_the_cache_keeps_the_newest_body_and_marks_its_slot_dirty() -> None:
    cache = SimJobCache()
    assert cache.observe(versioned("10", phase="Queued")) is not None
    assert cache.take_dirty()  # its slot key changed
    assert cache.observe(versioned("9", phase="Pending")) is None  # an older event
    held = cache.get(("lab", "sim"))
    assert held is not None
    assert held.status.phase == "Queued"
    assert "managedFields" not in held.body["metadata"]
    assert not cache.take_dirty()
    cache.observe(versioned("11", phase="Running"))
    assert len(cache.take_dirty()) == 1
    cache.forget(("lab", "sim"))
    assert cache.get(("lab", "sim")) is None
    assert len(cache.take_dirty()) == 1  # a freed slot is a change too
