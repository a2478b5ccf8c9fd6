"""Running Slurm's commands: the ``Runner`` protocol and the local subprocess runner.

A runner executes one argument vector (never a shell string) with optional bytes on
stdin and a timeout, and returns a ``RunResult`` whatever the exit status — the caller
(cli.py) decides what a non-zero status means. A runner raises ``SlurmUnavailable`` only
when the command could not be run or finish: program missing, SSH down, timeout.

``LocalRunner`` uses ``asyncio.create_subprocess_exec`` with an explicit environment
(e.g. the operator's ``SLURM_CONF``), kills the child by its PID on timeout and waits for
it. ssh.py has the SSH runner with the same protocol; fakes in tests count calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from slurm_bridge.errors import SlurmUnavailable

__all__ = ["DEFAULT_TIMEOUT_S", "LocalRunner", "RunResult", "Runner"]

logger = logging.getLogger(__name__)
DEFAULT_TIMEOUT_S = 60.0
_KILL_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of one command: its argv, exit status and decoded output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """The command exited with status 0."""
        return self.returncode == 0

    def describe(self) -> str:
        """``argv`` exited N: first stderr lines — for error messages and logs."""
        err = self.stderr.strip() or self.stdout.strip() or "(no output)"
        if len(err) > 2000:
            err = err[:2000] + "…"
        return f"`{shlex.join(self.argv)}` exited {self.returncode}: {err}"


@runtime_checkable
class Runner(Protocol):
    """Runs argument vectors where Slurm's client commands are (locally or over SSH)."""

    @property
    def where(self) -> str:
        """A short description of where commands run (for errors and logs)."""
        ...

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> RunResult:
        """Run ``argv``; raise ``SlurmUnavailable`` if it cannot run or time out."""
        ...

    async def close(self) -> None:
        """Release what the runner holds (connections); it may be used again after."""
        ...


class LocalRunner:
    """Runs commands as subprocesses of this process (argument vectors, no shell)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if env is None else env)

    @property
    def where(self) -> str:
        return "local"

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
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env,
            )
        except OSError as exc:
            raise SlurmUnavailable(
                f"cannot run `{shlex.join(args)}` locally: {exc}", argv=args
            ) from exc
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(stdin), timeout_s)
        except TimeoutError:
            await self._kill(proc, args)
            raise SlurmUnavailable(
                f"`{shlex.join(args)}` did not finish within {timeout_s:g} s (killed)", argv=args
            ) from None
        returncode = proc.returncode
        if returncode is None:  # communicate() returned, so the process was reaped
            returncode = await proc.wait()
        return RunResult(
            argv=args,
            returncode=returncode,
            stdout=stdout.decode("utf-8", errors="replace"),
            stderr=stderr.decode("utf-8", errors="replace"),
        )

    async def close(self) -> None:
        return None

    @staticmethod
    async def _kill(proc: asyncio.subprocess.Process, args: tuple[str, ...]) -> None:
        if proc.returncode is not None:
            return
        try:
            proc.kill()  # our own child, by its PID
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(proc.wait(), _KILL_WAIT_S)
        except TimeoutError:
            survived = True
        else:
            survived = False
        if survived:
            logger.error("pid %s (%s) survived SIGKILL for %s s", proc.pid, args[0], _KILL_WAIT_S)
