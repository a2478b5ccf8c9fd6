"""Times as Kubernetes writes them: RFC 3339 in UTC, second precision. Pure.

Used by ``core.view``, ``core.statuses``, the reconciler and the backends.
"""

from __future__ import annotations

from datetime import UTC, datetime

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC, second precision, as Kubernetes writes timestamps."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str | None) -> datetime | None:
    """Inverse of ``format_time``; also accepts fractional seconds and offsets."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
