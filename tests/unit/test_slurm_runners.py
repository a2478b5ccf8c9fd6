"""LocalRunner: argument vectors (no shell), stdin, environment, timeouts, missing programs.

Runs real subprocesses (sh, cat, sleep) but no Slurm; the SSH runner is tested against a
real sshd in tests/integration/test_slurm_bridge_ssh.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from slurm_bridge import LocalRunner, Runner, SlurmUnavailable

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def test_is_a_runner() -> None:
    assert isinstance(LocalRunner(), Runner)


def test_argv_is_not_interpreted_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    result = run(LocalRunner().run(["echo", f"$(touch {marker})", "; touch", str(marker)]))
    assert result.ok
    assert result.stdout == f"$(touch {marker}) ; touch {marker}\n"
    assert not marker.exists()


def test_stdin_env_and_exit_status_are_passed() -> None:
    runner = LocalRunner(env={"PATH": "/usr/bin:/bin", "GREETING": "hé $(id)"})
    result = run(
        runner.run(["sh", "-c", 'cat; printf "%s" "$GREETING" >&2; exit 3'], stdin=b"in\xc3\xa9")
    )
    assert (result.returncode, result.stdout, result.stderr) == (3, "iné", "hé $(id)")
    assert not result.ok
    assert "exited 3: hé $(id)" in result.describe()


def test_invalid_utf8_output_is_replaced_not_fatal() -> None:
    result = run(LocalRunner().run(["printf", "\\377ok"]))
    assert result.stdout == "\ufffdok"


def test_timeout_kills_the_child_and_is_unavailable(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(SlurmUnavailable, match=r"did not finish within 0\.5 s"):
        run(LocalRunner().run(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"], timeout_s=0.5))
    assert time.monotonic() - started < 10
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_missing_program_is_unavailable() -> None:
    with pytest.raises(SlurmUnavailable, match="cannot run `no-such-sbatch-here --parsable`"):
        run(LocalRunner().run(["no-such-sbatch-here", "--parsable"]))


def test_empty_argv_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        run(LocalRunner().run([]))
