"""SSH certificates on a real sshd (Debian's OpenSSH, ``TrustedUserCAKeys``) in front of
the real local Slurm, as NERSC's sshproxy hands them out: a SlurmCluster whose
credentials Secret holds a key that is NOT in authorized_keys plus a short-lived
certificate of it (``ssh-keygen -s ca -V -1m:+45s``).

While the certificate is valid the SlurmCluster shows it (status.certificate: key id,
principals, validBefore) with ``CredentialsExpired=False``. It expires while a SimJob
runs: the SlurmCluster turns ``CredentialsExpired=True`` (and Reachable=False) with a
message saying what to renew, the SimJob stays Running with the reason
``CredentialsExpired`` while its Slurm job runs on. A renewed certificate in the same
Secret resumes polling: the condition clears, the SimJob's reason returns to Started,
it succeeds, and Slurm has exactly one job for it (nothing was resubmitted). The same
for a SimJob with its own credentials (a per-user Secret in its namespace, another site
user, another short certificate): its reason names that Secret, renewal resumes it.
Neighbours: test_bridge_ssh.py (certificates in the bridge alone),
test_slurm_operator_ssh.py, tests/unit/test_slurm_site_features.py.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Kube, OperatorProcess, wait_for
from tests.integration.slurm_operator_helpers import (
    apply_slurm_tiers,
    backend_id,
    jobs_named,
    marker_of,
    slurm_cluster,
    slurm_simjob,
    slurm_state,
    wait_reachable,
)
from tests.support.sshd_server import HOST, SshdServer

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

USER = "simjob-crt1"
OWN = "simjob-crt2"  # a user with a per-user Secret (spec.slurm.credentialsSecretRef)
CLUSTER = "it-ssh-cert"
VALID_S = 45


def keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


def certify(ca_dir: Path, key: Path, validity: str, serial: int, user: str = USER) -> bytes:
    """A certificate of ``key`` for ``user`` signed by the CA (``-V``: its validity)."""
    cert = Path(f"{key}-cert.pub")
    cert.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(ca_dir / "ca"), "-I", f"{key.name}-{serial}@it",
         "-n", user, "-z", str(serial), "-V", validity, f"{key}.pub"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert.read_bytes()


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
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ssh-ca")
    path.chmod(0o755)
    keygen(path / "ca")
    keygen(path / "operator")  # the operator's key: only its certificate logs in
    keygen(path / "own")  # OWN's key, likewise
    return path


@pytest.fixture(scope="module")
def sshd(slurm_env: dict[str, str], ca_dir: Path) -> Iterator[SshdServer]:
    if os.geteuid() != 0:
        pytest.skip("SSH-mode tests create Unix users and run sshd: they need root")
    server = SshdServer([USER, OWN], slurm_env["SLURM_CONF"])
    with server.config.open("a") as config:
        config.write(f"TrustedUserCAKeys {ca_dir / 'ca.pub'}\n")
    server.start()
    try:
        yield server
    finally:
        for user in (USER, OWN):
            subprocess.run(
                ["scancel", "--user", user], env=slurm_env, capture_output=True, timeout=60
            )
        server.remove()


def condition(kube: Kube, type_: str) -> dict[str, Any]:
    body = kube.get("slurmclusters.simjob.io", CLUSTER) or {}
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def test_an_expiring_certificate_is_shown_waited_out_and_renewed(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    sshd: SshdServer,
    ca_dir: Path,
    slurm_env: dict[str, str],
) -> None:
    apply_slurm_tiers(kube)
    key = ca_dir / "operator"
    cert = certify(ca_dir, key, f"-1m:+{VALID_S}s", serial=1)
    own_key = ca_dir / "own"
    own_cert = certify(ca_dir, own_key, f"-1m:+{VALID_S}s", serial=1, user=OWN)
    issued = time.monotonic()

    def own_secret(certificate: bytes) -> dict[str, Any]:
        data = {
            "ssh-privatekey": own_key.read_bytes(),
            "ssh-certificate": certificate,
            "username": OWN.encode(),
            "workDir": str(sshd.users[OWN].work_dir).encode(),
        }
        return secret("my-account", data, {"simjob.io/credentials": "true"})

    site_ns = f"it-cert-site-{uuid.uuid4().hex[:6]}"
    kube.run("create", "namespace", site_ns)
    try:
        kube.apply(
            secret("op-key", {"ssh-privatekey": key.read_bytes(), "ssh-certificate": cert}),
            secret("known-hosts", {"known_hosts": sshd.known_hosts}),
            namespace=site_ns,
        )
        kube.apply(
            slurm_cluster(
                CLUSTER,
                mode="ssh",
                host=HOST,
                port=sshd.port,
                user=USER,
                workDir=str(sshd.users[USER].work_dir),
                credentialsSecretRef={"namespace": site_ns, "name": "op-key"},
                knownHostsSecretRef={"namespace": site_ns, "name": "known-hosts"},
                accounting="none",  # the login user cannot read the completion log
            )
        )
        wait_reachable(kube, CLUSTER, "True", timeout=60)
        status = (kube.get("slurmclusters.simjob.io", CLUSTER) or {})["status"]
        shown = status["certificate"]
        assert shown["keyId"] == "operator-1@it", shown
        assert shown["principals"] == [USER], shown
        assert shown["secret"] == f"{site_ns}/op-key", shown
        assert shown["validBefore"], shown
        assert condition(kube, "CredentialsExpired")["status"] == "False"

        kube.apply(own_secret(own_cert), namespace=namespace)
        mine = {"credentialsSecretRef": {"name": "my-account"}}
        kube.apply(
            slurm_simjob("long", CLUSTER, "sleep", "100"),
            slurm_simjob("mine", CLUSTER, "sleep", "100", slurm=mine),
            namespace=namespace,
        )
        kube.wait_phase(namespace, "long", {"Running"}, timeout=120)
        kube.wait_phase(namespace, "mine", {"Running"}, timeout=120)
        job_id = backend_id(kube, namespace, "long")
        own_id = backend_id(kube, namespace, "mine")
        assert job_id is not None
        assert own_id is not None
        assert time.monotonic() - issued < VALID_S, "too slow: the certificate expired already"

        # The certificate expires during the run.
        expired = wait_for(
            lambda: (
                (cond := condition(kube, "CredentialsExpired")).get("status") == "True" and cond
            ),
            timeout=VALID_S + 60,
            what="CredentialsExpired=True",
            detail=lambda: condition(kube, "CredentialsExpired"),
        )
        assert "'operator-1@it'" in expired["message"], expired
        assert f"Secret {site_ns}/op-key expired at" in expired["message"], expired
        assert "renew it in the Secret" in expired["message"], expired
        seen = wait_for(
            lambda: (
                (s := kube.status(namespace, "long")).get("reason") == "CredentialsExpired" and s
            ),
            timeout=60,
            what="the SimJob's reason CredentialsExpired",
            detail=lambda: kube.status(namespace, "long"),
        )
        assert seen["phase"] == "Running", seen
        assert f"Slurm job {job_id} on {CLUSTER}" in seen["message"], seen
        assert slurm_state(slurm_env, job_id) == "RUNNING"  # the job is not affected
        # The per-user Secret's certificate expired too: its SimJob says which Secret.
        own_seen = wait_for(
            lambda: (
                (s := kube.status(namespace, "mine")).get("reason") == "CredentialsExpired" and s
            ),
            timeout=60,
            what="the per-user SimJob's reason CredentialsExpired",
            detail=lambda: kube.status(namespace, "mine"),
        )
        assert own_seen["phase"] == "Running", own_seen
        assert f"'own-1@it' in Secret {namespace}/my-account expired" in own_seen["message"]
        assert slurm_state(slurm_env, own_id) == "RUNNING"
        assert "Certificate invalid: expired" in sshd.log_tail(400)  # the server said no

        # Renewed in the same Secret: polling resumes, nothing is resubmitted.
        renewed = certify(ca_dir, key, "-1m:+10m", serial=2)
        kube.apply(
            own_secret(certify(ca_dir, own_key, "-1m:+10m", serial=2, user=OWN)),
            namespace=namespace,
        )
        kube.apply(
            secret("op-key", {"ssh-privatekey": key.read_bytes(), "ssh-certificate": renewed}),
            namespace=site_ns,
        )
        wait_for(
            lambda: condition(kube, "CredentialsExpired").get("status") == "False",
            timeout=60,
            what="CredentialsExpired=False after the renewal",
            detail=lambda: condition(kube, "CredentialsExpired"),
        )
        assert condition(kube, "Reachable")["status"] == "True"
        keyid = (kube.get("slurmclusters.simjob.io", CLUSTER) or {})["status"]["certificate"]
        assert keyid["keyId"] == "operator-2@it", keyid
        back = wait_for(
            lambda: (s := kube.status(namespace, "long")).get("reason") == "Started" and s,
            timeout=60,
            what="the SimJob's reason back to Started",
            detail=lambda: kube.status(namespace, "long"),
        )
        assert back["phase"] == "Running", back
        own_back = wait_for(
            lambda: (s := kube.status(namespace, "mine")).get("reason") == "Started" and s,
            timeout=60,
            what="the per-user SimJob's reason back to Started",
            detail=lambda: kube.status(namespace, "mine"),
        )
        assert own_back["phase"] == "Running", own_back
        for name, job in (("long", job_id), ("mine", own_id)):
            done = kube.wait_phase(namespace, name, {"Succeeded", "Failed"}, timeout=150)
            assert done["phase"] == "Succeeded", done
            assert jobs_named(slurm_env, marker_of(kube, namespace, name)) == {job}
    finally:
        kube.run("delete", "slurmclusters.simjob.io", CLUSTER, "--ignore-not-found", check=False)
        kube.run("delete", "namespace", site_ns, "--wait=false", check=False)
