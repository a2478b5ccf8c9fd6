"""Removing a run's expired outputs on a Slurm site: its run directory.

``RunDirCleaner`` is the ``core.retention.OutputRemover`` for a SimJob whose
``status.workspace`` names a SlurmCluster and a run directory (``cluster``,
``directory``). It removes exactly that directory with ``slurm_bridge.rundirs.remove_run_dir``
as the SimJob's login (``jobs.login_of``: the cluster's user, or the SimJob's
credentials Secret), through ``sites.Sites.rundir_runner`` (locally or over the pooled
SSH connection); the bridge refuses a directory that is not strictly inside that
login's workDir, as text and on the site by real path (a symlinked component). One
command, done when it returns: ``Removed`` (also when the directory was already gone),
``Refused`` for what no retry changes (an unsafe path, a symlink, a SlurmCluster or
Secret that cannot be used), and ``BackendUnavailable`` when the site does not answer
(the reconciler retries with backoff). Neighbours: ``sites``, ``jobs``; wired in by
``controller.runtime``.
"""

from __future__ import annotations

from simjob_operator.api.data import WorkspaceStatus
from simjob_operator.backends.base import BackendUnavailable
from simjob_operator.backends.slurm.credentials import SiteError
from simjob_operator.backends.slurm.jobs import login_of
from simjob_operator.backends.slurm.sites import Sites
from simjob_operator.core.retention import Refused, Removal, Removed
from simjob_operator.core.view import SimJobRecord
from slurm_bridge import SlurmUnavailable
from slurm_bridge.rundirs import RunDirError, UnsafeRunPath, remove_run_dir


class RunDirCleaner:
    def __init__(self, sites: Sites) -> None:
        self.sites = sites

    async def remove(self, record: SimJobRecord, workspace: WorkspaceStatus) -> Removal:
        if workspace.cluster is None or workspace.directory is None:
            return Refused("status.workspace names no SlurmCluster and run directory")
        where = f"{workspace.cluster}:{workspace.directory}"
        try:
            site = await self.sites.get(workspace.cluster)
            if site is None:
                return Refused(f"{where}: SlurmCluster {workspace.cluster!r} does not exist")
            runner, root = await self.sites.rundir_runner(site, login_of(record))
            existed = await remove_run_dir(runner, root, workspace.directory)
        except SiteError as exc:
            return Refused(f"{where}: {exc.message}")
        except UnsafeRunPath as exc:
            return Refused(f"{where}: {exc}")
        except RunDirError as exc:
            return Refused(f"{where}: {exc.message}")
        except SlurmUnavailable as exc:
            raise BackendUnavailable(f"{where}: {exc.message}") from exc
        return Removed(f"{where}: {'removed' if existed else 'did not exist'}")
