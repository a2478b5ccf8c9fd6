"""The reference gateway (examples/gateway/gateway.py) over HTTP against the real
control plane: tokens map to owners and namespaces, submit is idempotent, runs of
another user are invisible, status streams as server-sent events, cancel works.

Neighbours: examples/gateway/gateway.py, conftest.py.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from simjob_sdk import AsyncSimJobClient
from tests.integration.conftest import REPO, Kube

pytestmark = pytest.mark.integration


def load_gateway() -> ModuleType:
    path = REPO / "examples" / "gateway" / "gateway.py"
    spec = importlib.util.spec_from_file_location("simjob_example_gateway", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_body(name: str, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "name": name, "tier": "it-one", "image": "busybox:1.36", "command": ["sleep", "1"],
        "annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": f"{seconds}s"}, **extra,
    }  # fmt: skip


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_gateway_over_http(kubeconfig: Path, kube: Kube, namespace: str) -> None:
    gateway = load_gateway()
    users = {
        "t-alice": gateway.User(user="alice", owner="alice", namespace=namespace),
        "t-bob": gateway.User(user="bob", owner="bob", namespace=namespace),
    }
    app = gateway.create_app(
        users, lambda user: AsyncSimJobClient(user.namespace, kubeconfig=kubeconfig)
    )
    alice = {"Authorization": "Bearer t-alice"}
    bob = {"Authorization": "Bearer t-bob"}
    with TestClient(app) as http:
        assert http.get("/runs").status_code == 401
        first = http.post("/runs", json=run_body("g-long", 60), headers=alice)
        assert first.status_code == 201, first.text
        again = http.post("/runs", json=run_body("g-long", 60), headers=alice)
        assert again.status_code == 201, again.text  # a browser retry: the same run
        clash = http.post("/runs", json=run_body("g-long", 61), headers=alice)
        assert clash.status_code == 409, clash.text
        assert http.post("/runs", json=run_body("g-next", 1), headers=alice).status_code == 201

        body = kube.simjob(namespace, "g-long")
        assert body["spec"]["owner"] == "alice"
        assert body["metadata"]["labels"][gateway.OWNER_LABEL] == "alice"
        assert [r["name"] for r in http.get("/runs", headers=alice).json()] == ["g-long", "g-next"]
        assert http.get("/runs", headers=bob).json() == []
        assert http.get("/runs/g-long", headers=bob).status_code == 404
        assert http.post("/runs/g-long/cancel", headers=bob).status_code == 404

        kube.wait_phase(namespace, "g-next", "Queued")
        shown = http.get("/runs/g-next", headers=alice).json()
        assert shown["phase"] == "Queued"
        assert shown["queuePosition"] == 1

        cancelled = http.post("/runs/g-long/cancel", headers=alice)
        assert cancelled.status_code == 200, cancelled.text
        with http.stream("GET", "/runs/g-next/events", headers=alice) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            text = "".join(stream.iter_text())
        events = sse_events(text)
        kinds = [kind for kind, _ in events]
        assert kinds[-1] == "end", kinds
        phases = [data["phase"] for kind, data in events if kind == "status"]
        assert phases[-1] == "Succeeded", phases
        assert "Running" in phases or "Queued" in phases, phases
        assert http.get("/runs/g-long", headers=alice).json()["phase"] == "Cancelled"
