"""Run keys and result reuse (issue 13 items 3 and 4): the SDK's seam until the models
carry them.

The operator's side (``spec.runKey``, ``spec.concurrencyPolicy``, ``spec.inputHash``,
``spec.reuse``) is being added to ``simjob_operator.api.simjob.SimJobSpec``. The SDK
never invents fields: ``with_run_fields`` sets them only when the installed models have
them (looked up by name in ``SimJobSpec.model_fields``) and raises ``Unsupported``
otherwise, so ``submit(run_key=...)`` works as soon as the models land, with no SDK
change. ``rerun_spec`` makes the spec of a rerun: the same spec, not cancelled, and
``reuse: Never`` when the models know reuse (Sirepo's forceRun). Used by
``simjob_sdk.client``.
"""

from __future__ import annotations

from typing import Any

from simjob_operator.api.simjob import SimJobSpec
from simjob_sdk.errors import SimJobError

# Python field name -> what the issue calls it on the wire.
RUN_FIELDS = {"run_key": "runKey", "input_hash": "inputHash", "reuse": "reuse"}
REUSE_NEVER = "Never"


class Unsupported(SimJobError):
    """The installed API models do not have this field yet."""


def supported(field: str) -> bool:
    return field in SimJobSpec.model_fields


def with_run_fields(spec: SimJobSpec, **values: str | None) -> SimJobSpec:
    """``spec`` with ``run_key``/``input_hash``/``reuse`` set (those not None)."""
    update: dict[str, Any] = {}
    for field, value in values.items():
        if value is None:
            continue
        if field not in RUN_FIELDS:
            raise TypeError(f"unknown run field {field!r}")
        if not supported(field):
            raise Unsupported(
                f"spec.{RUN_FIELDS[field]} is not in this version of the SimJob API models "
                "(issue 13 items 3-4: run keys and result reuse)"
            )
        update[field] = value
    if not update:
        return spec
    return SimJobSpec.model_validate({**spec.model_dump(), **update})


def rerun_spec(spec: SimJobSpec) -> SimJobSpec:
    """The spec of a rerun: same inputs, not cancelled, never reusing a result."""
    data = spec.model_dump()
    data["cancel"] = False
    if supported("reuse"):
        data["reuse"] = REUSE_NEVER
    return SimJobSpec.model_validate(data)
