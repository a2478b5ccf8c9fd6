"""``CliSlurmClient``: the ``SlurmClient`` protocol over Slurm's command-line tools.

Every call is one or two commands through a ``Runner`` (local subprocess or SSH):

* ``submit`` — ``sbatch --parsable`` with the options of scripts.py on argv and the
  script on stdin; a refusal is ``SlurmRejected`` with Slurm's message.
* ``query`` — ONE ``squeue --states=all --jobs=<all ids>`` for every id, then ONE
  ``sacct`` (slurmdbd) or ``sacct --completion`` (jobcomp/filetxt) for the ids squeue no
  longer lists (after MinJobAge); what neither knows is ``JobKind.MISSING``. Which
  accounting exists is configured or detected once from ``scontrol show config``.
* ``cancel`` — ``scancel``, then re-read (and re-send) until the job has ended or the
  confirmation window passed; the caller retries on a non-final answer.
* ``find`` — the marker is the job name: ``squeue --me --name=<marker>`` (pending,
  running, recently finished), then sacct over a look-back window (only our own jobs:
  slurmdbd filters by user, the completion log is filtered here by UID).
* ``output_tail`` — ``tail -c`` of ``<workDir>/simjob-<id>.out``, bounded (a job's own
  ``directory``: ``tails.read_tail``, never through a symlink the job planted).
* ``ping`` — ``scontrol ping``: the controller must say ``UP``.
* ``usage`` (not in the protocol) — ONE ``sacct`` with the jobs' steps, for elapsed
  seconds, allocated CPUs/TRES and MaxRSS of finished jobs (slurmdbd or completion log).

``squeue``/``sacct`` run with ``SLURM_TIME_FORMAT=%s`` (through ``env``, which also works
over SSH where sshd drops client environment variables) so times are epoch seconds.
Neighbours: runners.py/ssh.py (where commands run), parsing.py (their output),
checks.py (job ids checked, failed commands judged: ``classify_failure`` and its
patterns, re-exported here).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from slurm_bridge.checks import (
    UNAVAILABLE_PATTERNS,
    UNSATISFIABLE_PATTERNS,
    checked_ids,
    classify_failure,
)
from slurm_bridge.clients import DEFAULT_TAIL_BYTES, DEFAULT_TAIL_LINES, Accounting
from slurm_bridge.errors import InvalidJobSpec, SlurmUnavailable
from slurm_bridge.parsing import (
    JOB_ID,
    SACCT_FIELDS,
    SQUEUE_FORMAT,
    parse_config,
    parse_named_jobs,
    parse_sacct,
    parse_squeue,
    tail_text,
)
from slurm_bridge.runners import DEFAULT_TIMEOUT_S, Runner, RunResult
from slurm_bridge.scripts import (
    OUTPUT_PATTERN,
    GpuRequest,
    batch_script,
    output_path,
    sbatch_options,
)
from slurm_bridge.specs import MARKER, JobSpec, check_work_dir
from slurm_bridge.states import JobKind, JobState
from slurm_bridge.tails import read_tail

__all__ = [
    "TIME_ENV",
    "UNAVAILABLE_PATTERNS",
    "UNSATISFIABLE_PATTERNS",
    "CliSlurmClient",
    "classify_failure",
]

logger = logging.getLogger(__name__)

TIME_ENV = ("env", "SLURM_TIME_FORMAT=%s")
_GONE = ("invalid job id", "already completing or completed", "job/step already")


class CliSlurmClient:
    """The Slurm client over sbatch/squeue/sacct/scancel run by ``runner``."""

    def __init__(
        self,
        runner: Runner,
        *,
        work_dir: str,
        accounting: Accounting | str = Accounting.AUTO,
        command_timeout: float = DEFAULT_TIMEOUT_S,
        lookback_days: int = 7,
        cancel_confirm_timeout: float = 30.0,
        cancel_poll_interval: float = 0.5,
        gpu_request: GpuRequest | str = GpuRequest.GRES,
    ) -> None:
        self._runner = runner
        self.gpu_request = GpuRequest(gpu_request)
        self.work_dir = check_work_dir(work_dir)
        self._accounting = Accounting(accounting)
        self._timeout = command_timeout
        self._lookback_days = lookback_days
        self._cancel_timeout = cancel_confirm_timeout
        self._cancel_poll = cancel_poll_interval
        self._work_dir_ready = False
        self._uid_cache: str | None = None

    @property
    def runner(self) -> Runner:
        """Where the commands run."""
        return self._runner

    # -- submit ----------------------------------------------------------------------
    async def submit(self, spec: JobSpec) -> str:
        script = batch_script(spec).encode("utf-8")
        argv = ["sbatch", *sbatch_options(spec, self.work_dir, gpu_request=self.gpu_request)]
        await self._ensure_work_dir()
        result = await self._runner.run(argv, stdin=script, timeout_s=self._timeout)
        if not result.ok:
            raise classify_failure(result, refusal=True)
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        job_id = lines[-1].strip().split(";", 1)[0] if lines else ""
        if not JOB_ID.fullmatch(job_id):
            # sbatch exited 0, so the job may well exist: ambiguous, like a timeout.
            raise SlurmUnavailable(
                f"unexpected `sbatch --parsable` output {result.stdout!r} on "
                f"{self._runner.where}; look marker {spec.marker!r} up before resubmitting",
                argv=result.argv,
                stderr=result.stderr,
            )
        logger.info("submitted %s as Slurm job %s (%s)", spec.marker, job_id, self._runner.where)
        return job_id

    async def _ensure_work_dir(self) -> None:
        if self._work_dir_ready:
            return
        argv = ["mkdir", "-p", "--", self.work_dir]
        result = await self._runner.run(argv, timeout_s=self._timeout)
        if not result.ok:
            raise SlurmUnavailable(
                f"cannot create work directory {self.work_dir} on {self._runner.where}: "
                f"{result.describe()}",
                argv=result.argv,
                stderr=result.stderr,
            )
        self._work_dir_ready = True

    # -- query -----------------------------------------------------------------------
    async def query(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        ids = checked_ids(job_ids)
        if not ids:
            return {}
        states = await self._squeue(ids)
        missing = [job_id for job_id in ids if job_id not in states]
        if missing:
            mode = await self.accounting()
            if mode is not Accounting.NONE:
                found = await self._sacct(missing, mode)
                states.update({job_id: found[job_id] for job_id in missing if job_id in found})
            source = "squeue" if mode is Accounting.NONE else f"squeue+{_sacct_name(mode)}"
            for job_id in missing:
                if job_id not in states:
                    states[job_id] = JobState.missing(job_id, source)
        return {job_id: states[job_id] for job_id in ids}

    async def _squeue(self, ids: list[str]) -> dict[str, JobState]:
        argv = [
            *TIME_ENV,
            "squeue",
            "--noheader",
            "--states=all",
            f"--jobs={','.join(ids)}",
            f"--Format={SQUEUE_FORMAT}",
        ]
        result = await self._runner.run(argv, timeout_s=self._timeout)
        if not result.ok:
            if "invalid job id specified" in result.stderr.lower():
                return {}  # squeue says so only when it knows none of the ids
            raise classify_failure(result, refusal=False)
        return parse_squeue(result.stdout)

    async def _sacct(self, ids: list[str], mode: Accounting) -> dict[str, JobState]:
        argv = [*TIME_ENV, "sacct"]
        if mode is Accounting.COMPLETION:
            argv.append("--completion")
        else:
            argv.append("--allocations")
        argv += [
            "--noheader",
            "--parsable2",
            f"--jobs={','.join(ids)}",
            f"--format={','.join(SACCT_FIELDS)}",
        ]
        result = await self._runner.run(argv, timeout_s=self._timeout)
        if not result.ok:
            raise classify_failure(result, refusal=False)
        return parse_sacct(result.stdout, source=_sacct_name(mode))

    async def accounting(self) -> Accounting:
        """The accounting source in use (detected once when configured ``auto``)."""
        if self._accounting is not Accounting.AUTO:
            return self._accounting
        result = await self._runner.run(["scontrol", "show", "config"], timeout_s=self._timeout)
        if not result.ok:
            raise classify_failure(result, refusal=False)
        config = parse_config(result.stdout)
        if config.get("AccountingStorageType", "").endswith("/slurmdbd"):
            detected = Accounting.SACCT
        elif config.get("JobCompType", "") == "jobcomp/filetxt":
            detected = Accounting.COMPLETION
        else:
            detected = Accounting.NONE
        logger.info("Slurm accounting on %s: %s", self._runner.where, detected)
        self._accounting = detected
        return detected

    async def usage(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        """Accounting records (with usage, MaxRSS from the steps) of ``job_ids`` in ONE
        sacct; ids accounting does not know (yet) are left out. Empty without accounting."""
        ids = checked_ids(job_ids)
        mode = await self.accounting() if ids else Accounting.NONE
        if mode is Accounting.NONE:
            return {}
        argv = [*TIME_ENV, "sacct"]
        if mode is Accounting.COMPLETION:
            argv.append("--completion")
        argv += [
            "--noheader",
            "--parsable2",
            f"--jobs={','.join(ids)}",
            f"--format={','.join(SACCT_FIELDS)}",
        ]
        result = await self._run_checked(argv)
        return parse_sacct(result.stdout, source=_sacct_name(mode))

    # -- ping ------------------------------------------------------------------------
    async def ping(self) -> None:
        """``scontrol ping``; raise ``SlurmUnavailable`` unless the controller is UP."""
        result = await self._runner.run(["scontrol", "ping"], timeout_s=self._timeout)
        if not result.ok:
            raise classify_failure(result, refusal=False)
        if " is UP" not in result.stdout:
            raise SlurmUnavailable(
                f"slurmctld does not answer on {self._runner.where}: "
                f"{result.stdout.strip() or result.describe()}",
                argv=result.argv,
                stderr=result.stderr,
            )

    # -- cancel ----------------------------------------------------------------------
    async def cancel(self, job_id: str) -> JobState:
        (job_id,) = checked_ids([job_id])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._cancel_timeout
        while True:
            await self._scancel(job_id)
            state = (await self.query([job_id]))[job_id]
            if state.finished or state.kind is JobKind.MISSING or loop.time() >= deadline:
                return state
            await asyncio.sleep(self._cancel_poll)

    async def _scancel(self, job_id: str) -> None:
        result = await self._runner.run(["scancel", job_id], timeout_s=self._timeout)
        if not result.ok and not any(p in result.stderr.lower() for p in _GONE):
            raise classify_failure(result, refusal=False)

    # -- find ------------------------------------------------------------------------
    async def find(self, marker: str) -> str | None:
        if not isinstance(marker, str) or not MARKER.fullmatch(marker):
            raise InvalidJobSpec(f"marker {marker!r} is not a valid marker")
        argv = [
            "squeue",
            "--noheader",
            "--states=all",
            "--me",
            f"--name={marker}",
            "--Format=JobID:|,Name:",
        ]
        result = await self._runner.run(argv, timeout_s=self._timeout)
        if not result.ok:
            raise classify_failure(result, refusal=False)
        found = parse_named_jobs(result.stdout, marker)
        if not found:
            found = await self._find_in_accounting(marker)
        if len(found) > 1:
            logger.warning(
                "marker %s names several Slurm jobs %s on %s; adopting the first",
                marker,
                found,
                self._runner.where,
            )
        return found[0] if found else None

    async def _find_in_accounting(self, marker: str) -> list[str]:
        mode = await self.accounting()
        if mode is Accounting.NONE:
            return []
        argv = ["sacct", "--noheader", "--parsable2", f"--starttime=now-{self._lookback_days}days"]
        if mode is Accounting.SACCT:
            # slurmdbd filters by name, and by the calling user unless --allusers.
            argv += ["--allocations", f"--name={marker}", "--format=JobID,JobName"]
            result = await self._run_checked(argv)
            return parse_named_jobs(result.stdout, marker)
        # The completion log ignores --name and --user: filter both here, by UID, so that
        # another user's job named after our marker is never adopted.
        uid = await self._uid()
        argv += ["--completion", "--format=JobID,UID,JobName"]
        result = await self._run_checked(argv)
        mine = []
        for line in result.stdout.splitlines():
            job_id, _, rest = line.partition("|")
            job_uid, _, name = rest.partition("|")
            if job_uid.strip() == uid:
                mine.append(f"{job_id}|{name}")
        return parse_named_jobs("\n".join(mine), marker)

    async def _uid(self) -> str:
        """The numeric uid commands run as (asked once: local user or SSH login)."""
        if self._uid_cache is None:
            result = await self._run_checked(["id", "-u"])
            uid = result.stdout.strip()
            if not uid.isdigit():
                raise SlurmUnavailable(f"`id -u` on {self._runner.where} printed {uid!r}")
            self._uid_cache = uid
        return self._uid_cache

    async def _run_checked(self, argv: list[str]) -> RunResult:
        result = await self._runner.run(argv, timeout_s=self._timeout)
        if not result.ok:
            raise classify_failure(result, refusal=False)
        return result

    # -- output ----------------------------------------------------------------------
    async def output_tail(
        self,
        job_id: str,
        lines: int = DEFAULT_TAIL_LINES,
        max_bytes: int = DEFAULT_TAIL_BYTES,
        *,
        directory: str | None = None,
    ) -> str:
        (job_id,) = checked_ids([job_id])
        if lines <= 0 or max_bytes <= 0:
            return ""
        if directory is not None:  # the job's own directory: never through a symlink
            name, timeout = OUTPUT_PATTERN.replace("%j", job_id), self._timeout
            data, cut = await read_tail(self._runner, directory, name, max_bytes, timeout_s=timeout)
            return tail_text(data, lines, max_bytes, truncated=cut)
        path = output_path(self.work_dir, job_id)
        result = await self._runner.run(
            ["tail", "-c", str(max_bytes + 1), "--", path], timeout_s=self._timeout
        )
        if not result.ok:
            if "no such file" in result.stderr.lower():
                return ""
            raise classify_failure(result, refusal=False)
        data = result.stdout.encode("utf-8")
        return tail_text(data, lines, max_bytes, truncated=len(data) > max_bytes)

    async def close(self) -> None:
        await self._runner.close()


def _sacct_name(mode: Accounting) -> str:
    return "sacct --completion" if mode is Accounting.COMPLETION else "sacct"
