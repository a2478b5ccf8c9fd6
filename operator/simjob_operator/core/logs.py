"""Log lines that always say which SimJob they are about.

``simjob_logger(record)`` returns a ``logging.LoggerAdapter`` that prefixes every
message with ``[namespace/name uid=… phase=… backend=…]`` and also puts those
fields into the record's ``extra`` (for JSON log formatters). ``reconciling``,
``admitting`` and the handlers log about SimJobs only through it, so that an
exception is never logged without the object's identity.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

from simjob_operator.core.records import SimJobRecord

LOGGER_NAME = "simjob_operator"
logger = logging.getLogger(LOGGER_NAME)


class SimJobLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger bound to one SimJob's identity."""

    def __init__(self, base: logging.Logger, fields: Mapping[str, object]) -> None:
        super().__init__(base, dict(fields))

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        fields = dict(self.extra or {})
        prefix = (
            f"[{fields.get('namespace')}/{fields.get('name')} uid={fields.get('uid')} "
            f"phase={fields.get('phase') or 'Pending'} backend={fields.get('backend_id') or '-'}]"
        )
        extra = dict(kwargs.get("extra") or {})
        extra.update({f"simjob_{key}": value for key, value in fields.items()})
        kwargs["extra"] = extra
        return f"{prefix} {msg}", kwargs

    def bind(self, **fields: object) -> SimJobLogger:
        """The same logger with some fields replaced (e.g. the new phase)."""
        return SimJobLogger(self.logger, {**(self.extra or {}), **fields})


def simjob_logger(
    record: SimJobRecord, *, backend_id: str | None = None, base: logging.Logger | None = None
) -> SimJobLogger:
    backend = backend_id
    if backend is None and record.status.backend_ref is not None:
        ref = record.status.backend_ref
        backend = ref.name or ref.id
    return SimJobLogger(
        base or logger,
        {
            "namespace": record.namespace,
            "name": record.name,
            "uid": record.uid,
            "phase": record.status.phase,
            "backend_id": backend,
        },
    )


def key_logger(namespace: str, name: str, base: logging.Logger | None = None) -> SimJobLogger:
    """For a SimJob known only by its key (e.g. before it was read)."""
    return SimJobLogger(
        base or logger,
        {"namespace": namespace, "name": name, "uid": None, "phase": None, "backend_id": None},
    )
