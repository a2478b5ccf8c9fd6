"""Running Slurm's commands on a login node over SSH (asyncssh), connections pooled.

``SshTarget`` names a login node and a credential: host, port, user, a private key given
as bytes (a Secret's data), optionally an OpenSSH certificate for that key (``*-cert.pub``,
signed by a CA the site trusts: short-lived certificates as NERSC's sshproxy issues),
and the known_hosts lines that the host key must match — host
keys are always verified, never trusted on first use, and no ~/.ssh/config, agent or
password is consulted. ``SshPool`` keeps one connection per (host, port, user, key,
known_hosts) and reconnects when a connection is found closed; concurrent first uses share
one connect; at most ``max_channels`` commands run at once on a connection (sshd's
``MaxSessions`` defaults to 10 and refuses more). ``SshRunner`` (the ``Runner`` protocol
of runners.py) sends each argv as one ``shlex.join``-quoted command line, so the login
shell must be POSIX-like (sh, bash, zsh).

A server refusing the login while the certificate is outside its validity window (by
our clock) raises ``CredentialsExpired`` (a ``SlurmUnavailable``) carrying
``valid_before``; any other refusal or failure to connect is ``SlurmUnavailable``.
An expired certificate is not used further through a connection it opened while it was
valid (sshd would not end that session): the pooled connection is closed at its next
use and the login node asked again, which refuses it — the site's short-lived
credential policy holds, and a renewed certificate (a new ``SshTarget``) logs in anew.

Safety of retries: a command is retried once on a fresh connection only when the old one
failed before the command was started (channel open failed); once started, a broken
connection raises ``SlurmUnavailable`` — ``sbatch`` may have run, the caller looks the
marker up before submitting again.
Neighbours: runners.py (protocol, local runner), cli.py (the client using either).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncssh

from slurm_bridge.certs import CertificateValidity, certificate_validity
from slurm_bridge.errors import CredentialsExpired, SlurmUnavailable
from slurm_bridge.runners import DEFAULT_TIMEOUT_S, RunResult

__all__ = ["SshPool", "SshRunner", "SshTarget"]

logger = logging.getLogger(__name__)
PoolKey = tuple[str, int, str, str]
# Retries of a session refused by a live connection (backoff 0.1 s doubling: ~6 s in all).
_SESSION_RETRIES = 6


@dataclass(frozen=True, slots=True)
class SshTarget:
    """A login node and the credential to use on it (secrets kept out of ``repr``)."""

    host: str
    user: str
    private_key: bytes = field(repr=False)
    known_hosts: bytes = field(repr=False)
    port: int = 22
    passphrase: bytes | None = field(default=None, repr=False)
    certificate: bytes | None = field(default=None, repr=False)

    @property
    def pool_key(self) -> PoolKey:
        """Identity of the connection: endpoint, user and a digest of the credential."""
        digest = hashlib.sha256()
        parts = (self.private_key, self.known_hosts, self.passphrase or b"", self.certificate)
        for part in (p or b"" for p in parts):
            digest.update(len(part).to_bytes(8, "big") + part)
        return self.host, self.port, self.user, digest.hexdigest()

    @property
    def address(self) -> str:
        """``user@host:port`` for messages."""
        return f"{self.user}@{self.host}:{self.port}"


class SshPool:
    """One live SSH connection per target credential, opened on first use."""

    def __init__(
        self,
        *,
        connect_timeout: float = 15.0,
        keepalive_interval: float = 30.0,
        keepalive_count_max: int = 3,
        max_channels: int = 8,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._keepalive_interval = keepalive_interval
        self._keepalive_count_max = keepalive_count_max
        self._connections: dict[PoolKey, asyncssh.SSHClientConnection] = {}
        self._connecting: dict[PoolKey, asyncio.Task[asyncssh.SSHClientConnection]] = {}
        self._max_channels = max_channels
        self._channels: dict[PoolKey, asyncio.Semaphore] = {}
        self.connects = 0  # connections opened so far (observability, tests)

    def runner(self, target: SshTarget) -> SshRunner:
        """A runner for ``target`` sharing this pool's connection."""
        return SshRunner(self, target)

    async def connection(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        """The open connection for ``target``, connecting (once) when there is none."""
        key = target.pool_key
        conn = self._connections.get(key)
        if conn is not None and not conn.is_closed() and not _outside_validity(target):
            return conn
        if conn is not None:
            self._connections.pop(key, None)
            conn.close()  # closed already, or its certificate has expired
        task = self._connecting.get(key)
        if task is None:
            task = asyncio.create_task(self._connect(target), name=f"ssh-connect {target.address}")
            self._connecting[key] = task
        try:
            # Shielded: a cancelled caller must not abort a connect others wait for.
            conn = await asyncio.shield(task)
        finally:
            if task.done() and self._connecting.get(key) is task:
                del self._connecting[key]
        # Re-check after the await: another caller may have stored or replaced it.
        current = self._connections.get(key)
        if current is not None and current is not conn and not current.is_closed():
            return current
        self._connections[key] = conn
        return conn

    def channel_slot(self, target: SshTarget) -> asyncio.Semaphore:
        """The semaphore bounding concurrent commands on ``target``'s connection."""
        return self._channels.setdefault(target.pool_key, asyncio.Semaphore(self._max_channels))

    def discard(self, target: SshTarget, conn: asyncssh.SSHClientConnection) -> None:
        """Forget (and close) ``conn`` if it is still the pooled one for ``target``."""
        key = target.pool_key
        if self._connections.get(key) is conn:
            del self._connections[key]
        conn.close()

    async def close(self) -> None:
        """Close every pooled connection (the pool can be used again afterwards)."""
        connections = list(self._connections.values())
        self._connections.clear()
        for conn in connections:
            conn.close()
        for conn in connections:
            await conn.wait_closed()

    async def _connect(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        validity: CertificateValidity | None = None
        try:
            client_key = asyncssh.import_private_key(target.private_key, target.passphrase)
            known_hosts = asyncssh.import_known_hosts(target.known_hosts.decode("utf-8"))
            keys: list[object] = [client_key]
            if target.certificate is not None:
                validity = certificate_validity(target.certificate)
                keys = [(client_key, asyncssh.import_certificate(target.certificate))]
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise SlurmUnavailable(
                f"SSH credential for {target.address} is unusable: {exc}"
            ) from exc
        try:
            conn = await asyncssh.connect(
                target.host,
                target.port,
                username=target.user,
                client_keys=keys,
                known_hosts=known_hosts,
                config=[],
                agent_path=None,
                preferred_auth=["publickey"],
                password=None,
                connect_timeout=self._connect_timeout,
                login_timeout=self._connect_timeout,
                keepalive_interval=self._keepalive_interval,
                keepalive_count_max=self._keepalive_count_max,
            )
        except asyncssh.PermissionDenied as exc:
            if validity is not None and (validity.expired() or validity.not_yet_valid()):
                state = "has expired" if validity.expired() else "is not valid yet"
                raise CredentialsExpired(
                    f"{target.address} refused the SSH certificate: it {state} "
                    f"({validity.describe()}); renew the credential",
                    valid_before=validity.valid_before,
                ) from exc
            raise SlurmUnavailable(
                f"cannot connect to {target.address}: {type(exc).__name__}: {exc}"
            ) from exc
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise SlurmUnavailable(
                f"cannot connect to {target.address}: {type(exc).__name__}: {exc}"
            ) from exc
        self.connects += 1
        logger.info("SSH connection %d opened to %s", self.connects, target.address)
        return conn


class SshRunner:
    """Runs argument vectors on ``target`` through ``pool``'s connection."""

    def __init__(self, pool: SshPool, target: SshTarget) -> None:
        self._pool = pool
        self._target = target

    @property
    def where(self) -> str:
        return f"ssh {self._target.address}"

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> RunResult:
        args = tuple(argv)
        if not args:
            raise ValueError("empty argument vector")
        command = shlex.join(args)
        async with self._pool.channel_slot(self._target):
            return await self._run(args, command, stdin, timeout_s)

    async def _run(
        self, args: tuple[str, ...], command: str, stdin: bytes | None, timeout_s: float
    ) -> RunResult:
        conn, process = await self._start(args, command, stdin)
        try:
            completed = await process.wait(check=False, timeout=timeout_s)
        except asyncssh.TimeoutError:
            process.close()
            self._pool.discard(self._target, conn)
            raise SlurmUnavailable(
                f"`{command}` on {self._target.address} did not finish within {timeout_s:g} s",
                argv=args,
            ) from None
        except (OSError, asyncssh.Error) as exc:
            self._pool.discard(self._target, conn)
            raise SlurmUnavailable(
                f"SSH connection to {self._target.address} broke while `{command}` ran "
                f"(it may have run): {type(exc).__name__}: {exc}",
                argv=args,
            ) from exc
        returncode = completed.returncode
        if returncode is None:
            raise SlurmUnavailable(
                f"`{command}` on {self._target.address} ended without an exit status",
                argv=args,
            )
        return RunResult(
            argv=args,
            returncode=returncode,
            stdout=_text(completed.stdout),
            stderr=_text(completed.stderr),
        )

    async def _start(
        self, args: tuple[str, ...], command: str, stdin: bytes | None
    ) -> tuple[asyncssh.SSHClientConnection, asyncssh.SSHClientProcess[bytes]]:
        refusals = broken = 0
        while True:
            conn = await self._pool.connection(self._target)
            try:
                if stdin is None:
                    process = await conn.create_process(
                        command, stdin=asyncssh.DEVNULL, encoding=None
                    )
                else:
                    process = await conn.create_process(command, input=stdin, encoding=None)
            except asyncssh.ChannelOpenError as exc:
                if not conn.is_closed():
                    # A live connection refusing one more session: sshd's MaxSessions, whose
                    # count lags behind channels that just closed. Keep the connection (it
                    # carries running commands) and retry: this command never started.
                    refusals += 1
                    if refusals > _SESSION_RETRIES:
                        raise SlurmUnavailable(
                            f"{self._target.address} refused a new session for `{command}` "
                            f"{refusals} times: {exc} (max_channels above MaxSessions?)",
                            argv=args,
                        ) from exc
                    await asyncio.sleep(0.1 * 2 ** (refusals - 1))
                    continue
                error: Exception = exc
            except (OSError, asyncssh.Error) as exc:
                error = exc
            else:
                return conn, process
            # The connection is broken and the channel did not open: the command never
            # started, so one retry on a fresh connection is safe.
            self._pool.discard(self._target, conn)
            broken += 1
            logger.warning(
                "SSH connection to %s unusable (%s: %s)",
                self._target.address,
                type(error).__name__,
                error,
            )
            if broken >= 2:
                raise SlurmUnavailable(
                    f"cannot start `{command}` on {self._target.address}: "
                    f"{type(error).__name__}: {error}",
                    argv=args,
                ) from error

    async def close(self) -> None:
        """Connections belong to the pool (``SshPool.close``); nothing to do here."""
        return None


def _outside_validity(target: SshTarget) -> bool:
    """The target's certificate (if any) is expired or not yet valid by our clock."""
    if target.certificate is None:
        return False
    try:
        validity = certificate_validity(target.certificate)
    except ValueError:
        return False  # _connect reports it
    return validity.expired() or validity.not_yet_valid()


def _text(data: object) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return "" if data is None else str(data)
