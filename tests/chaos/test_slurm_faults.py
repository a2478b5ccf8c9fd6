"""Scenarios 5-6: the Slurm site goes away under running Slurm SimJobs.

5. slurmctld stopped (SIGTERM by .slurm/run/slurmctld.pid) and started again with
   hack/slurm/up.sh, ``size.slurmctld_restarts`` times, on a local-mode SlurmCluster;
6. sshd killed (SIGKILL, the listener and every per-connection child) while it runs one
   of the operator's ``squeue`` polls, and started again on the same port and host key,
   ``size.sshd_kills`` times, on an ssh-mode SlurmCluster (tests/support/sshd_server.py,
   its own login user ``simjob-chaos1``, ``accounting: none``).

Each runs ``size.slurm_simjobs`` mixed Slurm SimJobs (succeed, fail with an exit code,
cancelled just before the outage) in the ``chaos-slurm`` tier; two more are created
during each outage and must wait (admitted, nothing submitted). Checked afterwards: the
SlurmCluster went Reachable=False and back to True, every SimJob in its right phase,
exactly one Slurm job per SimJob (its marker ``simjob-<uid>`` in squeue and the
completion log) and it is the one in ``status.backendRef``, no slot leaked (a probe
batch in the same owner/tier), the operator still running.
Neighbours: faults.py, checks.py, tests/integration/test_slurm_operator_resilience.py.
"""

from __future__ import annotations

import base64
import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from tests.chaos import checks
from tests.chaos.faults import kill_sshd, slurmctld_stopped
from tests.chaos.ledger import TERMINAL, Ledger
from tests.chaos.report import ChaosResult
from tests.chaos.sizes import Size, current_size, scenario_rng
from tests.chaos.workload import (
    CHAOS_TIERS,
    SLURM,
    TRACEBACK,
    CancelSchedule,
    Case,
    apply_all,
    mixed_cases,
    slurm_manifest,
)
from tests.integration.conftest import Kube, OperatorProcess, wait_for
from tests.integration.slurm_operator_helpers import slurm_cluster, wait_reachable
from tests.support.sshd_server import HOST, SshdServer, serving

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.integration,
    pytest.mark.slurm,
    pytest.mark.timeout(current_size().test_timeout_s),
]

TIERS = {SLURM: int(CHAOS_TIERS[SLURM]["maxConcurrentPerOwner"])}
LOCAL = "chaos-local"
SSH = "chaos-ssh"
SSH_USER = "simjob-chaos1"


@pytest.fixture(scope="module")
def local_site(
    kube: Kube, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    work = tmp_path_factory.mktemp("chaos-slurm-work")
    kube.apply(slurm_cluster(LOCAL, mode="local", workDir=str(work)))
    wait_reachable(kube, LOCAL, "True", timeout=60)
    yield LOCAL
    kube.run("delete", "slurmclusters.simjob.io", LOCAL, "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def sshd(slurm_env: dict[str, str]) -> Iterator[SshdServer]:
    # Slurm commands on this login node take 0.5 s more: the kill always finds a poll running.
    with serving([SSH_USER], slurm_env, slow_commands_s=0.5) as server:
        yield server


@pytest.fixture(scope="module")
def ssh_site(kube: Kube, operator: OperatorProcess, sshd: SshdServer) -> Iterator[str]:
    secrets_ns = f"chaos-slurm-site-{uuid.uuid4().hex[:6]}"
    kube.run("create", "namespace", secrets_ns)
    user = sshd.users[SSH_USER]

    def secret(name: str, key: str, value: bytes) -> dict[str, object]:
        data = {key: base64.b64encode(value).decode()}
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}

    kube.apply(
        secret("key", "ssh-privatekey", user.private_key),
        secret("known-hosts", "known_hosts", sshd.known_hosts),
        namespace=secrets_ns,
    )
    kube.apply(
        slurm_cluster(
            SSH,
            mode="ssh",
            host=HOST,
            port=sshd.port,
            user=user.name,
            workDir=str(user.work_dir),
            credentialsSecretRef={"namespace": secrets_ns, "name": "key"},
            knownHostsSecretRef={"namespace": secrets_ns, "name": "known-hosts"},
            accounting="none",  # the login user cannot read the completion log
        )
    )
    wait_reachable(kube, SSH, "True", timeout=60)
    yield SSH
    kube.run("delete", "slurmclusters.simjob.io", SSH, "--ignore-not-found", check=False)
    kube.run("delete", "namespace", secrets_ns, "--wait=false", check=False)


def run_site_outages(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    ledger: Ledger,
    size: Size,
    result: ChaosResult,
    cluster: str,
    outage: Callable[[], AbstractContextManager[None]],
    rounds: int,
    slurm_env: dict[str, str],
) -> None:
    """The common flow of scenarios 5-6 (module docstring); fails with every problem."""
    rng = scenario_rng(result.seed, result.scenario)
    drawn = mixed_cases(
        rng,
        size.slurm_simjobs,
        prefix="slurm",
        span_s=0.0,
        weights={"ok": 0.5, "fail": 0.3, "cancel": 0.2},
        run_s=(1.0, 8.0),
    )
    cases = [dataclasses.replace(case, tier_name=SLURM) for case in drawn]
    tracebacks_before = operator.all_logs().count(TRACEBACK)
    apply_all(kube, namespace, [slurm_manifest(case, cluster) for case in cases])
    wait_for(  # Slurm is busy (2 CPUs): some run, the others wait in Slurm
        lambda: sum(1 for p in ledger.phases().values() if p in {"Running", *TERMINAL}) >= 2,
        timeout=90,
        what="two Slurm SimJobs to run",
        detail=ledger.phases,
    )
    CancelSchedule(kube, namespace, cases).tick(everything=True)
    for round_ in range(rounds):
        started = time.monotonic()
        with outage():
            down = wait_reachable(kube, cluster, "False", timeout=90)
            during = [
                Case(name=f"during-{round_}-{i}", kind="ok", run_s=1.0, tier_name=SLURM)
                for i in range(2)
            ]
            apply_all(kube, namespace, [slurm_manifest(case, cluster) for case in during])
            cases += during

            def queued(names: list[str] = [case.name for case in during]) -> bool:  # noqa: B006
                return all(ledger.phases().get(name) == "Queued" for name in names)

            wait_for(  # admitted (or waiting for a slot), but nothing can be submitted
                queued,
                timeout=60,
                what="the SimJobs created during the outage to be Queued",
                detail=ledger.phases,
            )
        result.outages += 1
        wait_reachable(kube, cluster, "True", timeout=120)
        print(f"outage {result.outages}: {time.monotonic() - started:.1f} s ({down['message']})")
    result.cases = len(cases)
    problems = checks.verify(
        kube, namespace, ledger, cases, result,
        finish_s=size.finish_s, tiers=TIERS, slurm_env=slurm_env,
    )  # fmt: skip
    if operator.exited():
        problems.append(f"OPERATOR exited during the outage:\n{operator.tail()}")
        operator.start()
    result.tracebacks = operator.all_logs().count(TRACEBACK) - tracebacks_before
    assert not problems, f"seed {result.seed}:\n" + "\n".join(problems)


def test_slurmctld_restart(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    ledger: Ledger,
    size: Size,
    chaos_result: Callable[[str], ChaosResult],
    local_site: str,
    slurm_env: dict[str, str],
) -> None:
    result = chaos_result("5 slurmctld stop + start")

    @contextmanager
    def outage() -> Iterator[None]:
        with slurmctld_stopped(slurm_env):
            yield

    run_site_outages(
        kube, namespace, operator, ledger, size, result, local_site, outage,
        size.slurmctld_restarts, slurm_env,
    )  # fmt: skip


def test_sshd_killed_mid_poll(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    ledger: Ledger,
    size: Size,
    chaos_result: Callable[[str], ChaosResult],
    ssh_site: str,
    sshd: SshdServer,
    slurm_env: dict[str, str],
) -> None:
    result = chaos_result("6 sshd kill -9 mid-poll")
    caught: list[bool] = []

    @contextmanager
    def outage() -> Iterator[None]:
        caught.append(kill_sshd(sshd))
        try:
            yield
            time.sleep(size.sshd_down_s)  # the rest of the outage, not an assertion
        finally:
            sshd.start()

    run_site_outages(
        kube, namespace, operator, ledger, size, result, ssh_site, outage,
        size.sshd_kills, slurm_env,
    )  # fmt: skip
    print(f"sshd killed while a Slurm command ran: {caught}")
    assert all(caught), f"a kill found no Slurm command running: {caught}"
