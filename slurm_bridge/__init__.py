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
* errors.py — ``SlurmUnavailable`` (and ``CredentialsExpired``), ``SlurmRejected`` (and
  ``SlurmUnsatisfiable``), ``InvalidJobSpec``;
* rundirs.py — run directories: write inputs, list and fetch outputs, remove (local or
  SSH, through a runner; no path traversal, no symlink following);
* certs.py — OpenSSH user certificates: ``certificate_validity`` (expiry to show);
* listing.py — ``list_jobs``: one's own unfinished jobs by name prefix, with comments.

ssh.py and pyslurm_client.py are not imported here so that their optional dependencies
stay optional: import them explicitly.
"""

from slurm_bridge.certs import CertificateValidity, certificate_validity
from slurm_bridge.cli import CliSlurmClient
from slurm_bridge.clients import Accounting, SlurmClient
from slurm_bridge.errors import (
    CredentialsExpired,
    InvalidJobSpec,
    SlurmError,
    SlurmRejected,
    SlurmUnavailable,
    SlurmUnsatisfiable,
)
from slurm_bridge.listing import list_jobs
from slurm_bridge.rundirs import (
    RunDirError,
    RunFile,
    UnsafeRunPath,
    fetch_file,
    list_run_dir,
    remove_run_dir,
    run_dir_path,
    write_inputs,
)
from slurm_bridge.runners import LocalRunner, Runner, RunResult
from slurm_bridge.scripts import GpuRequest, batch_script, output_path, sbatch_options
from slurm_bridge.specs import JobSpec
from slurm_bridge.states import JobKind, JobState, ListedJob, map_state

__all__ = [
    "Accounting",
    "CertificateValidity",
    "CliSlurmClient",
    "CredentialsExpired",
    "GpuRequest",
    "InvalidJobSpec",
    "JobKind",
    "JobSpec",
    "JobState",
    "ListedJob",
    "LocalRunner",
    "RunDirError",
    "RunFile",
    "RunResult",
    "Runner",
    "SlurmClient",
    "SlurmError",
    "SlurmRejected",
    "SlurmUnavailable",
    "SlurmUnsatisfiable",
    "UnsafeRunPath",
    "batch_script",
    "certificate_validity",
    "fetch_file",
    "list_jobs",
    "list_run_dir",
    "map_state",
    "output_path",
    "remove_run_dir",
    "run_dir_path",
    "sbatch_options",
    "write_inputs",
]
