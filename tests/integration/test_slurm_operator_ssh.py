"""SlurmClusters in ssh mode: the operator logs in to a real sshd (tests/sshd_server.py,
Debian's OpenSSH on a loopback port, key authentication, verified host key) in front
of the local Slurm, with keys and known_hosts read from Secrets.

Two site users with their own keys: the SlurmCluster's credentials (simjob-op1) and a
SimJob's own ``spec.slurm.credentialsSecretRef`` (simjob-op2, with ``username`` and
``workDir`` in its Secret). Each job runs as its user (its output says ``id -un`` and
its file belongs to that user), a failure carries its output tail, a running job is
cancelled over SSH, and a SlurmCluster whose known_hosts does not match the server is
``Reachable=False`` — its SimJobs wait, nothing is submitted. The data path over SSH:
the example simulation (examples/simulation/heat.py, the site's python3 with numpy)
gets its ConfigMap/Secret inputs in its run directory (written over SSH as the site
user), its progress reaches status from its batch output (one read command per
interval for all running jobs), and its outputs are fetched through the bridge's SSH
runner.
Neighbours: test_slurm_bridge_ssh.py (the bridge alone), test_slurm_operator.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import pwd
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slurm_bridge import fetch_file, list_run_dir
from slurm_bridge.ssh import SshPool, SshTarget
from tests.integration.conftest import Kube, OperatorProcess, wait_for
from tests.integration.slurm_operator_helpers import (
    apply_slurm_tiers,
    backend_id,
    jobs_named,
    marker_of,
    output_file,
    run_dir,
    slurm_cluster,
    slurm_simjob,
    slurm_state,
    wait_reachable,
)
from tests.support.sshd_server import HOST, SshdServer, new_key, serving

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

USERS = ["simjob-op1", "simjob-op2"]
CLUSTER = "it-ssh"
WRONG_HOST_CLUSTER = "it-ssh-wrong-host-key"
FINISH_S = 120.0


def secret(
    name: str, data: dict[str, bytes], labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels or {}},
        "type": "Opaque",
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


@pytest.fixture(scope="module")
def sshd(slurm_env: dict[str, str]) -> Iterator[SshdServer]:
    with serving(USERS, slurm_env) as server:  # userdel is retried while jobs end
        yield server


@pytest.fixture(scope="module")
def ssh_cluster(kube: Kube, operator: OperatorProcess, sshd: SshdServer) -> Iterator[str]:
    """SlurmClusters in ssh mode; their Secrets live in a namespace of their own."""
    apply_slurm_tiers(kube)
    secrets_ns = f"it-slurm-site-{uuid.uuid4().hex[:6]}"
    kube.run("create", "namespace", secrets_ns)
    op1 = sshd.users[USERS[0]]
    wrong_hosts = f"[{HOST}]:{sshd.port} {new_key()[1]}\n".encode()  # another server's key
    kube.apply(
        secret("op1-key", {"ssh-privatekey": op1.private_key}),
        secret("known-hosts", {"known_hosts": sshd.known_hosts}),
        secret("wrong-known-hosts", {"known_hosts": wrong_hosts}),
        namespace=secrets_ns,
    )
    common = {
        "mode": "ssh",
        "host": HOST,
        "port": sshd.port,
        "user": op1.name,
        "workDir": str(op1.work_dir),
        "credentialsSecretRef": {"namespace": secrets_ns, "name": "op1-key"},
        # The local Slurm keeps finished jobs only in its completion log, which the
        # login users cannot read (docs/slurm.md, "Accounting for non-root users").
        "accounting": "none",
    }
    kube.apply(
        slurm_cluster(
            CLUSTER, **common, knownHostsSecretRef={"namespace": secrets_ns, "name": "known-hosts"}
        ),
        slurm_cluster(
            WRONG_HOST_CLUSTER,
            **common,
            knownHostsSecretRef={"namespace": secrets_ns, "name": "wrong-known-hosts"},
        ),
    )
    wait_reachable(kube, CLUSTER, "True", timeout=60)
    yield CLUSTER
    for name in (CLUSTER, WRONG_HOST_CLUSTER):
        kube.run("delete", "slurmclusters.simjob.io", name, "--ignore-not-found", check=False)
    kube.run("delete", "namespace", secrets_ns, "--wait=false", check=False)


def test_jobs_run_as_the_cluster_user_or_their_own(
    kube: Kube,
    namespace: str,
    ssh_cluster: str,
    sshd: SshdServer,
    slurm_env: dict[str, str],
) -> None:
    op1, op2 = (sshd.users[name] for name in USERS)
    kube.apply(
        secret(
            "my-site-account",
            {
                "ssh-privatekey": op2.private_key,
                "username": op2.name.encode(),
                "workDir": str(op2.work_dir).encode(),
            },
            {"simjob.io/credentials": "true"},  # per-user Secrets must be marked
        ),
        namespace=namespace,
    )
    own = {"credentialsSecretRef": {"name": "my-site-account"}}
    script = "id -un; exit 3"
    kube.apply(
        slurm_simjob("as-cluster-user", ssh_cluster, "sh", "-c", script),
        slurm_simjob("as-own-user", ssh_cluster, "sh", "-c", script, slurm=own),
        slurm_simjob("own-ok", ssh_cluster, "sh", "-c", "id -un; sleep 2", slurm=own),
        namespace=namespace,
    )
    for name, user in (("as-cluster-user", op1.name), ("as-own-user", op2.name)):
        status = kube.wait_phase(namespace, name, {"Failed", "Succeeded"}, timeout=FINISH_S)
        assert (status["phase"], status["exitCode"]) == ("Failed", 3), status
        assert status["message"].endswith(f"last output:\n{user}"), status
        assert status["backendRef"]["cluster"] == ssh_cluster
        assert jobs_named(slurm_env, marker_of(kube, namespace, name)) == {
            status["backendRef"]["id"]
        }
    status = kube.wait_phase(namespace, "own-ok", {"Failed", "Succeeded"}, timeout=FINISH_S)
    assert status["phase"] == "Succeeded", status
    assert status["usage"]["wallSeconds"] >= 2
    output = output_file(kube, namespace, "own-ok")
    assert output.parent.parent.parent == op2.work_dir  # the run directory is under its workDir
    assert output.read_text() == f"{op2.name}\n"
    assert pwd.getpwuid(output.stat().st_uid).pw_name == op2.name


def test_a_secret_not_marked_as_credentials_is_refused(
    kube: Kube, namespace: str, ssh_cluster: str, sshd: SshdServer, slurm_env: dict[str, str]
) -> None:
    """A SimJob naming a Secret of its namespace that lacks simjob.io/credentials=true
    fails, even with a working key in it: nothing runs with it, no Slurm job."""
    op2 = sshd.users[USERS[1]]
    key = {"ssh-privatekey": op2.private_key, "username": op2.name.encode()}
    kube.apply(secret("someone-elses-key", key), namespace=namespace)
    own = {"credentialsSecretRef": {"name": "someone-elses-key"}}
    kube.apply(slurm_simjob("unmarked", ssh_cluster, "true", slurm=own), namespace=namespace)
    status = kube.wait_phase(namespace, "unmarked", {"Failed", "Succeeded"}, timeout=FINISH_S)
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSlurmCredentials"), status
    assert (
        f"Secret {namespace}/someone-elses-key is not marked as SimJob credentials: "
        "label it simjob.io/credentials=true"
    ) in status["message"], status
    assert backend_id(kube, namespace, "unmarked") is None
    assert jobs_named(slurm_env, marker_of(kube, namespace, "unmarked")) == set()


def test_cancel_over_ssh(
    kube: Kube, namespace: str, ssh_cluster: str, slurm_env: dict[str, str]
) -> None:
    kube.apply(slurm_simjob("ssh-long", ssh_cluster, "sleep", "300"), namespace=namespace)
    kube.wait_phase(namespace, "ssh-long", "Running", timeout=60)
    job_id = backend_id(kube, namespace, "ssh-long")
    assert job_id is not None
    kube.patch_simjob(namespace, "ssh-long", {"spec": {"cancel": True}})
    status = kube.wait_phase(
        namespace, "ssh-long", {"Cancelled", "Failed", "Succeeded"}, timeout=60
    )
    assert (status["phase"], status["reason"]) == ("Cancelled", "CancelRequested"), status
    assert slurm_state(slurm_env, job_id) == "CANCELLED"


def test_a_host_key_mismatch_is_unreachable_and_nothing_is_submitted(
    kube: Kube, namespace: str, ssh_cluster: str, slurm_env: dict[str, str]
) -> None:
    down = wait_reachable(kube, WRONG_HOST_CLUSTER, "False", timeout=60)
    assert "host key" in down["message"].lower(), down
    kube.apply(slurm_simjob("mitm", WRONG_HOST_CLUSTER, "true"), namespace=namespace)
    time.sleep(8)
    status = kube.status(namespace, "mitm")
    assert status["phase"] == "Queued", status  # kept: it may be the site's key rotation
    assert backend_id(kube, namespace, "mitm") is None
    assert jobs_named(slurm_env, marker_of(kube, namespace, "mitm")) == set()


HEAT = [
    "/usr/bin/python3",
    str(Path(__file__).resolve().parents[2] / "examples/simulation/heat.py"),
]
DATA_TIER = {
    "apiVersion": "simjob.io/v1alpha1",
    "kind": "SimTier",
    "metadata": {"name": "it-slurm-ssh-data"},
    "spec": {"cpu": "1", "memory": "200Mi", "maxRuntimeSeconds": 600,
             "maxConcurrentPerOwner": 10, "progressIntervalSeconds": 1},
}  # fmt: skip


def test_inputs_progress_and_outputs_over_ssh(
    kube: Kube, namespace: str, ssh_cluster: str, sshd: SshdServer, slurm_env: dict[str, str]
) -> None:
    op1 = sshd.users[USERS[0]]
    kube.apply(DATA_TIER)
    kube.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "heat-params"},
         "data": {"params.json": json.dumps({"grid": 20, "steps": 50})}},
        secret("heat-token", {"token": b"over-ssh"}),
        namespace=namespace,
    )  # fmt: skip
    inputs = [{"configMap": {"name": "heat-params"}}, {"secret": {"name": "heat-token"}}]
    kube.apply(
        slurm_simjob("heat-ssh", ssh_cluster, *HEAT, "--seconds", "10",
                     tier="it-slurm-ssh-data", inputs=inputs),
        namespace=namespace,
    )  # fmt: skip
    kube.wait_phase(namespace, "heat-ssh", "Running", timeout=240)  # a shared Slurm

    def progress() -> dict[str, Any]:
        return dict(kube.status(namespace, "heat-ssh").get("progress") or {})

    seen = wait_for(
        lambda: (p := progress()) and 0 < p["percent"] < 100 and p,
        timeout=60,
        what="progress between 0 and 100 % over SSH",
        detail=lambda: kube.status(namespace, "heat-ssh"),
    )
    assert seen["message"].startswith("step ")
    status = kube.wait_phase(namespace, "heat-ssh", {"Succeeded", "Failed"}, timeout=FINISH_S)
    assert status["phase"] == "Succeeded", status
    assert status["progress"]["percent"] == 100
    directory = run_dir(kube, namespace, "heat-ssh")
    uid = kube.simjob(namespace, "heat-ssh")["metadata"]["uid"]
    assert directory == op1.work_dir / namespace / f"heat-ssh-{uid}"
    assert status["workspace"] == {"cluster": ssh_cluster, "directory": str(directory)}
    token = directory / "inputs" / "token"
    assert pwd.getpwuid(token.stat().st_uid).pw_name == op1.name  # written as the site user
    assert stat.S_IMODE(token.stat().st_mode) == 0o400
    assert jobs_named(slurm_env, marker_of(kube, namespace, "heat-ssh")) == {
        status["backendRef"]["id"]
    }

    async def fetch() -> tuple[set[str], bytes]:
        pool = SshPool(connect_timeout=10)
        target = SshTarget(host=HOST, port=sshd.port, user=op1.name,
                           private_key=op1.private_key, known_hosts=sshd.known_hosts)  # fmt: skip
        try:
            runner = pool.runner(target)
            listing = await list_run_dir(runner, str(directory))
            summary = await fetch_file(runner, str(directory), "outputs/summary.json")
        finally:
            await pool.close()
        return {entry.path for entry in listing}, summary

    paths, summary = asyncio.run(fetch())
    assert {"inputs/params.json", "inputs/token", "outputs/summary.json"} <= paths
    assert json.loads(summary)["grid"] == 20  # the ConfigMap's params.json was used
