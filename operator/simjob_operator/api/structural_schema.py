"""Structural schemas: pydantic models as the apiextensions API server wants them.

pydantic's JSON schema of a model is rewritten into a *structural* OpenAPI v3
schema: every node typed, ``$ref`` definitions inlined (a field's description wins
over its class docstring), ``Optional[X]`` (``anyOf [X, null]``) collapsed to ``X``,
no titles, no ``default: null``, JSON-Schema-2020 numeric exclusive bounds turned
into OpenAPI v3 ones, ``x-kubernetes-*`` keys from ``json_schema_extra`` kept and an
``items`` entry there merged into (not substituted for) the list's item schema.
Whatever a structural CRD cannot say raises ``SchemaError`` with the field's path.

Neighbours: ``crd_generation`` (wraps these schemas into CRDs), ``models`` (input).
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel, TypeAdapter

JsonDict = dict[str, Any]

# The JSONSchemaProps keywords this generator may emit. Anything else coming out of
# pydantic (const, uniqueItems, $ref, anyOf of two types, ...) is an error, not a
# silently broken CRD.
ALLOWED_KEYWORDS: Final = frozenset(
    {
        "type", "description", "format", "default", "enum", "pattern",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
        "required", "properties", "items", "additionalProperties",
        "x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type", "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string", "x-kubernetes-embedded-resource",
    }
)  # fmt: skip
TYPES: Final = frozenset({"object", "array", "string", "integer", "number", "boolean"})


class SchemaError(ValueError):
    """A model yields a schema that a structural CRD cannot express."""


@dataclass
class _Context:
    defs: JsonDict
    # (model name, property alias) -> (list item type, json_schema_extra["items"])
    item_extras: dict[tuple[str, str], tuple[Any, JsonDict]] = field(default_factory=dict)


def structural_schema(model: type[BaseModel]) -> JsonDict:
    """The model's JSON schema, rewritten into a structural OpenAPI v3 schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    ctx = _Context(defs=raw.pop("$defs", {}), item_extras=_item_extras(model))
    return _convert(raw, ctx, model.__name__, model.__name__, needs_description=True)


def _convert(
    node: JsonDict,
    ctx: _Context,
    path: str,
    model_name: str | None,
    *,
    needs_description: bool = False,
) -> JsonDict:
    """``needs_description``: the node is a property (or the root)."""
    node = copy.deepcopy(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        def_name = ref.removeprefix("#/$defs/")
        # The field's own keys (description, default, rules) win over the class's.
        merged = {**copy.deepcopy(ctx.defs[def_name]), **node}
        merged["x-kubernetes-validations"] = _rules(ctx.defs[def_name]) + _rules(node)
        if not merged["x-kubernetes-validations"]:
            del merged["x-kubernetes-validations"]
        return _convert(merged, ctx, path, def_name, needs_description=needs_description)
    branches = node.pop("anyOf", None)
    if branches is not None:
        real = [b for b in branches if b != {"type": "null"}]
        if len(real) != 1:
            raise SchemaError(f"{path}: anyOf of {len(real)} non-null types is not structural")
        return _convert(
            {**real[0], **node}, ctx, path, model_name, needs_description=needs_description
        )

    node.pop("title", None)
    if "default" in node and node["default"] is None:
        del node["default"]
    _inclusive_bounds(node)
    _check_node(node, path, needs_description=needs_description)

    if "properties" in node:
        props: JsonDict = {}
        for key, sub in node["properties"].items():
            extra = ctx.item_extras.get((model_name or "", key))
            if extra is not None:
                sub = {**sub, "items": _merged_items(ctx, *extra)}
            props[key] = _convert(sub, ctx, f"{path}.{key}", None, needs_description=True)
        node["properties"] = props
    if isinstance(node.get("items"), dict):
        node["items"] = _convert(node["items"], ctx, f"{path}[]", None)
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _convert(
            node["additionalProperties"], ctx, f"{path}{{}}", None
        )
    return node


def _rules(node: JsonDict) -> list[Any]:
    return list(node.get("x-kubernetes-validations", []))


def _inclusive_bounds(node: JsonDict) -> None:
    """JSON Schema 2020 numeric exclusive bounds -> OpenAPI v3 (bool) or inclusive ints."""
    for exclusive, inclusive, step in (
        ("exclusiveMinimum", "minimum", 1),
        ("exclusiveMaximum", "maximum", -1),
    ):
        bound = node.get(exclusive)
        if bound is None or isinstance(bound, bool):
            continue
        del node[exclusive]
        if node.get("type") == "integer":
            node[inclusive] = bound + step
        else:
            node[inclusive] = bound
            node[exclusive] = True


def _check_node(node: JsonDict, path: str, *, needs_description: bool) -> None:
    unknown = sorted(set(node) - ALLOWED_KEYWORDS)
    if unknown:
        raise SchemaError(f"{path}: keywords not allowed in a structural CRD: {unknown}")
    untyped_ok = node.get("x-kubernetes-int-or-string") or node.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if node.get("type") not in TYPES and not untyped_ok:
        raise SchemaError(f"{path}: every node needs a type, got {node.get('type')!r}")
    if needs_description and not node.get("description"):
        raise SchemaError(f"{path}: missing description (it is the kubectl explain text)")


def _merged_items(ctx: _Context, item_type: Any, extra: JsonDict) -> JsonDict:
    """pydantic *replaces* ``items`` with a field's json_schema_extra; merge instead."""
    base = TypeAdapter(item_type).json_schema(by_alias=True, mode="validation")
    for name, definition in base.pop("$defs", {}).items():
        ctx.defs.setdefault(name, definition)
    return {**base, **extra}


def _item_extras(root: type[BaseModel]) -> dict[tuple[str, str], tuple[Any, JsonDict]]:
    found: dict[tuple[str, str], tuple[Any, JsonDict]] = {}
    for model in _models_under(root):
        for name, info in model.model_fields.items():
            extra = info.json_schema_extra
            items = extra.get("items") if isinstance(extra, dict) else None
            if isinstance(items, dict):
                item_type = _list_item_type(info.annotation)
                if item_type is None:
                    raise SchemaError(f"{model.__name__}.{name}: 'items' on a non-list field")
                found[(model.__name__, info.alias or name)] = (item_type, dict(items))
    return found


def _models_under(root: type[BaseModel]) -> Iterator[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    stack: list[type[BaseModel]] = [root]
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        yield model
        for info in model.model_fields.values():
            stack.extend(_models_in(info.annotation))


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _list_item_type(annotation: Any) -> Any:
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if (item := _list_item_type(arg)) is not None:
                return item
    return None
