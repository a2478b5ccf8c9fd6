"""Start the repo-local Slurm (hack/slurm/up.sh) and build the environment for its clients.

``slurm_environment(repo)`` runs ``hack/slurm/up.sh`` (idempotent: about a second when the
daemons already run) and returns ``os.environ`` merged with the exports of ``.slurm/env``,
to be passed as ``env=`` to ``sbatch``/``squeue``/``scontrol``/``scancel`` subprocesses.

Inherited Slurm client variables (``SLURM_*``, ``SBATCH_*``, ``SQUEUE_*``, ...) are dropped
first, so a developer's shell set up for a real cluster (or running inside a Slurm job) cannot
change what the tests submit or how the output they parse is formatted.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

__all__ = ["SlurmUnavailableError", "parse_env_file", "slurm_environment"]

# First start may apt-get install slurm-wlm and munge.
UP_TIMEOUT_S = 900.0

_CLIENT_PREFIXES = (
    "SLURM_",
    "SBATCH_",
    "SALLOC_",
    "SRUN_",
    "SQUEUE_",
    "SINFO_",
    "SACCT_",
    "SCANCEL_",
    "SCONTROL_",
)
# up.sh writes every value as single-quoted literals, a quote itself as '\'' (no expansion).
_EXPORT = re.compile(r"export (?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>(?:'[^']*'|\\')*)")


class SlurmUnavailableError(RuntimeError):
    """hack/slurm/up.sh failed or .slurm/env could not be read."""


def parse_env_file(path: Path) -> dict[str, str]:
    """Parse ``export NAME='value'`` lines (values are shell-quoted literals, no expansion)."""
    exports: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _EXPORT.fullmatch(line)
        if match is None:
            raise SlurmUnavailableError(
                f"{path}:{lineno}: not an `export NAME='value'` line: {raw!r}"
            )
        exports[match.group("name")] = "".join(shlex.split(match.group("value")))
    if "SLURM_CONF" not in exports:
        raise SlurmUnavailableError(f"{path} does not export SLURM_CONF")
    return exports


def slurm_environment(repo: Path) -> dict[str, str]:
    """Make sure the local Slurm runs and return the environment for its clients."""
    up = repo / "hack" / "slurm" / "up.sh"
    try:
        proc = subprocess.run(
            ["bash", str(up)],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=UP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmUnavailableError(f"{up} did not finish within {UP_TIMEOUT_S:.0f} s") from exc
    if proc.returncode != 0:
        raise SlurmUnavailableError(
            f"{up} failed with exit code {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_PREFIXES)}
    env.update(parse_env_file(repo / ".slurm" / "env"))
    return env
