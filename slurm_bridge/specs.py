"""The job to submit: ``JobSpec``, validated on construction.

A ``JobSpec`` carries the user's literal argv (command + args), environment and working
directory, the tier's resources (CPUs per task, memory in MiB, time limit in seconds), the
site options (partition, QOS, account), the GPUs it needs and the SimJob's unique
``marker``. Construction rejects what cannot be passed safely: control characters anywhere
(NUL, ESC, CR, DEL, C1, line/paragraph separators), site options outside
``^[A-Za-z0-9_.-]+$``, malformed environment names, relative paths. Newlines and tabs are
allowed where a multi-line ``sh -c`` script belongs — the arguments after the program and
environment values (every one is single-quoted in the script) — and nowhere else (not in
the program name, working directory, comment or site options).

The marker becomes the Slurm job name (``--job-name``): it is the one job field that
``squeue``, ``sacct`` and ``sacct --completion`` (jobcomp/filetxt has no comment) can all
report, so ``SlurmClient.find`` can adopt a job whether it is pending, running or finished.
A free-text ``comment`` (e.g. ``namespace/name``) goes to ``--comment`` for humans.
Neighbours: scripts.py turns a spec into a batch script and sbatch options; errors.py.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from slurm_bridge.errors import InvalidJobSpec

__all__ = [
    "MAX_ARGS",
    "MAX_VALUE_CHARS",
    "MULTILINE_CHARS",
    "JobSpec",
    "check_site_name",
    "check_text",
    "check_work_dir",
    "time_limit_minutes",
]

MAX_VALUE_CHARS = 65536
MAX_ARGS = 4096
SITE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
MARKER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
# The directory for scripts and output files (a SlurmCluster's workDir): it ends up in
# sbatch's --output pattern, where '%' is special, so only plain path characters.
WORK_DIR = re.compile(r"/[A-Za-z0-9_./@+=,-]*")
# Unicode categories never accepted in a value: controls (\n, \r, \t, NUL, ESC, DEL, C1),
# line/paragraph separators and lone surrogates (not encodable).
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
# The control characters a multi-line value may hold (``multiline=True``).
MULTILINE_CHARS = frozenset("\n\t")


def check_text(what: str, value: str, *, allow_empty: bool = True, multiline: bool = False) -> str:
    """Return ``value`` if it is a string without control characters, else raise.

    With ``multiline`` a newline or a tab is accepted (every other control character is
    still refused): for values that reach the job as one quoted word.
    """
    if not isinstance(value, str):
        raise InvalidJobSpec(f"{what} must be a string, got {type(value).__name__}")
    if not value and not allow_empty:
        raise InvalidJobSpec(f"{what} must not be empty")
    if len(value) > MAX_VALUE_CHARS:
        raise InvalidJobSpec(f"{what} is {len(value)} characters long (at most {MAX_VALUE_CHARS})")
    for index, char in enumerate(value):
        if multiline and char in MULTILINE_CHARS:
            continue
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            allowed = (
                "control characters other than newline and tab are not allowed"
                if multiline
                else "newlines and control characters are not allowed"
            )
            raise InvalidJobSpec(
                f"{what} contains the control character {char!r} at position {index}: {allowed}"
            )
    return value


def check_site_name(what: str, value: str | None) -> str | None:
    """Partition, QOS and account names: ``^[A-Za-z0-9_.-]+$`` or ``None``."""
    if value is None:
        return None
    if not isinstance(value, str) or not SITE_NAME.fullmatch(value):
        raise InvalidJobSpec(f"{what} {value!r} must match ^[A-Za-z0-9_.-]+$")
    return value


def check_work_dir(value: str) -> str:
    """An absolute directory made of plain path characters (no '%', spaces, quotes)."""
    if not isinstance(value, str) or not WORK_DIR.fullmatch(value) or "/../" in f"{value}/":
        raise InvalidJobSpec(
            f"work directory {value!r} must be an absolute path of [A-Za-z0-9_./@+=,-] without '..'"
        )
    return value.rstrip("/") or "/"


def time_limit_minutes(seconds: float) -> int:
    """sbatch ``--time`` in whole minutes: the ceiling of ``seconds / 60``, at least 1."""
    return max(1, math.ceil(seconds / 60))


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One batch job: literal argv, environment, resources and Slurm placement.

    ``command`` + ``args`` is run as is (``exec`` of the quoted words); ``env`` is exported
    before it; ``working_dir`` (absolute) is entered first, else the job starts in the
    client's work directory. ``time_limit_seconds`` becomes ``--time`` rounded up to whole
    minutes. ``gpus`` (a count) becomes ``--gres=gpu:N`` or ``--gpus=N`` per site (see
    scripts.py). ``hold`` submits the job held (``--hold``), e.g. to reserve it.
    ``directory`` (an existing plain absolute path, ``check_work_dir``; e.g. the run
    directory of rundirs.py) is where the job starts and its output file goes, instead
    of the client's work directory.
    """

    marker: str
    command: Sequence[str]
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    comment: str | None = None
    cpus_per_task: int = 1
    memory_mib: int | None = None
    time_limit_seconds: float | None = None
    partition: str | None = None
    qos: str | None = None
    account: str | None = None
    hold: bool = False
    gpus: int | None = None
    directory: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.marker, str) or not MARKER.fullmatch(self.marker):
            raise InvalidJobSpec(
                f"marker {self.marker!r} must match ^[A-Za-z0-9][A-Za-z0-9_.:-]{{0,127}}$"
            )
        command = _string_tuple("command", self.command)
        args = _string_tuple("args", self.args)
        if not command:
            raise InvalidJobSpec("command must have at least one element")
        if len(command) + len(args) > MAX_ARGS:
            raise InvalidJobSpec(f"command + args has more than {MAX_ARGS} elements")
        check_text("command[0]", command[0], allow_empty=False)
        if command[0].startswith("-"):
            raise InvalidJobSpec(f"command[0] {command[0]!r} must not start with '-'")
        for index, word in enumerate(command[1:], start=1):
            check_text(f"command[{index}]", word, multiline=True)
        for index, word in enumerate(args):
            check_text(f"args[{index}]", word, multiline=True)
        object.__setattr__(self, "command", command)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "env", _checked_env(self.env))
        if self.working_dir is not None:
            check_text("working_dir", self.working_dir, allow_empty=False)
            if not self.working_dir.startswith("/"):
                raise InvalidJobSpec(f"working_dir {self.working_dir!r} must be absolute")
        if self.comment is not None:
            check_text("comment", self.comment)
        for name in ("cpus_per_task", "memory_mib", "gpus"):
            number = getattr(self, name)
            if number is None and name != "cpus_per_task":
                continue
            least = 0 if name == "gpus" else 1  # gpus=0 asks for none, like None
            if isinstance(number, bool) or not isinstance(number, int) or number < least:
                kind = "a non-negative" if least == 0 else "a positive"
                raise InvalidJobSpec(f"{name} must be {kind} integer, got {number!r}")
        limit = self.time_limit_seconds
        if limit is not None and (
            isinstance(limit, bool)
            or not isinstance(limit, int | float)
            or not math.isfinite(limit)
            or limit <= 0
        ):
            raise InvalidJobSpec(f"time_limit_seconds must be a positive number, got {limit!r}")
        if self.directory is not None:
            object.__setattr__(self, "directory", check_work_dir(self.directory))
        check_site_name("partition", self.partition)
        check_site_name("qos", self.qos)
        check_site_name("account", self.account)

    @property
    def argv(self) -> tuple[str, ...]:
        """The literal argument vector the job runs: command followed by args."""
        return (*self.command, *self.args)


def _string_tuple(what: str, values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidJobSpec(f"{what} must be a list of strings, got {type(values).__name__}")
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise InvalidJobSpec(f"{what}[{index}] must be a string, got {type(value).__name__}")
    return tuple(values)


def _checked_env(env: Mapping[str, str]) -> Mapping[str, str]:
    if not isinstance(env, Mapping):
        raise InvalidJobSpec(f"env must be a mapping, got {type(env).__name__}")
    checked: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise InvalidJobSpec(
                f"environment variable name {name!r} must match ^[A-Za-z_][A-Za-z0-9_]*$"
            )
        checked[name] = check_text(f"env[{name}]", value, multiline=True)
    return checked
