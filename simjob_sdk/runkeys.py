"""Run keys and result reuse on the SDK's side: set them on a spec, make a rerun's spec.

``spec.runKey``, ``spec.concurrencyPolicy``, ``spec.inputHash`` and ``spec.reuse`` are
fields of ``simjob_operator.api.simjob.SimJobSpec`` (decided by the operator's admitter,
``core/runkeys.py``). ``with_run_fields`` sets the keyword arguments of
``SimJobClient.submit`` on a spec; ``rerun_spec`` makes the spec of a rerun: the same
spec, not cancelled, ``reuse: Never`` (Sirepo's forceRun). Used by ``simjob_sdk.client``
and ``simjob_sdk.aio``.
"""

from __future__ import annotations

from typing import Any

from simjob_operator.api.simjob import SimJobSpec

REUSE_NEVER = "Never"


def with_run_fields(
    spec: SimJobSpec,
    *,
    run_key: str | None = None,
    input_hash: str | None = None,
    reuse: str | None = None,
) -> SimJobSpec:
    """``spec`` with ``run_key``/``input_hash``/``reuse`` set (those not None), validated
    by the models as any spec (a bad value is a pydantic ``ValidationError``)."""
    values = {"run_key": run_key, "input_hash": input_hash, "reuse": reuse}
    update: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
    if not update:
        return spec
    return SimJobSpec.model_validate({**spec.model_dump(), **update})


def rerun_spec(spec: SimJobSpec) -> SimJobSpec:
    """The spec of a rerun: same inputs, not cancelled, never reusing a result."""
    return SimJobSpec.model_validate({**spec.model_dump(), "cancel": False, "reuse": REUSE_NEVER})
