"""Generating the CustomResourceDefinitions from the pydantic models.

``models`` is the single source of truth of the API. This module takes the
structural schemas of ``SimJob``, ``SimTier``, ``SlurmCluster`` and ``SimUsage``
(``structural_schema``), adds
``apiVersion``/``kind``/``metadata`` and a kopf-tolerant ``status``, wraps them into
``apiextensions.k8s.io/v1`` CustomResourceDefinition dicts (status subresource,
printer columns, selectable fields) and renders them as deterministic YAML.

``python -m simjob_operator.api.crd_generation [--check] [--out DIR ...]`` writes
``crds/`` (``make crds``) or lists the drifted files (``make crds-check``); the Helm
chart writes its own copy with ``--out charts/<chart>/crds``. Neighbours:
``structural_schema`` (the conversion), ``models`` (input), ``constants`` (names),
tests/unit/test_crd_generation.py (drift and structure), docs/api.md (the choices).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import yaml
from pydantic import BaseModel

from simjob_operator.api import names as c
from simjob_operator.api.simjob import SimJob
from simjob_operator.api.simtier import SimTier
from simjob_operator.api.simusage import SimUsage
from simjob_operator.api.slurmcluster import SlurmCluster
from simjob_operator.api.structural_schema import JsonDict, SchemaError, structural_schema

HEADER: Final = (
    "# generated from simjob_operator.api by `python -m simjob_operator.api.crd_generation`"
    " (make crds); do not edit\n"
)
DEFAULT_OUT: Final = Path("crds")
CATEGORIES: Final = ("sim",)

KOPF_STATUS: Final[JsonDict] = {
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
    "description": "Bookkeeping of the kopf framework (only in modes that keep it in "
    "status; the operator itself uses annotations). Not part of the API.",
}


# --------------------------------------------------------------------------- CRDs


def _top_level_schema(model: type[BaseModel]) -> JsonDict:
    schema = structural_schema(model)
    schema["properties"] = {
        "apiVersion": {
            "type": "string",
            "description": "The versioned schema of this object: simjob.io/v1alpha1.",
        },
        "kind": {"type": "string", "description": "The REST resource this object represents."},
        # The API server forbids anything but type here (metadata is built in).
        "metadata": {"type": "object"},
        **schema["properties"],
    }
    status = schema["properties"].get("status")
    if status is not None:
        status.setdefault("properties", {})["kopf"] = dict(KOPF_STATUS)
    if "spec" not in schema.get("required", []):
        raise SchemaError(f"{model.__name__}: spec must be required")
    return schema


def _column(name: str, type_: str, path: str, description: str, priority: int = 0) -> JsonDict:
    col: JsonDict = {"name": name, "type": type_, "jsonPath": path, "description": description}
    if priority:
        col["priority"] = priority
    return col


AGE_COLUMN: Final = _column("Age", "date", ".metadata.creationTimestamp", "Time since creation.")

SIMJOB_COLUMNS: Final = (
    _column("Phase", "string", ".status.phase", "Where the SimJob is in its life."),
    _column("Reason", "string", ".status.reason", "Why it is in its phase (why it waits)."),
    _column("Progress", "number", ".status.progress.percent", "Percent done, as reported."),
    _column("Tier", "string", ".spec.tier", "The SimTier."),
    _column("Backend", "string", ".spec.backend", "kubernetes or slurm."),
    # Effective owner, written by the operator: spec.owner or else the namespace.
    # .spec.owner would show <none> for the (common) namespace default.
    _column("Owner", "string", ".status.owner", "Owner for slots and accounting."),
    AGE_COLUMN,
    _column("Message", "string", ".status.message", "Human-readable detail.", priority=1),
)
SIMTIER_COLUMNS: Final = (
    _column("CPU", "string", ".spec.cpu", "CPU per SimJob."),
    _column("Memory", "string", ".spec.memory", "Memory per SimJob."),
    _column("GPU", "integer", ".spec.gpu", "GPUs per SimJob."),
    _column("Max-Runtime", "integer", ".spec.maxRuntimeSeconds", "Longest wall time (s)."),
    _column("Slots", "integer", ".spec.maxConcurrentPerOwner", "Concurrent SimJobs per owner."),
    AGE_COLUMN,
)
SLURMCLUSTER_COLUMNS: Final = (
    _column("Mode", "string", ".spec.mode", "local or ssh."),
    _column("Host", "string", ".spec.host", "Login node (ssh mode)."),
    _column(
        "Reachable",
        "string",
        '.status.conditions[?(@.type=="Reachable")].status',
        "Whether the last call to Slurm succeeded.",
    ),
    AGE_COLUMN,
    _column(
        "Message",
        "string",
        '.status.conditions[?(@.type=="Reachable")].message',
        "The last error talking to Slurm.",
        priority=1,
    ),
)
SIMUSAGE_COLUMNS: Final = (
    _column("Owner", "string", ".spec.owner", "The SimJobs' owner."),
    _column("Tier", "string", ".spec.tier", "The SimTier."),
    _column("Period", "string", ".spec.period", "The UTC day the SimJobs finished on."),
    _column("SimJobs", "integer", ".status.simJobs", "Finished SimJobs counted."),
    _column("Succeeded", "integer", ".status.outcomes.Succeeded", "Of which Succeeded."),
    _column("Failed", "integer", ".status.outcomes.Failed", "Of which Failed.", priority=1),
    _column("CPU-Seconds", "string", ".status.cpuSeconds", "CPU-seconds, summed."),
    _column("GPU-Seconds", "string", ".status.gpuSeconds", "GPU-seconds, summed."),
    _column("Memory-GiB-Seconds", "string", ".status.memoryGiBSeconds", "GiB-seconds, summed."),
    _column("Wall-Seconds", "string", ".status.wallSeconds", "Wall seconds.", priority=1),
    AGE_COLUMN,
)
# `kubectl get su --field-selector spec.owner=alice`
SIMUSAGE_SELECTABLE: Final = (".spec.owner", ".spec.tier", ".spec.period")
# `kubectl get sj --field-selector spec.tier=basic`; also lets the operator list
# one tier's SimJobs server-side.
SIMJOB_SELECTABLE: Final = (".spec.tier", ".spec.backend", ".status.phase", ".status.owner")


def _crd(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: Sequence[str],
    scope: str,
    schema: JsonDict,
    columns: Sequence[JsonDict],
    selectable: Sequence[str] = (),
) -> JsonDict:
    version: JsonDict = {
        "name": c.VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}},
        "additionalPrinterColumns": [dict(col) for col in columns],
    }
    if selectable:
        version["selectableFields"] = [{"jsonPath": path} for path in selectable]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{c.GROUP}"},
        "spec": {
            "group": c.GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
                "categories": list(CATEGORIES),
            },
            "scope": scope,
            "versions": [version],
        },
    }


def generate_crds() -> list[JsonDict]:
    """The CustomResourceDefinitions of the API: SimJob, SimTier, SlurmCluster, SimUsage."""
    return [
        _crd(
            kind=c.SIMJOB_KIND,
            plural=c.SIMJOB_PLURAL,
            singular=c.SIMJOB_SINGULAR,
            short_names=c.SIMJOB_SHORT_NAMES,
            scope="Namespaced",
            schema=_top_level_schema(SimJob),
            columns=SIMJOB_COLUMNS,
            selectable=SIMJOB_SELECTABLE,
        ),
        _crd(
            kind=c.SIMTIER_KIND,
            plural=c.SIMTIER_PLURAL,
            singular=c.SIMTIER_SINGULAR,
            short_names=c.SIMTIER_SHORT_NAMES,
            scope="Cluster",
            schema=_top_level_schema(SimTier),
            columns=SIMTIER_COLUMNS,
        ),
        _crd(
            kind=c.SLURMCLUSTER_KIND,
            plural=c.SLURMCLUSTER_PLURAL,
            singular=c.SLURMCLUSTER_SINGULAR,
            short_names=c.SLURMCLUSTER_SHORT_NAMES,
            scope="Cluster",
            schema=_top_level_schema(SlurmCluster),
            columns=SLURMCLUSTER_COLUMNS,
        ),
        _crd(
            kind=c.SIMUSAGE_KIND,
            plural=c.SIMUSAGE_PLURAL,
            singular=c.SIMUSAGE_SINGULAR,
            short_names=c.SIMUSAGE_SHORT_NAMES,
            scope="Namespaced",
            schema=_top_level_schema(SimUsage),
            columns=SIMUSAGE_COLUMNS,
            selectable=SIMUSAGE_SELECTABLE,
        ),
    ]


# --------------------------------------------------------------------------- files


def render_yaml(crd: JsonDict) -> str:
    """One CRD as deterministic YAML (sorted keys) behind the do-not-edit header."""
    body = yaml.safe_dump(crd, sort_keys=True, default_flow_style=False, width=100)
    return HEADER + body


def file_name(crd: JsonDict) -> str:
    """``<group>_<plural>.yaml``, as controller-gen names them."""
    return f"{crd['spec']['group']}_{crd['spec']['names']['plural']}.yaml"


def rendered_files() -> dict[str, str]:
    """File name -> content for every CRD."""
    return {file_name(crd): render_yaml(crd) for crd in generate_crds()}


def write_crds(out_dir: Path) -> list[Path]:
    """Write every CRD into ``out_dir`` (created if missing) and remove stale
    ``<group>_*.yaml`` files that nothing generates any more; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = rendered_files()
    for stale in _stale_files(out_dir, files):
        stale.unlink()
    written = []
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _stale_files(out_dir: Path, expected: dict[str, str]) -> list[Path]:
    return [p for p in sorted(out_dir.glob(f"{c.GROUP}_*.yaml")) if p.name not in expected]


def drifted_files(out_dir: Path) -> list[Path]:
    """Files in ``out_dir`` that differ from the generated ones, are missing, or are
    stale ``<group>_*.yaml`` files that nothing generates any more."""
    expected = rendered_files()
    drifted = [
        out_dir / name
        for name, text in expected.items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text(encoding="utf-8") != text
    ]
    return drifted + _stale_files(out_dir, expected)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simjob_operator.api.crd_generation",
        description="Generate the SimJob/SimTier CRDs from simjob_operator.api.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        action="append",
        help=f"output directory, repeatable (default: {DEFAULT_OUT}/ in the current directory)",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file drifted"
    )
    args = parser.parse_args(argv)
    out_dirs: list[Path] = args.out or [DEFAULT_OUT]
    if args.check:
        drifted = [path for out_dir in out_dirs for path in drifted_files(out_dir)]
        for path in drifted:
            print(f"drifted: {path}", file=sys.stderr)
        if drifted:
            print("the CRDs are out of date with simjob_operator.api: run `make crds`",
                  file=sys.stderr)  # fmt: skip
            return 1
        return 0
    for out_dir in out_dirs:
        for path in write_crds(out_dir):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
