"""Reading the bad-manifest corpus (tests/corpus/): its files and their headers.

``bad/schema/*.yaml`` start with ``# expect: <substring of the API server's
error>``; one document is a create, two are a valid original then the rejected
update. ``bad/semantic/*.yaml`` start with ``# expect-reason: <Reason>``: the
schema accepts them, the operator ends them Failed with that reason (they need
``tiers.yaml`` applied first). Used by tests/unit/test_corpus_shape.py,
tests/unit/test_schema_offline.py, tests/integration/test_schema_corpus.py and
the operator's semantic-corpus test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
SCHEMA_DIR = CORPUS / "bad" / "schema"
SEMANTIC_DIR = CORPUS / "bad" / "semantic"
TIERS_FILE = CORPUS / "tiers.yaml"

HEADERS = {"schema": "# expect: ", "semantic": "# expect-reason: "}


@dataclass(frozen=True)
class CorpusCase:
    """One corpus file: what it expects and its YAML documents in order."""

    path: Path
    expect: str
    documents: list[dict[str, Any]]

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def final(self) -> dict[str, Any]:
        """The document that must be rejected (schema) or fail (semantic)."""
        return self.documents[-1]

    @property
    def is_update(self) -> bool:
        return len(self.documents) == 2


def read_case(path: Path, kind: Literal["schema", "semantic"]) -> CorpusCase:
    """Parse one corpus file; raises ValueError when its header is missing."""
    text = path.read_text(encoding="utf-8")
    first, _, _ = text.partition("\n")
    header = HEADERS[kind]
    if not first.startswith(header) or not first.removeprefix(header).strip():
        raise ValueError(f"{path}: first line must be {header!r} followed by the expectation")
    documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    return CorpusCase(path=path, expect=first.removeprefix(header).strip(), documents=documents)


def cases(kind: Literal["schema", "semantic"]) -> list[CorpusCase]:
    """Every case of one kind, sorted by file name."""
    directory = SCHEMA_DIR if kind == "schema" else SEMANTIC_DIR
    return [read_case(path, kind) for path in sorted(directory.glob("*.yaml"))]
