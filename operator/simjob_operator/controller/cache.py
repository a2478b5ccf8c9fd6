"""The operator's view of every SimJob it serves, kept honest by watches and writes.

``SimJobCache`` holds the newest body of each SimJob: seeded by one LIST at start
(``seed``), then fed by every watch event (``observe``, from ``controller.handlers``)
and by every status write the operator makes (``stored``, from
``controller.recorder``: write-through, so a decision never waits for the echo of its
own write). A body only replaces a newer one never: resourceVersions of one resource
are compared as numbers, as etcd's revisions are (an unparseable one always wins).
Deleted SimJobs leave with their DELETED event. ``managedFields`` are dropped: the
operator never reads them and they are most of a body's size.

The admitter (``controller.admitter``) reads it instead of LISTing the cluster, and
asks only about the slot keys that changed since its last pass (``take_dirty``): an
admission pass costs O(what changed), not O(every SimJob). Staleness is safe: the
admitter is the only writer of Admitted=True and sees its own writes at once, so a
stale body can only hide a freed slot (a later event frees it), never invent one.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from simjob_operator.core.slots import SlotKey, slot_key
from simjob_operator.core.view import Key, SimJobRecord

Body = dict[str, Any]


def _version(body: Mapping[str, Any]) -> int | None:
    text = (body.get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(text))
    except ValueError:
        return None


def _key(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def slim(body: Mapping[str, Any]) -> Body:
    """A plain copy without what the operator never reads."""
    plain = {key: copy.deepcopy(value) for key, value in body.items() if key != "metadata"}
    meta = dict(body.get("metadata") or {})
    meta.pop("managedFields", None)
    plain["metadata"] = copy.deepcopy(meta)
    return plain


class SimJobCache:
    def __init__(self) -> None:
        self._records: dict[Key, SimJobRecord] = {}
        self._slots: dict[SlotKey, set[Key]] = defaultdict(set)
        self._slot_of: dict[Key, SlotKey] = {}
        self._dirty: set[SlotKey] = set()
        self._run_keys: dict[tuple[str, str], set[Key]] = defaultdict(set)
        self.seeded = False

    def __len__(self) -> int:
        return len(self._records)

    # ------------------------------------------------------------------ feeding

    def seed(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """The result of a LIST at start (newer watch events already seen are kept)."""
        for body in bodies:
            self.observe(body)
        self.seeded = True

    def observe(self, body: Mapping[str, Any]) -> SimJobRecord | None:
        """A body from a watch event or a write; returns the record now held, or None
        when the body was older than the one held."""
        key = _key(body)
        held = self._records.get(key)
        if held is not None and held.uid == str((body.get("metadata") or {}).get("uid")):
            new, old = _version(body), _version(held.body)
            if new is not None and old is not None and new < old:
                return None
        record = SimJobRecord.from_plain(slim(body))
        self._put(key, record)
        return record

    stored = observe  # what the recorder calls with the body a write returned

    def forget(self, key: Key) -> None:
        """The SimJob was deleted."""
        old = self._records.pop(key, None)
        if old is not None:
            self._unindex_run_key(key, old)
        slot = self._slot_of.pop(key, None)
        if slot is not None:
            self._slots[slot].discard(key)
            if not self._slots[slot]:
                del self._slots[slot]
            self._dirty.add(slot)

    def _unindex_run_key(self, key: Key, record: SimJobRecord) -> None:
        run_key = record.spec.run_key if record.spec is not None else None
        if run_key is not None:
            keys = self._run_keys.get((record.namespace, run_key))
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._run_keys[(record.namespace, run_key)]

    def _put(self, key: Key, record: SimJobRecord) -> None:
        previous = self._records.get(key)
        if previous is not None:
            self._unindex_run_key(key, previous)
        self._records[key] = record
        if record.spec is not None and record.spec.run_key is not None:
            self._run_keys[(record.namespace, record.spec.run_key)].add(key)
        slot = slot_key(record)
        old = self._slot_of.get(key)
        if old is not None and old != slot:
            self._slots[old].discard(key)
            self._dirty.add(old)
        if slot is not None:
            self._slots[slot].add(key)
            self._slot_of[key] = slot
            self._dirty.add(slot)
        else:
            self._slot_of.pop(key, None)

    # ------------------------------------------------------------------ reading

    def get(self, key: Key) -> SimJobRecord | None:
        return self._records.get(key)

    def body(self, key: Key) -> Body | None:
        record = self._records.get(key)
        return record.body if record is not None else None

    def records(self) -> Iterator[SimJobRecord]:
        return iter(list(self._records.values()))

    def with_run_key(self, namespace: str, run_key: str) -> list[SimJobRecord]:
        """The SimJobs of one runKey in one namespace (core.runkeys)."""
        keys = sorted(self._run_keys.get((namespace, run_key), ()))
        return [self._records[key] for key in keys]

    def in_slot(self, slot: SlotKey) -> list[SimJobRecord]:
        return [self._records[key] for key in sorted(self._slots.get(slot, ()))]

    def take_dirty(self) -> set[SlotKey]:
        """The slot keys whose SimJobs changed since the last call."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def mark_dirty(self, slots: Iterable[SlotKey] | None = None) -> None:
        """Decide these slot keys again (all of them when None: e.g. a tier changed)."""
        self._dirty.update(self._slots if slots is None else slots)
