"""The Slurm side of ``logs`` and ``outputs``/``download``: a seam over ``slurm_bridge``.

The SDK cannot reach a Slurm site by itself: which login node, which account and which
work directory hold a SimJob's files depend on the gateway's credentials (the user's
own SSH key, see docs/slurm.md). A gateway passes a ``SlurmAccess`` to the client:
``runner(job)`` returns a ``slurm_bridge`` Runner (``LocalRunner``, or ``SshRunner``
over ``SshPool``/``SshTarget`` from ``slurm_bridge.ssh``) for the SimJob's cluster, and
``work_dir(job)`` that account's work directory (the SlurmCluster's ``spec.workDir``, or
the per-user Secret's ``workDir``). Then:

* a run directory is ``status.workspace.directory`` (where the operator put it), else
  ``slurm_bridge.rundirs.run_dir_path(work_dir, namespace, name, uid)``, listed with
  ``list_run_dir`` and read with ``fetch_file`` (``list_outputs``, ``fetch_output``);
* the batch output is ``simjob-<job id>.out`` in the run directory (docs/data.md), read
  with ``fetch_file`` (``read_batch_output``); a SimJob submitted by an operator older
  than run directories has it in the work directory itself, where it is read then.

``slurm_bridge`` is imported only when called (it pulls asyncssh only for SSH).
Without a ``SlurmAccess`` these raise ``BackendUnavailable`` saying so; a site that cannot
be reached is ``BackendUnavailable``; a path out of the run directory, a symlink or a
missing file is ``Rejected`` (the bridge's ``UnsafeRunPath``/``RunDirError``). Used by
``simjob_sdk.client``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from simjob_sdk.errors import BackendUnavailable, NotFound, Rejected
from simjob_sdk.objects import OutputFile, SimJobObject

if TYPE_CHECKING:
    from slurm_bridge.runners import Runner


@dataclasses.dataclass(frozen=True)
class SlurmAccess:
    """How this gateway reaches the Slurm site of a SimJob (see the module docstring)."""

    runner: Callable[[SimJobObject], Runner]
    work_dir: Callable[[SimJobObject], str]


def _require(access: SlurmAccess | None, what: str) -> SlurmAccess:
    if access is None:
        raise BackendUnavailable(
            f"{what} of a Slurm SimJob needs site access: create the client with "
            "slurm=SlurmAccess(runner=..., work_dir=...) (see docs/sdk.md)"
        )
    return access


def _job_id(job: SimJobObject) -> str:
    ref = job.status.backend_ref
    if ref is None or not ref.id:
        raise NotFound(f"SimJob {job.namespace}/{job.name} has no Slurm job yet")
    return ref.id


async def _with_runner(
    access: SlurmAccess, job: SimJobObject, coro_for: Callable[[Runner, str], object]
) -> object:
    from slurm_bridge.errors import InvalidJobSpec, SlurmError
    from slurm_bridge.rundirs import RunDirError

    runner = access.runner(job)
    try:
        return await coro_for(runner, access.work_dir(job))  # type: ignore[misc]
    except (InvalidJobSpec, RunDirError) as exc:  # an unsafe path; a link, a missing file
        raise Rejected(f"{runner.where}: {exc}") from exc
    except SlurmError as exc:
        raise BackendUnavailable(f"{runner.where}: {exc}") from exc
    finally:
        await runner.close()


def read_batch_output(access: SlurmAccess | None, job: SimJobObject) -> bytes:
    """The Slurm job's stdout+stderr file, as far as it is written."""
    use = _require(access, "logs")
    job_id = _job_id(job)

    where = job.workspace_directory  # None: submitted before run directories

    async def read(runner: Runner, work_dir: str) -> bytes:
        from slurm_bridge.rundirs import fetch_file
        from slurm_bridge.scripts import OUTPUT_PATTERN

        return await fetch_file(runner, where or work_dir, OUTPUT_PATTERN.replace("%j", job_id))

    found = asyncio.run(_with_runner(use, job, read))
    assert isinstance(found, bytes)
    return found


def run_dir(access: SlurmAccess | None, job: SimJobObject) -> str:
    from slurm_bridge.rundirs import run_dir_path

    use = _require(access, "outputs")
    if job.workspace_directory:  # where the operator put it (status.workspace.directory)
        return job.workspace_directory
    return run_dir_path(use.work_dir(job), job.namespace, job.name, job.uid)


def list_outputs(access: SlurmAccess | None, job: SimJobObject) -> tuple[OutputFile, ...]:
    use = _require(access, "outputs")
    where = run_dir(use, job)

    async def listing(runner: Runner, _work_dir: str) -> tuple[OutputFile, ...]:
        from slurm_bridge.rundirs import list_run_dir

        entries = await list_run_dir(runner, where)
        return tuple(OutputFile(e.path, e.kind, e.size) for e in entries)

    found = asyncio.run(_with_runner(use, job, listing))
    assert isinstance(found, tuple)
    return found


def fetch_output(access: SlurmAccess | None, job: SimJobObject, path: str) -> bytes:
    use = _require(access, "download")
    where = run_dir(use, job)

    async def fetch(runner: Runner, _work_dir: str) -> bytes:
        from slurm_bridge.rundirs import fetch_file

        return await fetch_file(runner, where, path)

    found = asyncio.run(_with_runner(use, job, fetch))
    assert isinstance(found, bytes)
    return found
