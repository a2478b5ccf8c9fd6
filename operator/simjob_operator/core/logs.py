"""Log records that carry the identity of the object they are about.

As kopf's ``ObjectLogger`` does, the identity goes into the record's ``extra``,
never into the message text: ``object_ref`` (apiVersion, kind, namespace, name,
uid), ``phase`` and ``backend_id``. ``ObjectPrefixFormatter`` (installed over the
root handlers' formatters by ``install_formatter`` at start-up) adds the text prefix
``[namespace/name uid=… phase=… backend=…]``; JSON formatters (``kopf run
--log-format=json``) get the same values as fields. The key is ``object_ref``, not
kopf's ``k8s_ref``, because kopf turns records with ``k8s_ref`` into Kubernetes
Events, and only the reconciler posts Events. Used by every layer above ``core``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

from simjob_operator.api import names as c
from simjob_operator.core.view import SimJobRecord

LOGGER_NAME = "simjob_operator"
logger = logging.getLogger(LOGGER_NAME)
IDENTITY_KEYS = ("object_ref", "phase", "backend_id")


class ObjectLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger bound to one object's identity (in every record's ``extra``)."""

    def __init__(self, base: logging.Logger, fields: Mapping[str, Any]) -> None:
        super().__init__(base, dict(fields))

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **dict(kwargs.get("extra") or {})}
        return msg, kwargs

    def bind(self, **fields: Any) -> ObjectLogger:
        """The same logger with some fields replaced (e.g. the new phase)."""
        return ObjectLogger(self.logger, {**(self.extra or {}), **fields})


SimJobLogger = ObjectLogger


def object_logger(
    kind: str,
    *,
    namespace: str | None,
    name: str,
    uid: str | None = None,
    phase: str | None = None,
    backend_id: str | None = None,
    base: logging.Logger | None = None,
) -> ObjectLogger:
    ref = {
        "apiVersion": c.API_VERSION,
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "uid": uid,
    }
    return ObjectLogger(
        base or logger, {"object_ref": ref, "phase": phase, "backend_id": backend_id}
    )


def simjob_logger(
    record: SimJobRecord, *, backend_id: str | None = None, base: logging.Logger | None = None
) -> ObjectLogger:
    backend = backend_id
    if backend is None and record.status.backend_ref is not None:
        ref = record.status.backend_ref
        backend = ref.name or ref.id
    return object_logger(
        c.SIMJOB_KIND,
        namespace=record.namespace,
        name=record.name,
        uid=record.uid,
        phase=record.status.phase,
        backend_id=backend,
        base=base,
    )


def key_logger(namespace: str, name: str, base: logging.Logger | None = None) -> ObjectLogger:
    """For a SimJob known only by its key (e.g. before it was read)."""
    return object_logger(c.SIMJOB_KIND, namespace=namespace, name=name, base=base)


def cluster_logger(name: str, base: logging.Logger | None = None) -> ObjectLogger:
    """For a SlurmCluster (cluster-scoped)."""
    return object_logger(c.SLURMCLUSTER_KIND, namespace=None, name=name, base=base)


def prefix(record: logging.LogRecord) -> str | None:
    """``[namespace/name uid=… phase=… backend=…]`` for a record about an object."""
    ref = getattr(record, "object_ref", None)
    if not isinstance(ref, Mapping):
        return None
    where = f"{ref['namespace']}/{ref['name']}" if ref.get("namespace") else str(ref.get("name"))
    if ref.get("kind") != c.SIMJOB_KIND:
        return f"[{ref.get('kind')} {where}]"
    phase = getattr(record, "phase", None) or "Pending"
    backend = getattr(record, "backend_id", None) or "-"
    return f"[{where} uid={ref.get('uid')} phase={phase} backend={backend}]"


class ObjectPrefixFormatter(logging.Formatter):
    """Wraps a formatter: text gets the identity prefix; JSON keeps it as fields."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter("%(message)s")
        # python-json-logger's formatters (kopf's JSON format) add extras as fields.
        self.structured = hasattr(self.inner, "add_fields")

    def format(self, record: logging.LogRecord) -> str:
        text = prefix(record)
        if text is None or self.structured:
            return self.inner.format(record)
        shown = copy.copy(record)
        shown.msg = f"{text} {record.msg}"
        return self.inner.format(shown)


def install_formatter(root: logging.Logger | None = None) -> None:
    """Wrap the formatter of every handler of ``root`` (kopf's, once ``kopf run``
    configured logging) in an ``ObjectPrefixFormatter``. Idempotent."""
    for handler in (root or logging.getLogger()).handlers:
        if not isinstance(handler.formatter, ObjectPrefixFormatter):
            handler.setFormatter(ObjectPrefixFormatter(handler.formatter))
