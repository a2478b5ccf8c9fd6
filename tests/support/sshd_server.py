"""A private OpenSSH server on 127.0.0.1 acting as the local Slurm site's login node.

``SshdServer`` runs Debian's ``/usr/sbin/sshd`` (package openssh-server, installed with
apt-get when missing; its service is never started) in the foreground with its own config,
host key, PID file and log under a fresh directory in /tmp (0755 so that the login users
can read their authorized_keys), on a free loopback port: public-key authentication only
(no passwords, no PAM, no root), ``AllowUsers`` limited to the test users.

How the login users get ``SLURM_CONF``: sshd's own ``SetEnv SLURM_CONF=…`` (OpenSSH >= 8.7)
puts it into every session — the way a real site sets it system-wide on its login nodes —
so nothing is forwarded from the client and the bridge needs no wrapper.
``StrictModes no`` because the key files live under /tmp (world-writable parent).

Users are ordinary local Unix accounts made with useradd (password field ``*``: no
password, not locked, as sshd without PAM requires); those created here are removed by
``remove_users``. Every sshd is stopped by PID: the listener, then its per-connection
children found through /proc (descendants of that PID).
Neighbours: tests/integration/test_slurm_bridge_ssh.py.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

SSHD = Path("/usr/sbin/sshd")
HOST = "127.0.0.1"


def ensure_openssh_server() -> None:
    """Install openssh-server with apt-get when sshd is missing (service not started)."""
    if SSHD.exists():
        return
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:  # keep the package's postinst from starting the system sshd
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for argv in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "openssh-server"],
        ):
            subprocess.run(argv, env=env, check=True, capture_output=True, timeout=600)
    finally:
        if own_policy:
            policy.unlink()


@dataclass
class SshUser:
    """A login user: name, its private key (bytes, like a Secret's data), its work dir."""

    name: str
    private_key: bytes
    public_key: str
    work_dir: Path
    created_here: bool


def ensure_user(name: str) -> bool:
    """Create the local user ``name`` (home, bash) unless it exists; True if created."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/bash", "--user-group", name],
            check=True,
            capture_output=True,
            timeout=60,
        )
        created = True
    else:
        created = False
    # No password, but not locked: sshd without PAM refuses accounts whose hash is '!'.
    subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True, timeout=60)
    return created


def new_key() -> tuple[bytes, str]:
    """A fresh ed25519 key: (OpenSSH private key bytes, public key line)."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    return key.export_private_key(), key.export_public_key().decode().strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """PIDs of every live descendant of ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(rest[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def terminate(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM ``pids``, SIGKILL what is left after ``timeout``."""
    for pid in pids:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout
    for pid in pids:
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
            if state == "Z":
                break
            time.sleep(0.05)
        if Path(f"/proc/{pid}").exists() and time.monotonic() >= deadline:
            os.kill(pid, 9)


class SshdServer:
    """One sshd for the given users; ``start``/``stop`` (by PID) may be repeated."""

    def __init__(
        self, user_names: list[str], slurm_conf: str, *, slow_commands_s: float = 0.0
    ) -> None:
        """``slow_commands_s`` > 0 puts wrappers first on the sessions' PATH that sleep that
        long before running the real squeue/sacct/scontrol: a fault test that kills sshd
        "while a Slurm command runs" then finds one running at every poll."""
        ensure_openssh_server()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        self.dir = Path(tempfile.mkdtemp(prefix="simjob-sshd-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        host_key.write_private_key(str(self.dir / "host_ed25519_key"))
        (self.dir / "host_ed25519_key").chmod(0o600)
        self.host_public_key = host_key.export_public_key().decode().strip()
        keys_dir = self.dir / "authorized_keys"
        keys_dir.mkdir(mode=0o755)
        self.users: dict[str, SshUser] = {}
        for name in user_names:
            created = ensure_user(name)
            private, public = new_key()
            (keys_dir / name).write_text(public + "\n")
            (keys_dir / name).chmod(0o644)
            work = self.dir / f"work-{name}"
            work.mkdir()
            entry = pwd.getpwnam(name)
            os.chown(work, entry.pw_uid, entry.pw_gid)
            self.users[name] = SshUser(name, private, public, work, created)
        set_env = f"SetEnv SLURM_CONF={slurm_conf}"  # one line: sshd takes the first SetEnv
        if slow_commands_s > 0:
            slow = self.dir / "slow-bin"
            slow.mkdir(mode=0o755)
            for command in ("squeue", "sacct", "scontrol"):
                real = shutil.which(command) or f"/usr/bin/{command}"
                wrapper = slow / command
                wrapper.write_text(f'#!/bin/sh\nsleep {slow_commands_s}\nexec {real} "$@"\n')
                wrapper.chmod(0o755)
            set_env += f" PATH={slow}:/usr/local/bin:/usr/bin:/bin"
        self.config = self.dir / "sshd_config"
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {HOST}",
                    f"HostKey {self.dir / 'host_ed25519_key'}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {keys_dir}/%u",
                    "AuthenticationMethods publickey",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin no",
                    "UsePAM no",
                    "StrictModes no",
                    f"AllowUsers {' '.join(user_names)}",
                    set_env,
                    "PrintMotd no",
                    "PrintLastLog no",
                    "X11Forwarding no",
                    "AllowTcpForwarding no",
                    "LogLevel VERBOSE",
                ]
            )
            + "\n"
        )
        self.log = self.dir / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def known_hosts(self) -> bytes:
        """The known_hosts line that verifies this server's host key."""
        return f"[{HOST}]:{self.port} {self.host_public_key}\n".encode()

    def start(self) -> None:
        check = subprocess.run(
            [str(SSHD), "-t", "-f", str(self.config)], capture_output=True, timeout=30
        )
        assert check.returncode == 0, check.stderr.decode()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 20
        while True:
            assert self.proc.poll() is None, f"sshd exited: {self.log_tail()}"
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
            except OSError:
                assert time.monotonic() < deadline, f"sshd not listening: {self.log_tail()}"
                time.sleep(0.1)
            else:
                return

    def session_pids(self) -> list[int]:
        """PIDs of the per-connection sshd processes (and what they run)."""
        return descendants(self.proc.pid) if self.proc is not None else []

    def stop(self) -> None:
        """Stop the listener and its per-connection children, by PID."""
        if self.proc is None:
            return
        sessions = self.session_pids()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        terminate(sessions)
        self.proc = None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def remove(self) -> None:
        """Stop sshd, remove the users created here and the directory."""
        self.stop()
        for user in self.users.values():
            if user.created_here:
                remove_user(user.name)
        shutil.rmtree(self.dir, ignore_errors=True)


def remove_user(name: str, timeout: float = 30.0) -> None:
    """userdel, retried while the user's last processes (exiting sessions) are reaped."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(
            ["userdel", "--remove", name], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode in (0, 6):  # removed / no such user
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"userdel {name} failed ({done.returncode}): {done.stderr}")
        time.sleep(0.5)


@contextmanager
def serving(
    user_names: list[str], slurm_env: Mapping[str, str], *, slow_commands_s: float = 0.0
) -> Iterator[SshdServer]:
    """An sshd for ``user_names`` on the local Slurm of ``slurm_env`` (a test is skipped
    unless we are root: it creates Unix users). Afterwards the users' leftover jobs are
    cancelled (userdel refuses users with processes), then sshd and the users go."""
    if os.geteuid() != 0:
        pytest.skip("SSH-mode tests create Unix users and run sshd: they need root")
    server = SshdServer(user_names, slurm_env["SLURM_CONF"], slow_commands_s=slow_commands_s)
    server.start()
    try:
        yield server
    finally:
        for name in user_names:
            subprocess.run(
                ["scancel", "--user", name], env=dict(slurm_env), capture_output=True, timeout=60
            )
        server.remove()
