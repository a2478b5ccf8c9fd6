"""The pydantic -> structural OpenAPI conversion on small models: inlining,
Optional collapsing, bound conversion, items merging, and what it refuses.

Neighbours: simjob_operator.api.structural_schema, tests/unit/test_crd_generation.py
(the same conversion applied to the real API).
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from simjob_operator.api.structural_schema import SchemaError, structural_schema


class _Inner(BaseModel):
    """Inner doc."""

    n: int = Field(gt=0, lt=10, description="n.")
    x: float = Field(default=0.5, gt=0, description="x.")


class _Toy(BaseModel):
    """Toy doc."""

    inner: _Inner | None = Field(default=None, description="Field doc wins.")
    names: list[str] = Field(
        default_factory=list,
        description="Names.",
        json_schema_extra={"items": {"maxLength": 5}, "maxItems": 3},
    )
    tags: dict[str, str] = Field(default_factory=dict, max_length=4, description="Tags.")
    maybe: str | None = Field(default=None, description="Maybe.")


def test_converter_inlines_collapses_and_merges() -> None:
    schema = structural_schema(_Toy)
    assert schema["description"] == "Toy doc."
    inner = schema["properties"]["inner"]
    assert inner["description"] == "Field doc wins."
    assert inner["type"] == "object"
    assert inner["required"] == ["n"]
    assert inner["properties"]["n"] == {
        "type": "integer", "minimum": 1, "maximum": 9, "description": "n."
    }  # fmt: skip
    assert inner["properties"]["x"] == {
        "type": "number", "minimum": 0, "exclusiveMinimum": True, "default": 0.5,
        "description": "x.",
    }  # fmt: skip
    names = schema["properties"]["names"]
    assert names["items"] == {"type": "string", "maxLength": 5}
    assert names["maxItems"] == 3
    assert schema["properties"]["tags"] == {
        "type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 4,
        "description": "Tags.",
    }  # fmt: skip
    assert schema["properties"]["maybe"] == {"type": "string", "description": "Maybe."}


class _TwoTypes(BaseModel):
    """Doc."""

    v: int | str = Field(description="Either.")


class _Set(BaseModel):
    """Doc."""

    v: set[str] = Field(description="A set.")


class _Undocumented(BaseModel):
    """Doc."""

    v: int


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_TwoTypes, "anyOf of 2 non-null types"),
        (_Set, "uniqueItems"),
        (_Undocumented, "missing description"),
    ],
)
def test_converter_refuses_what_a_structural_crd_cannot_say(
    model: type[BaseModel], message: str
) -> None:
    with pytest.raises(SchemaError, match=message):
        structural_schema(model)
