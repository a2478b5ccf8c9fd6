"""Slurm sites: SlurmClusters as the backend knows them, and a client for each login.

``Sites`` caches SlurmCluster objects (refreshed by a LIST every
``SLURM_CLUSTER_RESYNC_SECONDS`` in ``slurm_backend``, a GET on a miss, like
``tiers.TierCache``) and hands out ``slurm_bridge.SlurmClient``s, one per
(SlurmCluster, login): a ``Login`` is the cluster's own credentials (``Login.DEFAULT``)
or a Secret in a SimJob's namespace (``spec.slurm.credentialsSecretRef``). Local mode
runs Slurm's commands as the operator's user with the operator's environment
(``SLURM_CONF``); ssh mode reads the private key and known_hosts from their Secrets
(re-read after ``SLURM_CREDENTIALS_TTL_SECONDS``), builds an ``SshTarget`` and runs
through the process's one ``SshPool`` (one connection per credential). A per-user
Secret holds ``ssh-privatekey`` and may hold ``username`` and ``workDir`` (defaults: the
SlurmCluster's ``user`` and ``workDir``).

What cannot work whatever we retry (no such Secret, no key in it, an unparseable key,
per-user credentials on a local cluster, a missing optional dependency) raises
``SiteError`` with a reason for the SimJob; Slurm not answering is
``slurm_bridge.SlurmUnavailable`` from the client. Used by ``slurm_backend`` and
``slurm_polling``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import pydantic

from simjob_operator.api import names as c
from simjob_operator.api.reasons import Reason
from simjob_operator.api.slurmcluster import SlurmClusterSpec
from simjob_operator.backends.slurm.api import SlurmApi
from simjob_operator.core.settings import DEFAULT as SETTINGS
from slurm_bridge import (
    Accounting,
    CliSlurmClient,
    InvalidJobSpec,
    LocalRunner,
    SlurmClient,
    SlurmUnavailable,
)
from slurm_bridge.specs import check_work_dir

logger = logging.getLogger("simjob_operator.slurm")


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


@dataclasses.dataclass(frozen=True)
class Site:
    """One SlurmCluster: its name, generation, parsed spec and the stored status."""

    name: str
    generation: int
    spec: SlurmClusterSpec
    status: Mapping[str, Any]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Site | None:
        meta = body.get("metadata") or {}
        try:
            spec = SlurmClusterSpec.model_validate(body.get("spec") or {})
        except pydantic.ValidationError as exc:
            logger.warning("SlurmCluster %s has an unusable spec: %s", meta.get("name"), exc)
            return None
        return cls(
            name=str(meta.get("name", "")),
            generation=int(meta.get("generation") or 0),
            spec=spec,
            status=dict(body.get("status") or {}),
        )


@dataclasses.dataclass
class _Credentials:
    read_at: float
    key: tuple[Any, ...]  # what the client is cached under
    client: SlurmClient


class Sites:
    """SlurmClusters and the clients that reach them (one ``SshPool`` per process)."""

    def __init__(
        self,
        api: SlurmApi,
        *,
        pyslurm_module: ModuleType | None = None,
        local_env: Mapping[str, str] | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self._api = api
        self._sites: dict[str, Site] = {}
        self._pool: Any = None  # slurm_bridge.ssh.SshPool, imported on first ssh use
        self._credentials: dict[tuple[str, Login], _Credentials] = {}
        self._clients: dict[tuple[Any, ...], SlurmClient] = {}
        self._pyslurm_module = pyslurm_module
        self._local_env = dict(local_env) if local_env is not None else None
        self._clock = clock

    # ------------------------------------------------------------------ SlurmClusters

    def replace_all(self, bodies: list[dict[str, Any]]) -> None:
        """The result of a LIST: every SlurmCluster there is."""
        sites = (Site.from_body(body) for body in bodies)
        self._sites = {site.name: site for site in sites if site is not None}

    def update(self, body: Mapping[str, Any]) -> Site | None:
        site = Site.from_body(body)
        if site is not None:
            self._sites[site.name] = site
        return site

    def known(self) -> list[Site]:
        return list(self._sites.values())

    def cached(self, name: str) -> Site | None:
        return self._sites.get(name)

    async def get(self, name: str) -> Site | None:
        """The SlurmCluster ``name`` (cache, then the API server); None if there is none."""
        site = self._sites.get(name)
        if site is not None:
            return site
        body = await self._api.get_cluster(name)
        return self.update(body) if body is not None else None

    # ------------------------------------------------------------------ clients

    async def client(self, site: Site, login: Login) -> SlurmClient:
        """The client for ``login`` on ``site`` (cached; Secrets re-read after a TTL)."""
        cache_key = (site.name, login)
        cached = self._credentials.get(cache_key)
        now = self._clock()
        fresh = cached is not None and (
            site.spec.mode == "local" or now - cached.read_at < SETTINGS.slurm.credentials_ttl
        )
        if cached is not None and fresh and cached.key[:2] == (site.generation, site.spec.work_dir):
            return cached.client
        key, client = await self._build(site, login)
        self._credentials[cache_key] = _Credentials(now, key, client)
        return client

    async def _build(self, site: Site, login: Login) -> tuple[tuple[Any, ...], SlurmClient]:
        spec = site.spec
        if spec.mode == "local":
            if login.secret is not None:
                raise SiteError(
                    Reason.INVALID_SLURM_CREDENTIALS,
                    f"spec.slurm.credentialsSecretRef needs a SlurmCluster in ssh mode; "
                    f"{site.name} runs Slurm's commands locally as the operator's user",
                )
            key: tuple[Any, ...] = (site.generation, spec.work_dir, "local", spec.client)
            return key, self._cached_client(key, lambda: self._local_client(spec))
        target, work_dir = await self._ssh_target(site, login)
        key = (site.generation, spec.work_dir, "ssh", target.pool_key, work_dir)
        return key, self._cached_client(key, lambda: self._ssh_client(spec, target, work_dir))

    def _cached_client(self, key: tuple[Any, ...], build: Any) -> SlurmClient:
        client = self._clients.get(key)
        if client is None:
            client = build()
            self._clients[key] = client
        return client

    def _local_client(self, spec: SlurmClusterSpec) -> SlurmClient:
        if spec.client == "pyslurm":
            return self._pyslurm_client(spec)
        return CliSlurmClient(
            LocalRunner(env=self._local_env),
            work_dir=spec.work_dir,
            accounting=Accounting(spec.accounting),
            command_timeout=SETTINGS.slurm.command_timeout,
            cancel_confirm_timeout=SETTINGS.slurm.cancel_confirm,
            cancel_poll_interval=0.25,
        )

    def _pyslurm_client(self, spec: SlurmClusterSpec) -> SlurmClient:
        try:
            from slurm_bridge.pyslurm_client import PyslurmClient
        except ImportError as exc:  # pragma: no cover - the module itself has no hard deps
            raise SiteError(Reason.BACKEND_UNAVAILABLE, str(exc)) from exc
        # pyslurm has no API for the jobcomp completion log: auto means "none" there.
        accounting = "none" if spec.accounting == "auto" else spec.accounting
        if accounting == "completion":
            raise SiteError(
                Reason.BACKEND_UNAVAILABLE,
                "the pyslurm client cannot read the completion log: use accounting sacct "
                "(slurmdbd) or none, or client cli",
            )
        try:
            return PyslurmClient(
                work_dir=spec.work_dir,
                accounting=accounting,
                cancel_confirm_timeout=SETTINGS.slurm.cancel_confirm,
                cancel_poll_interval=0.25,
                pyslurm_module=self._pyslurm_module,
            )
        except SlurmUnavailable as exc:  # pyslurm is not installed (or does not load)
            raise SiteError(Reason.BACKEND_UNAVAILABLE, exc.message) from exc

    def _ssh_client(self, spec: SlurmClusterSpec, target: Any, work_dir: str) -> SlurmClient:
        return CliSlurmClient(
            self._ssh_pool().runner(target),
            work_dir=work_dir,
            accounting=Accounting(spec.accounting),
            command_timeout=SETTINGS.slurm.command_timeout,
            cancel_confirm_timeout=SETTINGS.slurm.cancel_confirm,
            cancel_poll_interval=0.25,
        )

    def _ssh_pool(self) -> Any:
        if self._pool is None:
            from slurm_bridge.ssh import SshPool

            self._pool = SshPool()
        return self._pool

    async def _secret(self, namespace: str, name: str, what: str) -> dict[str, bytes]:
        data = await self._api.get_secret_data(namespace, name)
        if data is None:
            raise SiteError(
                Reason.INVALID_SLURM_CREDENTIALS, f"{what}: Secret {namespace}/{name} not found"
            )
        return data

    @staticmethod
    def _value(data: Mapping[str, bytes], key: str, where: str) -> bytes:
        value = data.get(key)
        if not value:
            raise SiteError(Reason.INVALID_SLURM_CREDENTIALS, f"Secret {where} has no key {key!r}")
        return value

    async def _ssh_target(self, site: Site, login: Login) -> tuple[Any, str]:
        try:
            import asyncssh

            from slurm_bridge.ssh import SshTarget
        except ImportError as exc:
            raise SiteError(
                Reason.BACKEND_UNAVAILABLE,
                f"ssh mode needs asyncssh (pip install 'simjob[ssh]'): {exc}",
            ) from exc
        spec = site.spec
        hosts_ref, creds_ref = spec.known_hosts_secret_ref, spec.credentials_secret_ref
        if spec.host is None or hosts_ref is None:  # the CRD's CEL rules require them
            raise SiteError(
                Reason.INVALID_SLURM_CREDENTIALS,
                f"SlurmCluster {site.name} in ssh mode needs host and knownHostsSecretRef",
            )
        where_hosts = f"{hosts_ref.namespace}/{hosts_ref.name}"
        known_hosts = self._value(
            await self._secret(hosts_ref.namespace, hosts_ref.name, "knownHostsSecretRef"),
            c.SECRET_KEY_KNOWN_HOSTS,
            where_hosts,
        )
        if login.secret is not None and login.namespace is not None:
            where = f"{login.namespace}/{login.secret}"
            data = await self._secret(login.namespace, login.secret, "credentialsSecretRef")
        elif creds_ref is not None:
            where = f"{creds_ref.namespace}/{creds_ref.name}"
            data = await self._secret(creds_ref.namespace, creds_ref.name, "credentialsSecretRef")
        else:
            raise SiteError(
                Reason.INVALID_SLURM_CREDENTIALS,
                f"SlurmCluster {site.name} has no credentialsSecretRef",
            )
        private_key = self._value(data, c.SECRET_KEY_PRIVATE_KEY, where)
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
                f"{site.name} no spec.user",
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
                f"Secret {where_hosts}: {c.SECRET_KEY_KNOWN_HOSTS} is not in known_hosts "
                f"format: {exc}",
            ) from exc
        target = SshTarget(
            host=spec.host,
            port=spec.port,
            user=user,
            private_key=private_key,
            known_hosts=known_hosts,
        )
        return target, work_dir

    async def close(self) -> None:
        for client in list(self._clients.values()):
            try:
                await client.close()
            except Exception:
                logger.warning("closing a Slurm client failed", exc_info=True)
        self._clients.clear()
        self._credentials.clear()
        if self._pool is not None:
            await self._pool.close()
