"""The foundation of the generated bad-input corpus: ``GenCase`` (manifests and the
expected outcome), the valid SimJob and SimTier every case starts from, the builder the
case definitions in ``corpus_gen`` use, and the API server's message fragments.

Neighbours: tests/support/corpus_gen.py (the cases; its docstring explains the
outcomes), tests/integration/test_bad_input_schema.py and test_bad_input_operator.py.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Literal

API = "simjob.io/v1alpha1"
TIER = "corpus-gen-wide"  # created by the runners (see ``TIERS``)
Outcome = Literal["rejected", "accepted", "failed", "edit", "succeeded"]
Doc = dict[str, Any]

# Tiers the runners apply first: generous slots so nothing queues behind another case.
TIERS: tuple[Doc, ...] = (
    {
        "apiVersion": API,
        "kind": "SimTier",
        "metadata": {"name": TIER},
        "spec": {"cpu": "100m", "memory": "64Mi", "maxRuntimeSeconds": 120,
                 "maxConcurrentPerOwner": 100},
    },
)  # fmt: skip
TIER_MAX_RUNTIME = 120

# Messages (substrings of what the API server says).
TYPE = "in body must be of type"
TOO_LONG = "Too long: may not be more than"
TOO_MANY = "must have at most"
CONTROL = r"in body should match '^[^\x00-\x08\x0B-\x1F\x7F-\x9F]*$'"
QUALIFIED = "is not a qualified name"
LABEL_VALUE = "label values must be empty or at most 63"
RESERVED_KUBE = "is set by Kubernetes or the operator"
IMMUTABLE = "is immutable: create a new SimJob (only spec.cancel may change)"
ADDED_REMOVED = "cannot be added or removed after creation"
QUANTITY = "should match '^(([0-9]+"


@dataclass(frozen=True)
class GenCase:
    """One generated case; see the module docstring for the outcomes."""

    id: str
    outcome: Outcome
    documents: tuple[Doc, ...]
    expect: str = ""
    patch: Doc | None = field(default=None)

    @property
    def final(self) -> Doc:
        return self.documents[-1]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:50].strip("-")


def simjob(name: str, **spec: Any) -> Doc:
    body: Doc = {"tier": TIER, "image": "busybox:1.36", "command": ["true"]}
    body.update(spec)
    return {"apiVersion": API, "kind": "SimJob", "metadata": {"name": name}, "spec": body}


def simtier(name: str, **spec: Any) -> Doc:
    body: Doc = {"cpu": "1", "memory": "1Gi", "maxRuntimeSeconds": 60}
    body.update(spec)
    return {"apiVersion": API, "kind": "SimTier", "metadata": {"name": name}, "spec": body}


class Builder:
    """Collects cases; names come from a description (slug), prefixed per kind."""

    def __init__(self) -> None:
        self.cases: list[GenCase] = []

    def sj(self, what: str, outcome: Outcome, expect: str, **spec: Any) -> None:
        name = f"gen-{slug(what)}"
        self.cases.append(GenCase(name, outcome, (simjob(name, **spec),), expect))

    def sj_doc(self, what: str, outcome: Outcome, expect: str, doc: Doc) -> None:
        name = f"gen-{slug(what)}"
        doc = copy.deepcopy(doc)
        doc["metadata"].setdefault("name", name)
        self.cases.append(GenCase(name, outcome, (doc,), expect))

    def st(self, what: str, outcome: Outcome, expect: str, **spec: Any) -> None:
        name = f"corpus-gen-{slug(what)}"
        self.cases.append(GenCase(name, outcome, (simtier(name, **spec),), expect))

    def update(self, what: str, expect: str, original: Doc, changed: Doc) -> None:
        name = f"gen-upd-{slug(what)}"
        first = simjob(name, **original)
        second = simjob(name, **changed)
        second["spec"] = {k: v for k, v in second["spec"].items() if v is not None}
        outcome: Outcome = "rejected" if expect else "accepted"
        self.cases.append(GenCase(name, outcome, (first, second), expect))


def unique(cases: list[GenCase]) -> list[GenCase]:
    """Two descriptions with one slug ("1 " and " 1") get -2, -3... (id and names)."""
    seen: dict[str, int] = {}
    out = []
    for case in cases:
        seen[case.id] = seen.get(case.id, 0) + 1
        if seen[case.id] == 1:
            out.append(case)
            continue
        new_id = f"{case.id}-{seen[case.id]}"
        docs = copy.deepcopy(case.documents)
        for doc in docs:
            if doc["metadata"].get("name") == case.id:
                doc["metadata"]["name"] = new_id
        out.append(GenCase(new_id, case.outcome, docs, case.expect, case.patch))
    return out
