"""The ``simjob`` command through subprocesses: output and exit codes, and the live view
in a pseudo-terminal.

Neighbours: simjob_sdk/cli/ (commands, render), conftest.py.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import simjob

pytestmark = pytest.mark.integration


def simjob_command() -> list[str]:
    """The installed console script next to this Python, else ``python -m``."""
    script = Path(sys.executable).parent / "simjob"
    if script.exists():
        return [str(script)]
    found = shutil.which("simjob")
    return [found] if found else [sys.executable, "-m", "simjob_sdk.cli"]


def run(kubeconfig: Path, namespace: str, *args: str, stdin: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [*simjob_command(), "--kubeconfig", str(kubeconfig), "-n", namespace, *args],
        input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_submit_get_list_cancel_and_exit_codes(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "ok.yaml"
    manifest.write_text(yaml.safe_dump(simjob("ok", run_seconds=1)))
    done = run(kubeconfig, namespace, "submit", "-f", str(manifest), "--wait", "--timeout", "90")
    assert done.returncode == 0, done.stderr
    assert "simjob.simjob.io/ok submitted" in done.stdout
    assert "Succeeded" in done.stdout
    again = run(kubeconfig, namespace, "submit", "-f", str(manifest))  # idempotent
    assert again.returncode == 0, again.stderr

    failing = yaml.safe_dump(simjob("bad", fail_exit_code=3))
    failed = run(kubeconfig, namespace, "submit", "-f", "-", "--wait", stdin=failing)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Failed" in failed.stdout
    assert "exit code 3" in failed.stdout

    listed = run(kubeconfig, namespace, "list", "-o", "wide")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[:10] == [
        "NAME", "PHASE", "TIER", "BACKEND", "OWNER", "AGE", "QUEUE", "EXIT", "REASON", "MESSAGE"
    ]  # fmt: skip
    as_json = json.loads(run(kubeconfig, namespace, "get", "ok", "-o", "json").stdout)
    assert as_json["status"]["phase"] == "Succeeded"
    items = yaml.safe_load(run(kubeconfig, namespace, "list", "-o", "yaml").stdout)["items"]
    assert sorted(i["metadata"]["name"] for i in items) == ["bad", "ok"]

    missing = run(kubeconfig, namespace, "get", "nope")
    assert missing.returncode == 3
    assert "not found" in missing.stderr

    long = yaml.safe_dump(simjob("long", run_seconds=120))
    assert run(kubeconfig, namespace, "submit", "-f", "-", stdin=long).returncode == 0
    assert run(kubeconfig, namespace, "cancel", "long").returncode == 0
    watched = run(kubeconfig, namespace, "watch", "long", "--timeout", "60")
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert "Cancelled" in watched.stdout

    rerun = run(kubeconfig, namespace, "rerun", "ok", "--name", "ok-again", "--wait")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    usage = run(kubeconfig, namespace, "usage")
    assert usage.returncode == 0, usage.stderr
    assert "TOTAL" in usage.stdout
    deadline = time.monotonic() + 30  # ok, bad and ok-again have ended: counted soon
    while True:
        counted = run(kubeconfig, namespace, "usage", "--since", "2020-01-01", "-o", "json")
        assert counted.returncode == 0, counted.stderr
        total = json.loads(counted.stdout)["total"]
        if total["simJobs"] >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert total["simJobs"] >= 3, total
    assert run(kubeconfig, namespace, "delete", "ok-again").returncode == 0


def test_watch_live_view_in_a_pseudo_terminal(kubeconfig: Path, namespace: str) -> None:
    for name, seconds in (("holder", 15), ("queued", 1)):
        body = yaml.safe_dump(simjob(name, tier="it-one", run_seconds=seconds))
        assert run(kubeconfig, namespace, "submit", "-f", "-", stdin=body).returncode == 0
    primary, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [*simjob_command(), "--kubeconfig", str(kubeconfig), "-n", namespace,
         "watch", "queued", "--timeout", "90"],
        stdin=secondary, stdout=secondary, stderr=secondary, env=env, close_fds=True,
    )  # fmt: skip
    os.close(secondary)
    output = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=30)
    os.close(primary)
    text = output.decode(errors="replace")
    assert code == 0, text
    assert "\x1b[" in text, "no terminal control sequences: not the live view"
    assert "Queued" in text, text
    assert "position 1" in text, text
    assert "Succeeded" in text, text
