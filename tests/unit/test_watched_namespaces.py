"""Serving a list of namespaces: ``simjob-operator -n …`` hands exact names to the
runtime (main.watched_namespaces, $SIMJOB_WATCH_NAMESPACES) and the admission pass
then LISTs SimJobs only there (kube.Kube.list_simjobs). Pure; no cluster.

Neighbours: operator/simjob_operator/main.py, kube.py; the chart's watchNamespaces
(tests/integration/test_chart.py proves it with a Role-only ServiceAccount).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes.client.api_client import ApiClient

from simjob_operator.api import names as c
from simjob_operator.kube.client import Kube
from simjob_operator.main import kopf_arguments, watched_namespaces


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], None),
        (["-A"], None),
        (["-n", "lab"], ["lab"]),
        (["--namespace", "lab", "-n", "b-2"], ["lab", "b-2"]),
        (["--namespace=lab", "-nother"], ["lab", "other"]),
        (["--standalone", "--namespace=lab", "--log-format=json", "--verbose"], ["lab"]),
        # kopf patterns cannot be listed name by name: the runtime lists the cluster
        (["-n", "lab-*"], None),
        (["-n", "lab", "-n", "!kube-system"], None),
        (["-n"], None),
    ],
)
def test_watched_namespaces(args: list[str], expected: list[str] | None) -> None:
    assert watched_namespaces(args) == expected
    assert watched_namespaces(kopf_arguments(args)) == expected


class FakeCustomObjects:
    """Answers the two LIST calls the way the API server does (items without kind)."""

    def __init__(self, by_namespace: dict[str, list[str]]) -> None:
        self.by_namespace = by_namespace
        self.calls: list[tuple[str, ...]] = []

    def _items(self, names: list[str], namespace: str) -> list[dict[str, Any]]:
        return [{"metadata": {"name": n, "namespace": namespace}} for n in names]

    def list_cluster_custom_object(self, *args: str, **_: Any) -> dict[str, Any]:
        self.calls.append(("cluster", *args))
        return {"items": [i for ns, ns_names in self.by_namespace.items()
                          for i in self._items(ns_names, ns)]}  # fmt: skip

    def list_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, **_: Any
    ) -> dict[str, Any]:
        self.calls.append(("namespaced", group, version, namespace, plural))
        return {"items": self._items(self.by_namespace.get(namespace, []), namespace)}


def _kube(namespaces: tuple[str, ...]) -> tuple[Kube, FakeCustomObjects]:
    kube = Kube(ApiClient(), namespaces)
    fake = FakeCustomObjects({"a": ["one", "two"], "b": ["three"], "c": ["four"]})
    kube.custom = fake  # type: ignore[assignment]
    return kube, fake


def test_all_namespaces_is_one_cluster_list() -> None:
    kube, fake = _kube(())
    items = asyncio.run(kube.list_simjobs())
    assert [i["metadata"]["name"] for i in items] == ["one", "two", "three", "four"]
    assert fake.calls == [("cluster", c.GROUP, c.VERSION, c.SIMJOB_PLURAL)]
    assert all(i["kind"] == c.SIMJOB_KIND and i["apiVersion"] == c.API_VERSION for i in items)


def test_listed_namespaces_are_listed_one_by_one_and_nothing_else() -> None:
    kube, fake = _kube(("a", "c"))
    items = asyncio.run(kube.list_simjobs())
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items] == [
        ("a", "one"), ("a", "two"), ("c", "four")
    ]  # fmt: skip
    assert [call[0] for call in fake.calls] == ["namespaced", "namespaced"]
    assert [call[3] for call in fake.calls] == ["a", "c"]
    assert all(i["kind"] == c.SIMJOB_KIND for i in items)


def test_connect_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("simjob_operator.kube.client.load_configuration", lambda limits: None)
    monkeypatch.setenv(c.ENV_WATCH_NAMESPACES, "lab, b-2,")
    assert Kube.connect().namespaces == ("lab", "b-2")
    monkeypatch.delenv(c.ENV_WATCH_NAMESPACES)
    assert Kube.connect().namespaces == ()


def test_kopf_request_retries_never_run_out() -> None:
    """A long API server outage must not make kopf give up (it stops the operator then)."""
    import itertools

    from simjob_operator.controller.handlers import EndlessBackoffs

    backoffs = EndlessBackoffs()
    first = list(itertools.islice(backoffs, 20))
    again = list(itertools.islice(backoffs, 20))  # every request iterates anew
    assert first == again
    assert first[:8] == [1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0]
    assert set(first[8:]) == {30.0}
