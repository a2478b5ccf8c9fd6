"""Whose credentials a Slurm job runs with, and reading them from Secrets.

A ``Login`` is a SlurmCluster's own credentials (``DEFAULT_LOGIN``) or a Secret in a
SimJob's namespace (``spec.slurm.credentialsSecretRef``). ``ssh_target`` reads, for a
SlurmCluster in ssh mode, the private key and known_hosts from their Secrets (through
``kube.seam.KubeApi.get_secret``: one named Secret, never a list) and builds a
``slurm_bridge.ssh.SshTarget`` and the work directory. A per-user Secret holds
``ssh-privatekey`` and may hold ``username`` and ``workDir`` (defaults: the
SlurmCluster's ``user`` and ``workDir``), and must carry the label
``simjob.io/credentials=true`` (``CREDENTIALS_LABEL``): a SimJob can make the operator
use only a Secret its namespace marked for that, never any other Secret there (RBAC
cannot filter by label; the chart narrows by name, docs/helm.md). Any credentials
Secret may also hold ``ssh-certificate``, an OpenSSH certificate of the key
(``ssh-keygen -s``; NERSC's sshproxy hands out short-lived ones): it is checked here and
used for the login, its expiry shown by ``certificates``. What cannot work
whatever we retry (no such Secret, no key in it, an unparseable key, a missing optional
dependency) raises ``SiteError`` with a reason for the SimJob. Used by ``sites`` (which
caches the result); neighbours: ``jobs`` (``login_of``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.slurmcluster import SlurmClusterSpec
from simjob_operator.kube.seam import KubeApi
from slurm_bridge import InvalidJobSpec, certificate_validity
from slurm_bridge.specs import check_work_dir

# A per-user Secret (spec.slurm.credentialsSecretRef) must carry this label, value "true".
CREDENTIALS_LABEL: Final = f"{c.GROUP}/credentials"


@dataclasses.dataclass(frozen=True)
class Login:
    """Whose credentials a job runs with: the SlurmCluster's (``secret`` None) or a
    Secret in the SimJob's namespace."""

    namespace: str | None = None
    secret: str | None = None

    def __str__(self) -> str:
        return "cluster credentials" if self.secret is None else f"{self.namespace}/{self.secret}"


DEFAULT_LOGIN = Login()


class SiteError(Exception):
    """A configuration problem no retry will fix: ``reason`` becomes the SimJob's."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


async def _secret(
    kube: KubeApi, namespace: str, name: str, what: str, *, per_user: bool = False
) -> dict[str, bytes]:
    secret = await kube.get_secret(namespace, name)
    if secret is None:
        raise SiteError(
            Reason.INVALID_SLURM_CREDENTIALS, f"{what}: Secret {namespace}/{name} not found"
        )
    if per_user and secret.labels.get(CREDENTIALS_LABEL) != "true":
        raise SiteError(
            Reason.INVALID_SLURM_CREDENTIALS,
            f"{what}: Secret {namespace}/{name} is not marked as SimJob credentials: "
            f"label it {CREDENTIALS_LABEL}=true (the operator uses no other Secret)",
        )
    return secret.data


def _value(data: Mapping[str, bytes], key: str, where: str) -> bytes:
    value = data.get(key)
    if not value:
        raise SiteError(Reason.INVALID_SLURM_CREDENTIALS, f"Secret {where} has no key {key!r}")
    return value


async def ssh_target(
    kube: KubeApi, cluster: str, spec: SlurmClusterSpec, login: Login
) -> tuple[Any, str, str]:
    """(``SshTarget``, work directory, ``namespace/name`` of the credentials Secret) of
    ``login`` on the ssh-mode SlurmCluster ``cluster``; raises ``SiteError``."""
    try:
        import asyncssh

        from slurm_bridge.ssh import SshTarget
    except ImportError as exc:
        raise SiteError(
            Reason.BACKEND_UNAVAILABLE,
            f"ssh mode needs asyncssh (pip install 'simjob[ssh]'): {exc}",
        ) from exc
    hosts_ref, creds_ref = spec.known_hosts_secret_ref, spec.credentials_secret_ref
    if spec.host is None or hosts_ref is None:  # the CRD's CEL rules require them
        raise SiteError(
            Reason.INVALID_SLURM_CREDENTIALS,
            f"SlurmCluster {cluster} in ssh mode needs host and knownHostsSecretRef",
        )
    where_hosts = f"{hosts_ref.namespace}/{hosts_ref.name}"
    known_hosts = _value(
        await _secret(kube, hosts_ref.namespace, hosts_ref.name, "knownHostsSecretRef"),
        c.SECRET_KEY_KNOWN_HOSTS,
        where_hosts,
    )
    if login.secret is not None and login.namespace is not None:
        where = f"{login.namespace}/{login.secret}"
        data = await _secret(
            kube, login.namespace, login.secret, "credentialsSecretRef", per_user=True
        )
    elif creds_ref is not None:
        where = f"{creds_ref.namespace}/{creds_ref.name}"
        data = await _secret(kube, creds_ref.namespace, creds_ref.name, "credentialsSecretRef")
    else:
        raise SiteError(
            Reason.INVALID_SLURM_CREDENTIALS,
            f"SlurmCluster {cluster} has no credentialsSecretRef",
        )
    private_key = _value(data, c.SECRET_KEY_PRIVATE_KEY, where)
    user = (data.get(c.SECRET_KEY_USERNAME) or b"").decode(errors="replace").strip()
    user = user or (spec.user or "")
    work_dir = (data.get(c.SECRET_KEY_WORK_DIR) or b"").decode(errors="replace").strip()
    try:
        work_dir = check_work_dir(work_dir or spec.work_dir)
    except InvalidJobSpec as exc:
        raise SiteError(Reason.INVALID_SLURM_CREDENTIALS, f"Secret {where}: {exc}") from exc
    if not user:
        raise SiteError(
            Reason.INVALID_SLURM_CREDENTIALS,
            f"no site user: Secret {where} has no 'username' and SlurmCluster "
            f"{cluster} no spec.user",
        )
    try:
        asyncssh.import_private_key(private_key)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise SiteError(
            Reason.INVALID_SLURM_CREDENTIALS,
            f"Secret {where}: {c.SECRET_KEY_PRIVATE_KEY} is not a usable private key "
            f"(encrypted keys are not supported): {exc}",
        ) from exc
    try:
        asyncssh.import_known_hosts(known_hosts.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SiteError(
            Reason.INVALID_SLURM_CREDENTIALS,
            f"Secret {where_hosts}: {c.SECRET_KEY_KNOWN_HOSTS} is not in known_hosts format: {exc}",
        ) from exc
    certificate = data.get(c.SECRET_KEY_CERTIFICATE) or None
    if certificate is not None:
        try:
            certificate_validity(certificate)
            asyncssh.import_certificate(certificate)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise SiteError(
                Reason.INVALID_SLURM_CREDENTIALS,
                f"Secret {where}: {c.SECRET_KEY_CERTIFICATE} is not an OpenSSH user "
                f"certificate: {exc}",
            ) from exc
    target = SshTarget(
        host=spec.host,
        port=spec.port,
        user=user,
        private_key=private_key,
        known_hosts=known_hosts,
        certificate=certificate,
    )
    return target, work_dir, where
