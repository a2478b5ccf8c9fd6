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

``InvalidJobSpec`` (a ``ValueError``) is raised before anything is sent, when a value is
unsafe or malformed (see slurm_bridge/specs.py and slurm_bridge/scripts.py).
Neighbours: runners.py and ssh.py raise ``SlurmUnavailable``; cli.py classifies stderr.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "InvalidJobSpec",
    "SlurmError",
    "SlurmRejected",
    "SlurmUnavailable",
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


class InvalidJobSpec(ValueError):
    """A value of a job spec is unsafe or malformed; nothing was sent to Slurm."""
