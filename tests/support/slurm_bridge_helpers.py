"""Helpers for the Slurm bridge tests on the real local Slurm (local and SSH mode).

``CountingRunner`` wraps any runner and records every argv, so tests can count how many
``squeue``/``sacct`` calls a query made. ``wait_for_state`` polls ``client.query`` until a
predicate holds (bounded). ``Submitted`` remembers job ids and cancels what is left at
the end of a test (by ``scancel`` with the session's Slurm environment).
Neighbours: tests/integration/test_slurm_bridge.py, test_slurm_bridge_ssh.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from slurm_bridge import JobState, Runner, RunResult, SlurmClient
from slurm_bridge.runners import DEFAULT_TIMEOUT_S

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 600) -> T:
    """Run a coroutine to completion in a fresh event loop (bounded)."""
    return asyncio.run(asyncio.wait_for(coro, timeout=timeout))


def program(argv: Sequence[str]) -> str:
    """The command of an argv, past an ``env NAME=value`` prefix."""
    args = list(argv)
    if args and args[0] == "env":
        args = args[1:]
        while args and "=" in args[0]:
            args = args[1:]
    return args[0] if args else ""


class CountingRunner:
    """A runner that records every argv it runs and delegates to ``inner``."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.calls: list[tuple[str, ...]] = []

    @property
    def where(self) -> str:
        return self.inner.where

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> RunResult:
        self.calls.append(tuple(argv))
        return await self.inner.run(argv, stdin=stdin, timeout_s=timeout_s)

    async def close(self) -> None:
        await self.inner.close()

    def count(self, name: str) -> int:
        return sum(1 for argv in self.calls if program(argv) == name)


async def wait_for_state(
    client: SlurmClient,
    job_id: str,
    predicate: Callable[[JobState], bool],
    *,
    timeout_s: float,
    interval: float = 0.5,
) -> JobState:
    """Poll ``client.query([job_id])`` until ``predicate`` holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = (await client.query([job_id]))[job_id]
        if predicate(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {state} after {timeout_s:.0f} s")
        await asyncio.sleep(interval)


def finished(state: JobState) -> bool:
    return state.finished


def scancel_all(env: dict[str, str], job_ids: Sequence[str]) -> None:
    """Cancel leftover test jobs in one scancel call (ignores already finished ones)."""
    if job_ids:
        subprocess.run(["scancel", *job_ids], env=env, capture_output=True, timeout=60, check=False)
