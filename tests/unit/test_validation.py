"""Resolving a SimJob against its SimTier (simjob_operator.core.validation) and the
quantity parser it relies on. Pure; no cluster.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import SimJobSpec
from simjob_operator.api.simtier import SimTierSpec
from simjob_operator.core.phases import Rejection
from simjob_operator.core.quantities import QuantityError, cpu_cores, memory_bytes, parse_quantity
from simjob_operator.core.validation import Effective, resolve
from simjob_operator.core.view import SimJobRecord, parse_tier
from tests.support.bodies import simjob_body, tier_spec


def run(tier_: dict[str, Any] | None = None, **spec: Any) -> Effective | Rejection:
    rec = SimJobRecord.from_body(simjob_body(**spec))
    tier_model = SimTierSpec.model_validate(tier_) if tier_ is not None else None
    return resolve(
        rec.spec,
        namespace=rec.namespace,
        tier_name=rec.tier_name,
        tier=tier_model,
        spec_error=rec.spec_error,
    )


def test_effective_defaults_from_the_tier() -> None:
    result = run(tier_spec(gpu=1, priorityClassName="batch-low", ttlSecondsAfterFinished=30))
    assert isinstance(result, Effective)
    grant = result.grant
    assert (grant.cpu, grant.memory, grant.gpu, cpu_cores(grant.cpu)) == ("2", "4Gi", 1, 2.0)
    assert result.grant.max_runtime_seconds == 600
    assert result.max_concurrent_per_owner == 1
    assert result.owner == "lab"  # the namespace
    assert result.grant.priority_class_name == "batch-low"
    assert result.grant.ttl_seconds_after_finished == 30


def test_spec_runtime_and_owner_win_when_allowed() -> None:
    result = run(tier_spec(), maxRuntimeSeconds=600, owner="alice")
    assert isinstance(result, Effective)
    assert result.grant.max_runtime_seconds == 600
    assert result.owner == "alice"


@pytest.mark.parametrize(
    ("tier", "spec", "reason"),
    [
        (None, {}, Reason.UNKNOWN_TIER),
        (tier_spec(), {"maxRuntimeSeconds": 601}, Reason.RUNTIME_ABOVE_TIER),
        (tier_spec(), {"image": None}, Reason.INVALID_SPEC),
        (tier_spec(), {"backend": "kubernetes", "image": None}, Reason.INVALID_SPEC),
        (tier_spec(), {"backend": "slurm"}, Reason.BACKEND_UNAVAILABLE),
        (tier_spec(), {"backend": "slurm", "image": None}, Reason.BACKEND_UNAVAILABLE),
        (tier_spec(), {"podMetadata": {"labels": {"simjob.io/x": "1"}}}, Reason.INVALID_SPEC),
        (
            tier_spec(),
            {"podMetadata": {"annotations": {"simjob.io/y": "1"}}},
            Reason.INVALID_SPEC,
        ),
        (tier_spec(), {"command": []}, Reason.INVALID_SPEC),
        (None, {"image": None}, Reason.INVALID_SPEC),  # spec problems are reported first
    ],
)
def test_rejections(tier: dict[str, Any] | None, spec: dict[str, Any], reason: str) -> None:
    if spec.get("image", "x") is None:
        spec = {k: v for k, v in spec.items() if k != "image"}
        body = simjob_body(**spec)
        del body["spec"]["image"]
        rec = SimJobRecord.from_body(body)
        tier_model = SimTierSpec.model_validate(tier) if tier is not None else None
        result = resolve(rec.spec, namespace="lab", tier_name=rec.tier_name, tier=tier_model)
    else:
        result = run(tier, **spec)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.message


def test_messages_name_the_problem() -> None:
    unknown = run(None, tier="ghost")
    assert isinstance(unknown, Rejection)
    assert "'ghost'" in unknown.message
    above = run(tier_spec(), maxRuntimeSeconds=601)
    assert isinstance(above, Rejection)
    assert "601" in above.message
    assert "600" in above.message


def test_unusable_tier() -> None:
    tier, error = parse_tier({"spec": {"cpu": "lots"}})
    assert tier is None
    assert error
    result = resolve(
        SimJobSpec.model_validate(simjob_body()["spec"]),
        namespace="lab",
        tier_name="small",
        tier=tier,
        tier_error=error,
    )
    assert isinstance(result, Rejection)
    assert result.reason == Reason.UNKNOWN_TIER
    assert "not usable" in result.message


def test_slurm_allowed_when_available() -> None:
    rec = SimJobRecord.from_body(simjob_body(backend="slurm"))
    result = resolve(
        rec.spec,
        namespace="lab",
        tier_name="small",
        tier=SimTierSpec.model_validate(tier_spec()),
        slurm_available=True,
    )
    assert isinstance(result, Effective)
    assert result.backend == "slurm"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("1.5", Decimal("1.5")),
        ("1k", Decimal(1000)),
        ("1Ki", Decimal(1024)),
        ("4Gi", Decimal(4 * 2**30)),
        ("1e3", Decimal(1000)),
        ("250u", Decimal("0.00025")),
        (".5", Decimal("0.5")),
        ("2E-1", Decimal("0.2")),
    ],
)
def test_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_quantity_helpers() -> None:
    assert cpu_cores("250m") == 0.25
    assert memory_bytes("1Gi") == 2**30
    assert memory_bytes("1.5") == 2
    with pytest.raises(QuantityError):
        parse_quantity("lots")
    with pytest.raises(QuantityError):
        parse_quantity("1Qi")


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "1",
        "500m",
        "2",
        "1.5",
        ".5",
        "4Gi",
        "512Mi",
        "1e3",
        "1E-3",
        "100k",
        "3M",
        "7Ti",
        "1Ei",
        "12345678901234567890",
        "0.000001",
        "250u",
        "9n",
        "1e400",
    ],
)
def test_our_quantity_parser_agrees_with_the_kubernetes_clients(text: str) -> None:
    """core stays free of the kubernetes package (an import contract); its parser must
    give exactly what ``kubernetes.utils.quantity.parse_quantity`` gives."""
    from kubernetes.utils.quantity import parse_quantity as client_parse

    assert parse_quantity(text) == client_parse(text)
