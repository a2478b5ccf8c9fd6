"""slurm_bridge additions over a real sshd in front of the local Slurm (SSH mode).

tests/support/sshd_server.py's sshd, here also trusting a user CA (``TrustedUserCAKeys``,
made with ``ssh-keygen``): ``ping``; a multi-line ``sh -c`` script as a job; a run
directory written, listed, fetched and removed over SSH with planted symlinks (a file
to /etc/passwd, a symlinked directory) that cannot be read through; an OpenSSH
certificate (a key that is NOT in authorized_keys) logs in and runs Slurm commands,
its validity is read, and a certificate whose window has passed (``-V 20200101:20200102``)
raises ``CredentialsExpired``.
Neighbours: test_bridge_slurm.py (local twin), tests/integration/test_slurm_bridge_ssh.py.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from slurm_bridge import (
    CliSlurmClient,
    CredentialsExpired,
    JobKind,
    JobSpec,
    RunDirError,
    SlurmUnavailable,
    certificate_validity,
    fetch_file,
    list_run_dir,
    remove_run_dir,
    write_inputs,
)
from slurm_bridge.ssh import SshPool, SshTarget
from tests.support.slurm_bridge_helpers import finished, run, wait_for_state
from tests.support.sshd_server import HOST, SshdServer

pytestmark = pytest.mark.slurm

USER = "simjob-brg1"
FINISH_S = 120.0
SCRIPT = 'set -eu\nfor w in one two; do\n\techo "word $w"\ndone\necho "user $(id -un)"\n'


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ssh-ca")
    path.chmod(0o755)
    keygen(path / "ca")
    return path


def keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def certify(ca_dir: Path, name: str, validity: str) -> tuple[bytes, bytes]:
    """A fresh key (not in authorized_keys) and its certificate for USER: (key, cert)."""
    key = ca_dir / name
    keygen(key)
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(ca_dir / "ca"), "-I", f"{name}@test", "-n", USER,
         "-V", validity, f"{key}.pub"],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return key.read_bytes(), Path(f"{key}-cert.pub").read_bytes()


@pytest.fixture(scope="module")
def sshd(slurm_env: dict[str, str], ca_dir: Path) -> Iterator[SshdServer]:
    if os.geteuid() != 0:
        pytest.skip("SSH-mode tests create Unix users and run sshd: they need root")
    server = SshdServer([USER], slurm_env["SLURM_CONF"])
    with server.config.open("a") as config:
        config.write(f"TrustedUserCAKeys {ca_dir / 'ca.pub'}\n")
    server.start()
    try:
        yield server
    finally:
        subprocess.run(["scancel", "--user", USER], env=slurm_env, capture_output=True, timeout=60)
        server.remove()


def target(sshd: SshdServer, *, key: bytes | None = None, cert: bytes | None = None) -> SshTarget:
    return SshTarget(
        host=HOST,
        port=sshd.port,
        user=USER,
        private_key=sshd.users[USER].private_key if key is None else key,
        known_hosts=sshd.known_hosts,
        certificate=cert,
    )


def test_ping_and_a_multiline_script_over_ssh(sshd: SshdServer) -> None:
    spec = JobSpec(marker=f"simjob-brg-multi-{uuid.uuid4().hex[:12]}", command=["sh", "-c", SCRIPT])

    async def scenario() -> str:
        pool = SshPool(connect_timeout=10)
        client = CliSlurmClient(pool.runner(target(sshd)), work_dir=str(sshd.users[USER].work_dir))
        try:
            await client.ping()
            job_id = await client.submit(spec)
            state = await wait_for_state(client, job_id, finished, timeout_s=FINISH_S)
            assert (state.kind, state.exit_code) == (JobKind.SUCCEEDED, 0), state
            return job_id
        finally:
            await pool.close()

    job_id = run(scenario())
    output = (sshd.users[USER].work_dir / f"simjob-{job_id}.out").read_text()
    assert output == f"word one\nword two\nuser {USER}\n"


def test_run_directory_over_ssh_with_planted_symlinks(sshd: SshdServer) -> None:
    root = str(sshd.users[USER].work_dir / "runs")
    run_dir = f"{root}/lab/sim-{uuid.uuid4().hex}"
    neighbour = f"{root}/lab/sim-{uuid.uuid4().hex}"
    data = bytes(range(256)) * 3
    plant = "mkdir out && echo result > out/r.txt && ln -s /etc/passwd passwd && ln -s /etc etc"

    async def scenario() -> None:
        pool = SshPool(connect_timeout=10)
        runner = pool.runner(target(sshd))
        try:
            await write_inputs(runner, run_dir, {"in.bin": data, "cfg.yaml": b"a: 1\n"}, mode=0o600)
            await write_inputs(runner, neighbour, {"keep": b"k"})
            entry = pwd.getpwnam(USER)
            assert os.stat(f"{run_dir}/in.bin").st_uid == entry.pw_uid  # as the login user
            assert os.stat(f"{run_dir}/in.bin").st_mode & 0o777 == 0o600
            # What a hostile simulation leaves behind (as the login user):
            assert (await runner.run(["sh", "-c", f"cd {run_dir} && {plant}"])).ok
            entries = {e.path: e.kind for e in await list_run_dir(runner, run_dir)}
            assert entries == {
                "in.bin": "file",
                "cfg.yaml": "file",
                "out": "dir",
                "out/r.txt": "file",
                "passwd": "symlink",
                "etc": "symlink",
            }
            assert await fetch_file(runner, run_dir, "in.bin") == data
            assert await fetch_file(runner, run_dir, "out/r.txt") == b"result\n"
            for path in ("passwd", "etc/passwd", "etc/hostname"):
                with pytest.raises(RunDirError, match="symlink"):
                    await fetch_file(runner, run_dir, path)
            await write_inputs(runner, run_dir, {"passwd": b"replaced\n"})  # replaces the link
            assert await fetch_file(runner, run_dir, "passwd") == b"replaced\n"  # a file now
            assert await remove_run_dir(runner, root, run_dir) is True
        finally:
            await pool.close()

    run(scenario())
    assert not Path(run_dir).exists()
    assert Path(neighbour, "keep").read_bytes() == b"k"
    assert b"root:" in Path("/etc/passwd").read_bytes()  # never written through


def test_a_certificate_logs_in_and_shows_its_expiry(sshd: SshdServer, ca_dir: Path) -> None:
    key, cert = certify(ca_dir, "fresh", "+5m")
    validity = certificate_validity(cert)
    assert validity.principals == (USER,)
    assert validity.valid_before is not None
    assert not validity.expired()

    async def scenario() -> None:
        pool = SshPool(connect_timeout=10)
        client = CliSlurmClient(
            pool.runner(target(sshd, key=key, cert=cert)),
            work_dir=str(sshd.users[USER].work_dir),
        )
        try:
            await client.ping()
            uid = await client.runner.run(["id", "-u"])
            assert uid.stdout.strip() == str(pwd.getpwnam(USER).pw_uid)
            # The key alone (not in authorized_keys) is refused: the certificate counts.
            with pytest.raises(SlurmUnavailable) as refused:
                await pool.runner(target(sshd, key=key)).run(["true"])
            assert not isinstance(refused.value, CredentialsExpired)
        finally:
            await pool.close()

    run(scenario())


def test_an_expired_certificate_raises_credentials_expired(sshd: SshdServer, ca_dir: Path) -> None:
    key, cert = certify(ca_dir, "old", "20200101:20200102")
    validity = certificate_validity(cert)
    assert validity.expired()
    pool = SshPool(connect_timeout=10)
    runner = pool.runner(target(sshd, key=key, cert=cert))
    with pytest.raises(CredentialsExpired, match="has expired") as expired:
        run(runner.run(["true"]))
    assert expired.value.valid_before == validity.valid_before
    assert "renew" in expired.value.message
    assert pool.connects == 0
    assert "Certificate invalid: expired" in sshd.log_tail(400)  # the server said no
