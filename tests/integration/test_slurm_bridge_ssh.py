"""SSH mode: CliSlurmClient over SshRunner against a real sshd in front of the local Slurm.

tests/sshd_server.py starts Debian's sshd on a free 127.0.0.1 port (own host key and
config, key authentication only, ``SetEnv SLURM_CONF``) for two fresh Unix users with
their own keys. The same Slurm commands as in local mode run through it: the hostile
argv corpus, failure with exit code and tail, cancel, adoption by marker, batching with
one squeue call. Host keys are verified (a wrong or absent key is refused before any
command); per-user credentials run jobs as that user and share nothing; a broken or
restarted sshd is reconnected; more concurrent commands than sshd's MaxSessions are
queued on one connection.
Neighbours: test_slurm_bridge.py (local mode), tests/sshd_server.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from slurm_bridge import CliSlurmClient, JobKind, JobSpec, RunResult, SlurmUnavailable
from slurm_bridge.ssh import SshPool, SshRunner, SshTarget
from tests.support.slurm_bridge_helpers import (
    CountingRunner,
    finished,
    run,
    scancel_all,
    wait_for_state,
)
from tests.support.slurm_hostile import ACCEPTED
from tests.support.sshd_server import HOST, SshdServer, new_key, serving

pytestmark = pytest.mark.slurm

USERS = ["simjob-ssh1", "simjob-ssh2"]
FINISH_S = 90.0


def marker(tag: str) -> str:
    return f"simjob-ssh-{tag}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def sshd(slurm_env: dict[str, str]) -> Iterator[SshdServer]:
    with serving(USERS, slurm_env) as server:
        yield server


def target(sshd: SshdServer, user: str, *, known_hosts: bytes | None = None) -> SshTarget:
    return SshTarget(
        host=HOST,
        port=sshd.port,
        user=user,
        private_key=sshd.users[user].private_key,
        known_hosts=sshd.known_hosts if known_hosts is None else known_hosts,
    )


def ssh_client(pool: SshPool, sshd: SshdServer, user: str) -> tuple[CliSlurmClient, CountingRunner]:
    runner = CountingRunner(pool.runner(target(sshd, user)))
    client = CliSlurmClient(
        runner, work_dir=str(sshd.users[user].work_dir), cancel_poll_interval=0.25
    )
    return client, runner


@pytest.fixture
def submitted(slurm_env: dict[str, str]) -> Iterator[list[str]]:
    ids: list[str] = []
    yield ids
    scancel_all(slurm_env, ids)


def test_same_slurm_commands_over_one_ssh_connection(
    sshd: SshdServer, submitted: list[str]
) -> None:
    user = sshd.users[USERS[0]]

    async def scenario() -> None:
        pool = SshPool()
        client, runner = ssh_client(pool, sshd, user.name)
        try:
            # The hostile corpus, printed back byte for byte by a job of the SSH user.
            argv_job = await client.submit(
                JobSpec(marker=marker("argv"), command=["printf", "%s\\n"], args=list(ACCEPTED))
            )
            failing = await client.submit(
                JobSpec(marker=marker("fail"), command=["sh", "-c", "id -un; exit 3"])
            )
            held_marker = marker("held")
            held = await client.submit(
                JobSpec(marker=held_marker, command=["sleep", "600"], hold=True)
            )
            submitted.extend([argv_job, failing, held])
            assert await client.find(held_marker) == held

            runner.calls.clear()
            states = await client.query([argv_job, failing, held])
            assert runner.count("squeue") == 1
            assert states[held].kind is JobKind.QUEUED

            done = await wait_for_state(client, argv_job, finished, timeout_s=FINISH_S)
            assert done.kind is JobKind.SUCCEEDED
            output = (user.work_dir / f"simjob-{argv_job}.out").read_bytes()
            assert output == "".join(f"{v}\n" for v in ACCEPTED).encode()

            failed = await wait_for_state(client, failing, finished, timeout_s=FINISH_S)
            assert (failed.kind, failed.exit_code) == (JobKind.FAILED, 3)
            assert await client.output_tail(failing) == user.name  # ran as the SSH user

            assert (await client.cancel(held)).kind is JobKind.CANCELLED
            assert pool.connects == 1  # every command above shared one connection
        finally:
            await pool.close()

    run(scenario())


def test_wrong_or_missing_host_key_is_refused_before_any_command(sshd: SshdServer) -> None:
    _, other_public = new_key()
    wrong = f"[{HOST}]:{sshd.port} {other_public}\n".encode()
    other_port = f"[{HOST}]:{sshd.port + 1} {sshd.host_public_key}\n".encode()

    async def scenario(known_hosts: bytes) -> None:
        pool = SshPool(connect_timeout=10)
        runner = pool.runner(target(sshd, USERS[0], known_hosts=known_hosts))
        try:
            with pytest.raises(SlurmUnavailable, match=r"cannot connect to simjob-ssh1@") as err:
                await runner.run(["squeue", "--noheader"])
            assert "HostKeyNotVerifiable" in str(err.value), err.value
            assert pool.connects == 0
        finally:
            await pool.close()

    for known_hosts in (wrong, other_port, b""):
        run(scenario(known_hosts))


def test_unknown_client_key_is_refused(sshd: SshdServer) -> None:
    stranger_key, _ = new_key()

    async def scenario() -> None:
        pool = SshPool(connect_timeout=10)
        bad = SshTarget(HOST, USERS[0], stranger_key, sshd.known_hosts, port=sshd.port)
        with pytest.raises(SlurmUnavailable, match="PermissionDenied"):
            await pool.runner(bad).run(["true"])
        await pool.close()

    run(scenario())


def test_per_user_credentials_run_as_that_user_and_stay_apart(
    sshd: SshdServer, submitted: list[str]
) -> None:
    shared_marker = marker("both")

    async def scenario() -> dict[str, str]:
        pool = SshPool()
        try:
            clients = {name: ssh_client(pool, sshd, name)[0] for name in USERS}
            ids = {}
            for name, client in clients.items():
                spec = JobSpec(marker=shared_marker, command=["id", "-un"])
                ids[name] = await client.submit(spec)
                submitted.append(ids[name])
            for name, client in clients.items():
                # --me: each credential adopts its own job, never the other user's.
                assert await client.find(shared_marker) == ids[name]
                state = await wait_for_state(client, ids[name], finished, timeout_s=FINISH_S)
                assert state.kind is JobKind.SUCCEEDED
                assert await client.output_tail(ids[name]) == name
            users = await clients[USERS[0]].runner.run(
                [
                    "squeue",
                    "--noheader",
                    "--states=all",
                    f"--jobs={','.join(ids.values())}",
                    "--Format=JobID:|,UserName:",
                ]
            )
            assert pool.connects == 2  # one connection per credential
            return dict(line.split("|", 1) for line in users.stdout.split())
        finally:
            await pool.close()

    owners = run(scenario())
    assert sorted(owners.values()) == sorted(USERS)


def test_many_concurrent_commands_share_one_connection(sshd: SshdServer) -> None:
    """25 at once on one connection: over sshd's MaxSessions (10), queued by the pool."""

    async def scenario() -> None:
        pool = SshPool(max_channels=8)
        runner = pool.runner(target(sshd, USERS[0]))
        try:
            results = await asyncio.gather(
                *(runner.run(["sh", "-c", f"sleep 0.2; echo {i}"]) for i in range(25))
            )
            assert [r.stdout.strip() for r in results] == [str(i) for i in range(25)]
            assert pool.connects == 1
        finally:
            await pool.close()

    run(scenario())


def test_refused_sessions_are_retried_without_dropping_running_ones(sshd: SshdServer) -> None:
    """Configured above MaxSessions (10): refused sessions wait and retry; none is lost."""

    async def scenario() -> list[RunResult]:
        pool = SshPool(max_channels=25)
        runner = pool.runner(target(sshd, USERS[0]))
        try:
            results = await asyncio.gather(
                *(runner.run(["sh", "-c", f"sleep 0.5; echo {i}"]) for i in range(25))
            )
            assert pool.connects == 1
            return list(results)
        finally:
            await pool.close()

    results = run(scenario())
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(25)]


def test_broken_connection_and_restarted_sshd_are_reconnected(sshd: SshdServer) -> None:
    async def scenario() -> None:
        pool = SshPool(connect_timeout=5)
        runner: SshRunner = pool.runner(target(sshd, USERS[0]))
        try:
            assert (await runner.run(["squeue", "--noheader", "--me"])).ok
            # Kill the server side of our connection (sshd's per-connection processes).
            sessions = sshd.session_pids()
            assert sessions
            for pid in sessions:  # descendants of the sshd this module started
                os.kill(pid, signal.SIGTERM)
            await asyncio.sleep(1)
            assert (await runner.run(["squeue", "--noheader", "--me"])).ok
            assert pool.connects == 2

            sshd.stop()  # the login node goes away: unavailable, typed
            with pytest.raises(SlurmUnavailable, match="cannot connect"):
                await runner.run(["squeue", "--noheader", "--me"])
            sshd.start()  # and comes back: the next call reconnects
            assert (await runner.run(["squeue", "--noheader", "--me"])).ok
            assert pool.connects == 3
        finally:
            await pool.close()

    try:
        run(scenario())
    finally:
        if sshd.proc is None:
            sshd.start()


def test_sshd_sets_slurm_conf_for_login_users(sshd: SshdServer, slurm_env: dict[str, str]) -> None:
    async def scenario() -> str:
        pool = SshPool()
        try:
            result = await pool.runner(target(sshd, USERS[1])).run(["printenv", "SLURM_CONF"])
            return result.stdout.strip()
        finally:
            await pool.close()

    assert run(scenario()) == slurm_env["SLURM_CONF"]
    assert Path(slurm_env["SLURM_CONF"]).is_file()
