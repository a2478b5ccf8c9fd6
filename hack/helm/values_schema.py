"""Keeping the Helm chart's values.schema.json in step with the API models.

The chart creates SimTiers and SlurmClusters from its values (``simTiers``,
``slurmClusters``); values.schema.json checks their specs with the same fields,
types and limits as the CRDs, which ``simjob_operator.api.crd_generation`` makes from
``simjob_operator.api.simjob``. This script rewrites those two entries from the
generated CRDs (without the Kubernetes-only keys and defaults, and refusing unknown
keys); the rest of the file is written by hand.

    python hack/helm/values_schema.py           # rewrite (make crds)
    python hack/helm/values_schema.py --check   # exit 1 when it differs (make crds-check)

Neighbours: charts/simjob-operator/values.schema.json, tests/unit/test_chart_files.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simjob_operator.api.crd_generation import generate_crds

SCHEMA = Path(__file__).resolve().parents[2] / "charts" / "simjob-operator" / "values.schema.json"
# values key -> (CRD kind, the description of one entry)
ENTRIES = {
    "simTiers": (
        "SimTier",
        "A SimTier's spec (simjob.io/v1alpha1, docs/api.md): the CRD's fields and limits.",
    ),
    "slurmClusters": (
        "SlurmCluster",
        "A SlurmCluster's spec (simjob.io/v1alpha1, docs/slurm.md): the CRD's fields and "
        "limits; its cross-field rules are checked by the API server.",
    ),
}
JsonDict = dict[str, Any]


def as_json_schema(node: JsonDict) -> JsonDict:
    """A CRD schema node as JSON Schema for Helm: no x-kubernetes-* keys, no defaults
    (Helm would not apply them), unknown keys refused."""
    out: JsonDict = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "default":
            continue
        if key == "properties":
            value = {name: as_json_schema(sub) for name, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            value = as_json_schema(value)
        out[key] = value
    if out.get("type") == "object" and "properties" in out:
        out["additionalProperties"] = False
    return out


def spec_schema(kind: str, description: str) -> JsonDict:
    (crd,) = [crd for crd in generate_crds() if crd["spec"]["names"]["kind"] == kind]
    (version,) = crd["spec"]["versions"]
    spec = as_json_schema(version["schema"]["openAPIV3Schema"]["properties"]["spec"])
    return {**spec, "description": description}


def updated(schema: JsonDict) -> JsonDict:
    """``schema`` with each entry's spec schema regenerated (one pattern per entry)."""
    result: JsonDict = json.loads(json.dumps(schema))
    for key, (kind, description) in ENTRIES.items():
        patterns = result["properties"][key]["patternProperties"]
        (pattern,) = patterns
        patterns[pattern] = spec_schema(kind, description)
    return result


def render(schema: JsonDict) -> str:
    return json.dumps(schema, indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python hack/helm/values_schema.py")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on drift")
    args = parser.parse_args(argv)
    text = SCHEMA.read_text(encoding="utf-8")
    wanted = render(updated(json.loads(text)))
    if args.check:
        if text != wanted:
            print(
                f"drifted: {SCHEMA} (simTiers/slurmClusters differ from the models): "
                "run `make crds`",
                file=sys.stderr,
            )
            return 1
        return 0
    if text != wanted:
        SCHEMA.write_text(wanted, encoding="utf-8")
        print(f"wrote {SCHEMA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
