"""Shared helpers of the benchmarks: manifests, API server metrics, /proc, tables.

Every scenario module (``backlog``, ``throughput``, ``latency``, ``idle``, ``cancel``,
``restart``) builds on this, on ``tracking`` (watches) and on ``cluster`` (the run's
objects and the operator process); ``run`` runs them by size, ``plots`` draws them.
Here: SimJobs and bare Jobs with the pod template the operator builds
(``simjob_operator.backends.kubernetes.manifests``), parallel creates, the API server's
request counters (``Metrics``: ``apiserver_request_total`` by verb, resource and
subresource; APF's dispatched requests by FlowSchema), CPU and memory of processes from
``/proc``, percentiles and the printed / Markdown ``Table``.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))

from kubernetes import client  # noqa: E402

from simjob_operator.api import names as c  # noqa: E402
from simjob_operator.api.simjob import SimJobSpec  # noqa: E402
from simjob_operator.api.simtier import SimTierSpec  # noqa: E402
from simjob_operator.backends.kubernetes.manifests import build_job_manifest  # noqa: E402
from simjob_operator.core.validation import grant_of  # noqa: E402

RESULTS = REPO / "bench" / "results"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE"})
READ_VERBS = frozenset({"GET", "LIST"})  # not WATCH: a watch is one long request
COMMAND = ["/bin/simulate", "--steps", "100"]
IMAGE = "example.invalid/simulation:1"
TIER_SPEC: dict[str, Any] = {"cpu": "100m", "memory": "64Mi", "maxRuntimeSeconds": 7200}
KWOK_DELAY = "pod-complete.stage.kwok.x-k8s.io/delay"  # how long KWOK keeps a pod Running
FINISHED = frozenset({"Succeeded", "Failed", "Cancelled", "TimedOut"})


def percentile(values: Iterable[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB; NaN when it is gone."""
    values = {"VmRSS:": math.nan, "VmHWM:": math.nan}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(" ", 1)[0].split("\t", 1)[0]
            if key in values:
                values[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return values["VmRSS:"], values["VmHWM:"]


def control_plane(kubeconfig: Path) -> dict[str, int]:
    """The local control plane's processes from the pid files next to its kubeconfig."""
    pids: dict[str, int] = {}
    for path in sorted((kubeconfig.parent / "run").glob("*.pid")):
        try:
            pids[path.stem] = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return pids


# ------------------------------------------------------------------------ metrics


@dataclass
class Metrics:
    """A snapshot (or a difference of two) of the API server's request counters:
    ``apiserver_request_total`` by (verb, resource, subresource, code) and APF's
    ``apiserver_flowcontrol_dispatched_requests_total`` by flow schema."""

    requests: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    flows: Counter[str] = field(default_factory=Counter)
    at: float = 0.0

    def __sub__(self, before: Metrics) -> Metrics:
        return Metrics(self.requests - before.requests, self.flows - before.flows, self.at)

    def count(
        self,
        verbs: Iterable[str] | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        code: str | None = None,
    ) -> int:
        chosen = set(verbs) if verbs is not None else None
        return sum(
            n
            for (verb, res, sub, cod), n in self.requests.items()
            if (chosen is None or verb in chosen)
            and (resource is None or res == resource)
            and (subresource is None or sub == subresource)
            and (code is None or cod == code)
        )

    def writes(self, resource: str | None = None) -> int:
        return self.count(WRITE_VERBS, resource)

    def reads(self, resource: str | None = None) -> int:
        return self.count(READ_VERBS, resource)

    def status_patches(self) -> int:
        return self.count({"PATCH", "UPDATE", "PUT", "APPLY"}, "simjobs", "status")

    def writes_by_resource(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (verb, res, sub, _), n in self.requests.items():
            if verb in WRITE_VERBS:
                out[f"{res}/{sub}" if sub else res] += n
        return dict(out)


_LABELS = re.compile(r'(\w+)="([^"]*)"')


def scrape(api: client.ApiClient) -> Metrics:
    response = api.rest_client.pool_manager.request(
        "GET", api.configuration.host + "/metrics", preload_content=True
    )
    metrics = Metrics(at=time.monotonic())
    for line in response.data.decode().splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(_LABELS.findall(line))
            key = (
                labels.get("verb", ""),
                labels.get("resource", ""),
                labels.get("subresource", ""),
                labels.get("code", ""),
            )
            metrics.requests[key] += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("apiserver_flowcontrol_dispatched_requests_total{"):
            labels = dict(_LABELS.findall(line))
            metrics.flows[labels.get("flow_schema", "")] += int(float(line.rsplit(" ", 1)[1]))
    return metrics


# ---------------------------------------------------------------------- manifests


def tier_manifest(name: str, slots: int) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.SIMTIER_KIND,
        "metadata": {"name": name},
        "spec": {**TIER_SPEC, "maxConcurrentPerOwner": slots},
    }


def simjob_manifest(
    namespace: str, name: str, tier: str, *, delay: str | None = None, owner: str | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"tier": tier, "image": IMAGE, "command": COMMAND}
    if delay is not None:
        spec["podMetadata"] = {"annotations": {KWOK_DELAY: delay}}
    if owner is not None:
        spec["owner"] = owner
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.SIMJOB_KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def bare_job_manifest(
    namespace: str, name: str, tier: str, *, delay: str | None = None
) -> dict[str, Any]:
    """The Job the operator would build for the same SimJob, without its owner
    reference and simjob.io labels (labelled ``bench=bare`` instead)."""
    sj = simjob_manifest(namespace, name, tier, delay=delay)
    spec = SimJobSpec.model_validate(sj["spec"])
    grant = grant_of(spec, SimTierSpec.model_validate(TIER_SPEC))
    job = build_job_manifest(
        namespace=namespace,
        name=name,
        uid=str(uuid.uuid4()),
        spec=spec,
        owner=namespace,
        grant=grant,
    )
    job["metadata"] = {"name": name, "namespace": namespace, "labels": {"bench": "bare"}}
    template = job["spec"]["template"]["metadata"]
    template["labels"] = {"bench": "bare", "bench-job": name}
    return job


def create_many(
    names: Iterable[str], create: Callable[[str], object], workers: int = 8
) -> dict[str, float]:
    """Create objects from 8 client threads; returns when each create was sent."""
    sent: dict[str, float] = {}

    def one(name: str) -> None:
        sent[name] = time.monotonic()
        create(name)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(one, name) for name in names]:
            future.result()
    return sent


# -------------------------------------------------------------------------- tables


@dataclass
class Row:
    label: str
    baseline: float | None
    ours: float | None
    target: str = ""
    digits: int = 1


@dataclass
class Table:
    """One scenario's figures: baseline, SimJob, ratio and the issue's target."""

    title: str
    baseline_name: str = "baseline"
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        label: str,
        baseline: float | None,
        ours: float | None,
        target: str = "",
        digits: int = 1,
    ) -> None:
        self.rows.append(Row(label, baseline, ours, target, digits))

    @staticmethod
    def _num(value: float | None, digits: int) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{value:.{digits}f}"

    def _cells(self, row: Row) -> list[str]:
        ratio = "-"
        if row.baseline and row.ours is not None and not math.isnan(row.baseline + row.ours):
            ratio = f"{row.ours / row.baseline:.2f}"
        return [
            row.label,
            self._num(row.baseline, row.digits),
            self._num(row.ours, row.digits),
            ratio,
            row.target,
        ]

    def text(self) -> str:
        head = ["", self.baseline_name, "SimJob", "ratio", "target"]
        lines = [
            f"## {self.title}",
            f"{head[0]:44}{head[1]:>14}{head[2]:>12}{head[3]:>8}  {head[4]}",
        ]
        for row in self.rows:
            cells = self._cells(row)
            lines.append(f"{cells[0]:44}{cells[1]:>14}{cells[2]:>12}{cells[3]:>8}  {cells[4]}")
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [
            f"#### {self.title}",
            "",
            f"| | {self.baseline_name} | SimJob | ratio | target |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        lines += ["| " + " | ".join(self._cells(row)) + " |" for row in self.rows]
        if self.notes:
            lines += [""] + [f"* {note}" for note in self.notes]
        return "\n".join(lines) + "\n"
