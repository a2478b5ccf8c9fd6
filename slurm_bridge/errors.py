"""Errors of the Slurm bridge, typed so that the operator can pick a phase or a condition.

Two families matter to callers (operator/simjob_operator/… maps them later):

* ``SlurmUnavailable`` — Slurm could not be asked: slurmctld does not answer, munge fails,
  the SSH login node is unreachable or refuses our key, a command timed out. The job's
  phase must not change; the cluster is shown ``Reachable=False`` and the call is retried.
  For ``submit`` it is *ambiguous*: the job may have been created before the error, so the
  caller must look the marker up (``SlurmClient.find``) before submitting again.
* ``SlurmRejected`` — Slurm answered and refused the job (bad partition, QOS limits, time
  limit above the partition's). Retrying the same job will not help; it carries Slurm's
  message for the user.

Two refinements, subclasses so that code handling the family keeps working:

* ``CredentialsExpired`` (a ``SlurmUnavailable``) — the login node refused an SSH
  certificate whose validity has ended (``valid_before`` says when). Running jobs are
  not affected; calls work again once the credential is renewed.
* ``SlurmUnsatisfiable`` (a ``SlurmRejected``) — Slurm refused the job because no node
  of the partition can ever satisfy it (more GPUs, CPUs or memory than any node has:
  sbatch's "Requested node configuration is not available").

``InvalidJobSpec`` (a ``ValueError``) is raised before anything is sent, when a value is
unsafe or malformed (see slurm_bridge/specs.py and slurm_bridge/scripts.py).
Neighbours: runners.py and ssh.py raise ``SlurmUnavailable``; cli.py classifies stderr.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

__all__ = [
    "CredentialsExpired",
    "InvalidJobSpec",
    "SlurmError",
    "SlurmRejected",
    "SlurmUnavailable",
    "SlurmUnsatisfiable",
]


class SlurmError(Exception):
    """Base class of every error the bridge raises about Slurm itself."""

    def __init__(self, message: str, *, argv: Sequence[str] = (), stderr: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.argv = tuple(argv)
        self.stderr = stderr


class SlurmUnavailable(SlurmError):
    """Slurm (or the way to it: SSH, munge, the commands) could not be reached."""


class SlurmRejected(SlurmError):
    """Slurm answered and refused the request (``sbatch`` rejected the job)."""


class SlurmUnsatisfiable(SlurmRejected):
    """No node of the partition can ever run the job as asked (e.g. too many GPUs)."""


class CredentialsExpired(SlurmUnavailable):
    """The SSH certificate has expired (or is not yet valid): renew the credential."""

    def __init__(
        self,
        message: str,
        *,
        valid_before: datetime | None = None,
        argv: Sequence[str] = (),
        stderr: str = "",
    ) -> None:
        super().__init__(message, argv=argv, stderr=stderr)
        self.valid_before = valid_before


class InvalidJobSpec(ValueError):
    """A value of a job spec is unsafe or malformed; nothing was sent to Slurm."""
