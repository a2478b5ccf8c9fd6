"""Slurm sites: SlurmClusters as the backend knows them, and a client for each login.

``Sites`` caches SlurmCluster objects (re-listed every ``SlurmTimings.cluster_resync``
by ``supervisor``, a GET on a miss, like ``controller.tiers.TierCache``; all through
``kube.seam.KubeApi``) and hands out ``slurm_bridge.SlurmClient``s, one per
(SlurmCluster, login), each wrapped in a ``reachability.ReportingClient`` so that
every call's outcome sets the cluster's ``Reachable`` condition. Local mode runs
Slurm's commands as the operator's user with the operator's environment
(``SLURM_CONF``), through the CLI or pyslurm; ssh mode builds an ``SshTarget`` from
Secrets (``credentials.ssh_target``, re-read after ``SlurmTimings.credentials_ttl``)
and runs through the process's one ``SshPool`` (one connection per credential). A
credential whose certificate has expired is re-read at every use (no TTL), so that a
renewed Secret is used at the next poll; ``certificate`` tells the poller about it.

What cannot work whatever we retry (per-user credentials on a local cluster, a missing
optional dependency, the Secret problems of ``credentials``) raises ``SiteError`` with
a reason for the SimJob; Slurm not answering is ``slurm_bridge.SlurmUnavailable`` from
the client. Used by ``backend``, ``poller`` and ``supervisor``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pydantic

from simjob_operator.api.reasons import Reason
from simjob_operator.api.slurmcluster import SlurmClusterSpec
from simjob_operator.backends.slurm.credentials import DEFAULT_LOGIN, Login, SiteError, ssh_target
from simjob_operator.backends.slurm.reachability import Reachability, ReportingClient
from simjob_operator.core.settings import DEFAULT as SETTINGS
from simjob_operator.core.settings import SlurmTimings
from simjob_operator.kube.seam import KubeApi
from slurm_bridge import (
    Accounting,
    CertificateValidity,
    CliSlurmClient,
    LocalRunner,
    SlurmClient,
    SlurmUnavailable,
    certificate_validity,
)
from slurm_bridge.runners import Runner

__all__ = ["DEFAULT_LOGIN", "Login", "Site", "SiteError", "Sites"]

logger = logging.getLogger("simjob_operator.slurm")


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
    client: SlurmClient  # a ReportingClient
    certificate: Certificate | None = None


@dataclasses.dataclass(frozen=True)
class Certificate:
    """The SSH certificate of a login, and the Secret it was read from."""

    validity: CertificateValidity
    secret: str  # namespace/name

    def expired(self, now: datetime) -> bool:
        return self.validity.expired(now) or self.validity.not_yet_valid(now)


class Sites:
    """SlurmClusters and the clients that reach them (one ``SshPool`` per process)."""

    def __init__(
        self,
        kube: KubeApi,
        *,
        settings: SlurmTimings = SETTINGS.slurm,
        pyslurm_module: ModuleType | None = None,
        local_env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._sites: dict[str, Site] = {}
        self._pool: Any = None  # slurm_bridge.ssh.SshPool, imported on first ssh use
        self._credentials: dict[tuple[str, Login], _Credentials] = {}
        self._clients: dict[tuple[Any, ...], SlurmClient] = {}
        self._reachability: dict[str, Reachability] = {}
        self._pyslurm_module = pyslurm_module
        self._local_env = dict(local_env) if local_env is not None else None
        self._clock = clock
        self._wall = wall

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
        body = await self._kube.get_slurmcluster(name)
        return self.update(body) if body is not None else None

    def reachability(self, name: str) -> Reachability:
        """The ``Reachable`` condition of the SlurmCluster ``name`` (one per cluster)."""
        reachability = self._reachability.get(name)
        if reachability is None:
            reachability = self._reachability[name] = Reachability(name)
        return reachability

    def forget(self, name: str) -> None:
        """The SlurmCluster was deleted: a new one of that name starts afresh."""
        self._sites.pop(name, None)
        self._reachability.pop(name, None)
        for cache_key in [key for key in self._credentials if key[0] == name]:
            del self._credentials[cache_key]

    # ------------------------------------------------------------------ clients

    async def client(self, site: Site, login: Login) -> SlurmClient:
        """The client for ``login`` on ``site`` (cached; Secrets re-read after a TTL),
        reporting to the site's ``Reachability``."""
        cache_key = (site.name, login)
        cached = self._credentials.get(cache_key)
        now = self._clock()
        fresh = cached is not None and (
            site.spec.mode == "local" or now - cached.read_at < self._settings.credentials_ttl
        )
        if cached is not None and cached.certificate is not None:
            fresh = fresh and not cached.certificate.expired(self._wall())  # renewed yet?
        if cached is not None and fresh and cached.key[:2] == (site.generation, site.spec.work_dir):
            return cached.client
        key, client, certificate = await self._build(site, login)
        if cached is not None and cached.key == key:
            reporting = cached.client  # the Secrets were re-read and have not changed
        else:
            reporting = ReportingClient(client, self.reachability(site.name))
        self._credentials[cache_key] = _Credentials(now, key, reporting, certificate)
        return reporting

    def certificate(self, name: str, login: Login) -> Certificate | None:
        """The certificate of ``login`` on the SlurmCluster ``name`` as last read."""
        cached = self._credentials.get((name, login))
        return cached.certificate if cached is not None else None

    async def _build(
        self, site: Site, login: Login
    ) -> tuple[tuple[Any, ...], SlurmClient, Certificate | None]:
        spec = site.spec
        if spec.mode == "local":
            if login.secret is not None:
                raise SiteError(
                    Reason.INVALID_SLURM_CREDENTIALS,
                    f"spec.slurm.credentialsSecretRef needs a SlurmCluster in ssh mode; "
                    f"{site.name} runs Slurm's commands locally as the operator's user",
                )
            key: tuple[Any, ...] = (site.generation, spec.work_dir, "local", spec.client)
            return key, self._cached_client(key, lambda: self._local_client(spec)), None
        target, work_dir, secret = await ssh_target(self._kube, site.name, spec, login)
        key = (site.generation, spec.work_dir, "ssh", target.pool_key, work_dir)
        client = self._cached_client(key, lambda: self._ssh_client(spec, target, work_dir))
        certificate = None
        if target.certificate is not None:  # checked by ssh_target
            certificate = Certificate(certificate_validity(target.certificate), secret)
        return key, client, certificate

    async def rundir_runner(self, site: Site, login: Login) -> tuple[Runner, str]:
        """A ``Runner`` for ``login`` on ``site`` and that login's workDir, for the run
        directories under it (``slurm_bridge.rundirs``); raises ``SiteError``."""
        spec = site.spec
        if spec.mode == "local":
            return LocalRunner(env=self._local_env), spec.work_dir
        found = await ssh_target(self._kube, site.name, spec, login)
        return self._ssh_pool().runner(found[0]), found[1]  # (target, workDir, ...)

    def _cached_client(self, key: tuple[Any, ...], build: Callable[[], SlurmClient]) -> SlurmClient:
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
            command_timeout=self._settings.command_timeout,
            cancel_confirm_timeout=self._settings.cancel_confirm,
            cancel_poll_interval=self._settings.cancel_poll_interval,
            gpu_request=spec.gpu_request,
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
                cancel_confirm_timeout=self._settings.cancel_confirm,
                cancel_poll_interval=self._settings.cancel_poll_interval,
                pyslurm_module=self._pyslurm_module,
                gpu_request=spec.gpu_request,
            )
        except SlurmUnavailable as exc:  # pyslurm is not installed (or does not load)
            raise SiteError(Reason.BACKEND_UNAVAILABLE, exc.message) from exc

    def _ssh_client(self, spec: SlurmClusterSpec, target: Any, work_dir: str) -> SlurmClient:
        return CliSlurmClient(
            self._ssh_pool().runner(target),
            work_dir=work_dir,
            accounting=Accounting(spec.accounting),
            command_timeout=self._settings.command_timeout,
            cancel_confirm_timeout=self._settings.cancel_confirm,
            cancel_poll_interval=self._settings.cancel_poll_interval,
            gpu_request=spec.gpu_request,
        )

    def _ssh_pool(self) -> Any:
        if self._pool is None:
            from slurm_bridge.ssh import SshPool

            self._pool = SshPool()
        return self._pool

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
