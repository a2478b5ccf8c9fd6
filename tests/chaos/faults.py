"""The faults, injected by PID (never by process name), each undone in a ``finally``.

* ``ClusterComponent`` — one process of the local control plane (``.cluster/run/NAME.pid``,
  checked against ``/proc/PID/cmdline``): ``stop``/``start`` go through
  hack/cluster/restart-component.sh (SIGTERM by PID, the same command line again), and
  ``stalled`` SIGSTOPs it for a while and always SIGCONTs it.
* ``slurmctld_stopped`` — SIGTERM the local slurmctld by its PID file, then bring it back
  with hack/slurm/up.sh (which repairs a half-started Slurm).
* ``kill_sshd`` — SIGKILL an ``SshdServer``'s listener and every per-connection child,
  at a moment one of them runs a Slurm command for the operator (mid-poll).
* ``cluster_healthy`` — every component alive and ``/readyz`` answering: checked after a
  scenario so a fault never leaves the shared cluster broken unnoticed.
Neighbours: hack/cluster/restart-component.sh, tests/support/sshd_server.py, the scenarios.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.conftest import REPO, wait_for
from tests.support.sshd_server import SshdServer, descendants

CLUSTER_RUN = REPO / ".cluster" / "run"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
RESTART = REPO / "hack" / "cluster" / "restart-component.sh"
SLURM_RUN = REPO / ".slurm" / "run"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class ClusterComponent:
    """A process of the local control plane, found by its PID file."""

    def __init__(self, name: str) -> None:
        assert name in COMPONENTS, name
        self.name = name

    def pid(self) -> int:
        path = CLUSTER_RUN / f"{self.name}.pid"
        pid = int(path.read_text().strip())
        assert self.name in _cmdline(pid), f"{path} names pid {pid}, which is not {self.name}"
        return pid

    def _script(self, action: str) -> None:
        done = subprocess.run(
            [str(RESTART), self.name, action],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"{RESTART.name} {self.name} {action}: {done.stderr}"

    def stop(self) -> None:
        self._script("stop")

    def start(self) -> None:
        self._script("start")

    @contextmanager
    def stopped(self, extra_down_s: float) -> Iterator[None]:
        """Stopped (SIGTERM) on entry, kept down ``extra_down_s`` more, started on exit."""
        self.stop()
        try:
            time.sleep(extra_down_s)  # the outage itself, not an assertion
            yield
        finally:
            self.start()

    @contextmanager
    def stalled(self, seconds: float) -> Iterator[None]:
        """SIGSTOP for ``seconds`` (the outage), then SIGCONT, whatever happens."""
        pid = self.pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)  # the stall itself, not an assertion
            yield
        finally:
            os.kill(pid, signal.SIGCONT)


def cluster_healthy(kubectl: Path, kubeconfig: Path) -> list[str]:
    """Problems with the control plane after a fault (dead components, /readyz failing)."""
    problems = []
    for name in COMPONENTS:
        try:
            ClusterComponent(name).pid()
        except (OSError, ValueError, AssertionError) as error:
            problems.append(f"{name} is not running: {error}")
    ready = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if ready.returncode != 0:
        problems.append(f"/readyz: {ready.stderr.strip()}")
    return problems


def wait_ready(kubectl: Path, kubeconfig: Path, timeout: float = 120) -> None:
    wait_for(
        lambda: not cluster_healthy(kubectl, kubeconfig),
        timeout=timeout,
        what="the control plane to be healthy",
        detail=lambda: cluster_healthy(kubectl, kubeconfig),
    )


def slurmctld_pid() -> int:
    pid = int((SLURM_RUN / "slurmctld.pid").read_text().strip())
    assert "slurmctld" in _cmdline(pid), f"pid {pid} is not slurmctld"
    return pid


@contextmanager
def slurmctld_stopped(slurm_env: dict[str, str]) -> Iterator[int]:
    """SIGTERM our slurmctld (by its PID file); hack/slurm/up.sh starts it again on exit."""
    pid = slurmctld_pid()
    os.kill(pid, signal.SIGTERM)
    try:
        wait_for(lambda: not _alive(pid), timeout=60, what="slurmctld to stop")
        yield pid
    finally:
        subprocess.run(
            ["bash", str(REPO / "hack" / "slurm" / "up.sh")],
            env=slurm_env,
            check=True,
            capture_output=True,
            timeout=300,
        )


SLURM_COMMANDS = ("squeue", "sacct", "scontrol", "sbatch", "scancel")


def kill_sshd(server: SshdServer, *, wait_s: float = 30.0) -> bool:
    """SIGKILL sshd and its per-connection children by PID; True if one of them was running
    a Slurm command (a poll: squeue, or scontrol ping when nothing is tracked) at that
    moment (waits up to ``wait_s`` for one)."""
    assert server.proc is not None
    deadline = time.monotonic() + wait_s
    caught = False
    while time.monotonic() < deadline:
        running = " ".join(_cmdline(pid) for pid in descendants(server.proc.pid))
        if any(command in running for command in SLURM_COMMANDS):
            caught = True
            break
        time.sleep(0.005)
    pids = [server.proc.pid, *descendants(server.proc.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    server.proc.wait(timeout=30)
    server.proc = None
    wait_for(
        lambda: not any(_alive(pid) for pid in pids[1:]),
        timeout=30,
        what="the killed sshd sessions to go",
    )
    return caught
