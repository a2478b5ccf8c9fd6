"""slurm_bridge: run batch jobs on Slurm — local or over SSH, CLI tools or pyslurm.

This package imports nothing from the operator. Modules:

* specs.py — ``JobSpec`` (validated argv, env, resources, placement, marker);
* scripts.py — the batch script (quoted literals) and sbatch's option vector;
* states.py — ``JobState``, ``JobKind`` and the pure ``map_state``;
* parsing.py — squeue/sacct/scontrol output and output tails;
* clients.py — the ``SlurmClient`` protocol and ``Accounting`` modes;
* runners.py — the ``Runner`` protocol and ``LocalRunner``; ssh.py — ``SshPool``,
  ``SshTarget``, ``SshRunner`` (asyncssh, optional extra ``ssh``);
* cli.py — ``CliSlurmClient``; pyslurm_client.py — ``PyslurmClient`` (extra ``pyslurm``);
* errors.py — ``SlurmUnavailable``, ``SlurmRejected``, ``InvalidJobSpec``.

ssh.py and pyslurm_client.py are not imported here so that their optional dependencies
stay optional: import them explicitly.
"""

from slurm_bridge.cli import CliSlurmClient
from slurm_bridge.clients import Accounting, SlurmClient
from slurm_bridge.errors import InvalidJobSpec, SlurmError, SlurmRejected, SlurmUnavailable
from slurm_bridge.runners import LocalRunner, Runner, RunResult
from slurm_bridge.scripts import batch_script, output_path, sbatch_options
from slurm_bridge.specs import JobSpec
from slurm_bridge.states import JobKind, JobState, map_state

__all__ = [
    "Accounting",
    "CliSlurmClient",
    "InvalidJobSpec",
    "JobKind",
    "JobSpec",
    "JobState",
    "LocalRunner",
    "RunResult",
    "Runner",
    "SlurmClient",
    "SlurmError",
    "SlurmRejected",
    "SlurmUnavailable",
    "batch_script",
    "map_state",
    "output_path",
    "sbatch_options",
]
