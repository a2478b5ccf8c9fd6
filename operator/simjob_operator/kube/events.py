"""The events.k8s.io/v1 Event the operator posts about an object. Pure.

``event_body`` builds it (a unique name, the reporting controller and instance, a
bounded note); ``kube.client.Kube.post_event`` sends it. The recorder decides which
status changes deserve one.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from simjob_operator.api import names as c

Body = dict[str, Any]


def micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_body(
    regarding: Body,
    *,
    type_: str,
    reason: str,
    message: str,
    action: str,
    instance: str,
    now: datetime,
) -> Body:
    meta = regarding.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {
            "name": f"{str(meta.get('name', 'simjob'))[:200]}.{secrets.token_hex(8)}",
            "namespace": namespace,
        },
        "eventTime": micro_time(now),
        "reportingController": c.EVENT_REPORTING_CONTROLLER,
        "reportingInstance": instance[:128],
        "action": action,
        "reason": reason,
        "note": message[:1024],
        "type": type_,
        "regarding": {
            "apiVersion": regarding.get("apiVersion", c.API_VERSION),
            "kind": regarding.get("kind", c.SIMJOB_KIND),
            "name": meta.get("name"),
            "namespace": namespace,
            "uid": meta.get("uid"),
        },
    }
