"""The run's cluster objects and the operator process.

``Bench`` owns one benchmark run: API clients, the run id, the namespaces and SimTiers it
creates (all named ``bench-<run>-…``), parallel creates of SimJobs and bare Jobs, and
their removal; it also gives the operator its own identity (a ServiceAccount bound to
cluster-admin and a FlowSchema of its own, so APF's
``apiserver_flowcontrol_dispatched_requests_total`` counts the operator's requests apart
from the other users of the shared cluster). ``Operator`` runs
``python -m kopf run -m simjob_operator.main`` for some namespaces under that identity
and stops it by PID. Built on ``common``; used by every scenario module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config

from common import (
    REPO,
    Metrics,
    bare_job_manifest,
    control_plane,
    cpu_seconds,
    create_many,
    simjob_manifest,
    tier_manifest,
)
from simjob_operator.api import names as c


class Operator:
    """``python -m kopf run -m simjob_operator.main`` for some namespaces, as its own
    ServiceAccount (bound to cluster-admin), so that a FlowSchema of its own counts its
    requests (``requests(metrics)``); stopped by PID."""

    def __init__(self, bench: Bench, namespaces: list[str], label: str) -> None:
        self.bench, self.namespaces, self.label = bench, namespaces, label
        self.log = bench.kubeconfig.parent / "logs" / f"bench-operator-{bench.run}-{label}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, wait: float = 3.0) -> None:
        args = [sys.executable, "-m", "kopf", "run", "-m", "simjob_operator.main"]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        args.append("--standalone")
        env = {
            **os.environ,
            "KUBECONFIG": str(self.bench.operator_kubeconfig),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [self.bench.operator_src, os.environ.get("PYTHONPATH")])
            ),
            c.ENV_WATCH_NAMESPACES: ",".join(self.namespaces),
        }
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            self.started = time.monotonic()
            self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(wait)
        if self.process.poll() is not None:
            raise SystemExit(f"operator exited at start-up; log: {self.log}")

    def stop(self) -> float:
        """SIGTERM, wait (SIGKILL after 30 s); returns the seconds it took to exit."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return time.monotonic() - began

    def requests(self, metrics: Metrics) -> int | None:
        """The operator's requests in a metrics difference (None without a FlowSchema)."""
        schema = self.bench.flow_schema
        return metrics.flows[schema] if schema else None


# -------------------------------------------------------------------------- bench


class Bench:
    """One benchmark run on the cluster of ``kubeconfig``: clients, the run's id, the
    namespaces and SimTiers it creates (``bench-<run>-…``), the operator's identity."""

    def __init__(self, kubeconfig: str, operator_src: str) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.operator_src = operator_src
        self.api = config.new_client_from_config(kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.run = uuid.uuid4().hex[:6]
        self.namespaces: list[str] = []
        self.tiers: list[str] = []
        self.cluster_objects: list[tuple[str, str]] = []  # (kubectl kind, name)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{self.run}-"))
        self.operator_kubeconfig = self.kubeconfig
        self.flow_schema: str | None = None
        self.processes = control_plane(self.kubeconfig)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            [str(self.kubeconfig.parent / "bin" / "kubectl"), *args],
            input=stdin,
            text=True,
            capture_output=True,
            check=False,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )
        if check and done.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def setup(self) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all")
        self._operator_identity()

    def _operator_identity(self) -> None:
        ns = self.namespace("op")
        name = f"bench-{self.run}-operator"
        self.core.create_namespaced_service_account(ns, {"metadata": {"name": "operator"}})
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": ns}],
        }
        schema = {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": name},
            "spec": {
                "priorityLevelConfiguration": {"name": "workload-high"},
                "matchingPrecedence": 500,
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [
                    {
                        "subjects": [
                            {
                                "kind": "ServiceAccount",
                                "serviceAccount": {"name": "operator", "namespace": ns},
                            }
                        ],
                        "resourceRules": [
                            {
                                "verbs": ["*"],
                                "apiGroups": ["*"],
                                "resources": ["*"],
                                "clusterScope": True,
                                "namespaces": ["*"],
                            }
                        ],
                        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                    }
                ],
            },
        }
        self.kubectl("apply", "-f", "-", stdin=json.dumps(binding))
        self.cluster_objects.append(("clusterrolebinding", name))
        if self.kubectl("apply", "-f", "-", stdin=json.dumps(schema), check=False):
            self.cluster_objects.append(("flowschema", name))
            self.flow_schema = name
        token = self.core.create_namespaced_service_account_token(
            "operator", ns, {"spec": {"expirationSeconds": 6 * 3600}}
        ).status.token
        cfg = self.api.configuration
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "c",
                    "cluster": {"server": cfg.host, "certificate-authority": cfg.ssl_ca_cert},
                }
            ],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
        self.operator_kubeconfig = self.tmp / "operator.kubeconfig"
        self.operator_kubeconfig.write_text(json.dumps(kubeconfig))

    def namespace(self, label: str) -> str:
        name = f"bench-{self.run}-{label}"
        self.core.create_namespace({"metadata": {"name": name}})
        self.namespaces.append(name)
        while not self.core.list_namespaced_service_account(name).items:
            time.sleep(0.2)
        return name

    def tier(self, label: str, slots: int) -> str:
        name = f"bench-{self.run}-{label}"
        self.kubectl("apply", "-f", "-", stdin=json.dumps(tier_manifest(name, slots)))
        self.tiers.append(name)
        return name

    def create_simjobs(
        self, namespace: str, names: list[str], tier: str, **kwargs: Any
    ) -> dict[str, float]:
        return create_many(
            names,
            lambda n: self.custom.create_namespaced_custom_object(
                c.GROUP,
                c.VERSION,
                namespace,
                c.SIMJOB_PLURAL,
                simjob_manifest(namespace, n, tier, **kwargs),
            ),
        )

    def create_jobs(
        self, namespace: str, names: list[str], tier: str, delay: str | None = None
    ) -> dict[str, float]:
        return create_many(
            names,
            lambda n: self.batch.create_namespaced_job(
                namespace, bare_job_manifest(namespace, n, tier, delay=delay)
            ),
        )

    def release(self, namespace: str) -> None:
        """Drop the finalizers of a namespace's SimJobs (its operator is stopped)."""
        listed = self.custom.list_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.SIMJOB_PLURAL
        )
        patch = {"metadata": {"finalizers": None}}
        create_many(
            [
                i["metadata"]["name"]
                for i in listed.get("items") or []
                if i["metadata"].get("finalizers")
            ],
            lambda n: self.custom.patch_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.SIMJOB_PLURAL, n, patch
            ),
        )

    def cleanup(self) -> None:
        """Release SimJobs, delete the run's namespaces (in the background) and
        cluster-scoped objects. Operators must be stopped first."""
        for ns in self.namespaces:
            try:
                self.release(ns)
                self.core.delete_namespace(ns)
            except Exception as exc:  # noqa: BLE001 - clean up what can be
                print(f"# cleanup {ns}: {exc!r}", file=sys.stderr)
        for tier in self.tiers:
            self.kubectl("delete", "simtier", tier, "--ignore-not-found", check=False)
        for kind, name in self.cluster_objects:
            self.kubectl("delete", kind, name, "--ignore-not-found", check=False)
        self.namespaces, self.tiers, self.cluster_objects = [], [], []

    def cpu(self, extra: dict[str, int] | None = None) -> dict[str, float]:
        return {n: cpu_seconds(p) for n, p in {**self.processes, **(extra or {})}.items()}
