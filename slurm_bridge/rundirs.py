"""Run directories on a Slurm site: write a run's inputs, list and fetch its outputs, remove it.

A run directory (``<workDir>/<namespace>/<name>-<uid>``, ``run_dir_path``, or any absolute
plain path the caller passes) holds one run's inputs, the files it writes and may be
read by a gateway afterwards. Everything goes through a ``Runner`` (runners.py locally,
ssh.py on a login node) as a fixed POSIX ``sh -c`` program whose paths are positional
arguments (never spliced into the program text) and whose file contents travel on
stdin (writes) or as base64 on stdout (reads), so bytes and odd names survive SSH.

The directory's contents are untrusted: the simulation (or anyone with the job's
account) may plant symlinks in it. So:

* names are validated before anything runs (``check_file_name``/``check_relative_path``:
  no absolute path, no ``..`` or ``.``, no leading ``-``, no control characters) —
  ``UnsafeRunPath`` (an ``InvalidJobSpec``);
* the run directory itself must not be a symlink, and a path is entered one component
  at a time with ``cd -P``, each checked with ``pwd -P`` to be the real child of the
  previous one (a symlinked directory is refused, even one pointing inside);
* a file is read with ``dd iflag=nofollow`` (``O_NOFOLLOW``): a planted symlink is never
  followed, and since the walk holds the directory as its working directory, renaming
  components meanwhile cannot redirect it;
* inputs are written to a fresh temporary name with ``set -C`` (``O_EXCL``: a planted
  symlink at that name makes it fail) and renamed over the final name with ``mv -T``,
  which replaces a planted symlink rather than writing through it;
* ``list_run_dir`` uses ``find -P`` (symlinks reported as such, never followed);
* ``remove_run_dir`` removes exactly one directory strictly inside the work-dir root,
  checked by real path, from its real parent (``rm -rf`` does not follow symlinks).

Refusals by the site are ``RunDirError``; an unreachable site is ``SlurmUnavailable``.
The login node needs POSIX sh and GNU coreutils/findutils (``dd``, ``base64``, ``mv -T``,
``find -printf``), as every Linux login node has.
Neighbours: runners.py/ssh.py (where commands run), specs.py (``check_work_dir``).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from slurm_bridge.errors import InvalidJobSpec, SlurmError, SlurmUnavailable
from slurm_bridge.runners import DEFAULT_TIMEOUT_S, Runner, RunResult
from slurm_bridge.specs import check_work_dir

__all__ = [
    "DEFAULT_MAX_FETCH_BYTES",
    "DEFAULT_MAX_INPUT_BYTES",
    "RunDirError",
    "RunFile",
    "UnsafeRunPath",
    "check_file_name",
    "check_relative_path",
    "fetch_file",
    "list_run_dir",
    "remove_run_dir",
    "run_dir_path",
    "write_inputs",
]

DEFAULT_MAX_INPUT_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_FETCH_BYTES = 64 * 1024 * 1024
MAX_NAME_BYTES = 255
_FORBIDDEN = frozenset({"Cc", "Zl", "Zp", "Cs"})
_MODES = frozenset({0o644, 0o600, 0o444, 0o400})
# Exit statuses of the programs below (anything else: the command itself failed).
_MISSING, _SYMLINK, _NOT_FILE, _TOO_BIG = 3, 4, 5, 6
_REASONS = {
    _MISSING: "does not exist",
    _SYMLINK: "is or passes through a symlink (not followed)",
    _NOT_FILE: "is not a regular file",
    _TOO_BIG: "is larger than the limit",
}

# Enter "$1" (the run directory, not itself a symlink), then each further argument as one
# path component that must be a real subdirectory. Leaves the shell in the last one.
_WALK = r"""
fail() { printf 'simjob-rundir: %s\n' "$2" >&2; exit "$1"; }
[ -L "$1" ] && fail 4 "$1"
cd -P -- "$1" 2>/dev/null || fail 3 "$1"
here=$(pwd -P) || exit 1
shift
walk() {
  while [ "$#" -gt 0 ]; do
    [ -L "$1" ] && fail 4 "$1"
    cd -P -- "$1" 2>/dev/null || fail 3 "$1"
    now=$(pwd -P) || exit 1
    [ "$now" = "${here%/}/$1" ] || fail 4 "$1"
    here=$now
    shift
  done
}
"""
_FETCH = (
    _WALK
    + r"""
max=$1; name=$2; shift 2
walk "$@"
[ -L "$name" ] && fail 4 "$name"
[ -e "$name" ] || fail 3 "$name"
[ -f "$name" ] || fail 5 "$name"
size=$(wc -c < "$name") || exit 1
[ "$size" -le "$max" ] || fail 6 "$name ($size bytes)"
dd if="$name" iflag=nofollow,nonblock bs=65536 status=none | head -c "$max" | base64 -w 0
"""
)
_WRITE = (
    _WALK
    + r"""
name=$1; tmp=$2; mode=$3
[ -d "$name" ] && [ ! -L "$name" ] && fail 5 "$name"
set -C
umask 077
cat > "$tmp" || exit 1
chmod "$mode" "$tmp" && mv -f -T -- "$tmp" "$name" || { rm -f -- "$tmp"; exit 1; }
"""
)
_LIST = (
    _WALK
    + r"""
find . -mindepth 1 -maxdepth "$1" -printf '%y %s %T@ %P\0' | head -z -n "$2"
"""
)
_REMOVE = r"""
fail() { printf 'simjob-rundir: %s\n' "$2" >&2; exit "$1"; }
root=$(cd -P -- "$1" 2>/dev/null && pwd -P) || fail 3 "$1"
cd -P -- "$2" 2>/dev/null || exit 0
if [ -n "$3" ]; then want="${root%/}/$3"; else want=$root; fi
[ "$(pwd -P)" = "$want" ] || fail 4 "$2"
[ -L "$4" ] && fail 4 "$4"
[ -e "$4" ] || exit 0
rm -rf -- "$4" && printf removed
"""


class UnsafeRunPath(InvalidJobSpec):
    """A file name or path that could leave the run directory; nothing was run."""


class RunDirError(SlurmError):
    """The site refused a run-directory operation (missing, symlink, too large...)."""


@dataclass(frozen=True, slots=True)
class RunFile:
    """One entry of a run directory: relative ``path``, ``kind`` and its size and mtime.

    ``kind`` is ``file``, ``dir``, ``symlink`` (never followed) or ``other``.
    """

    path: str
    kind: str
    size: int
    mtime: float


def run_dir_path(work_dir: str, namespace: str, name: str, uid: str) -> str:
    """``<work_dir>/<namespace>/<name>-<uid>``, each part checked to be one plain name."""
    for what, part in (("namespace", namespace), ("name", name), ("uid", uid)):
        check_file_name(part, what=what)
    return check_work_dir(f"{check_work_dir(work_dir)}/{namespace}/{name}-{uid}")


def check_file_name(name: str, *, what: str = "file name") -> str:
    """One path component: not empty, ``.`` or ``..``, no ``/``, no leading ``-``, no
    control characters, at most 255 UTF-8 bytes."""
    if not isinstance(name, str) or not name:
        raise UnsafeRunPath(f"{what} must be a non-empty string, got {name!r}")
    if name in (".", "..") or "/" in name or name.startswith("-"):
        raise UnsafeRunPath(f"{what} {name!r} must not be '.', '..', contain '/' or start with '-'")
    if any(unicodedata.category(char) in _FORBIDDEN for char in name):
        raise UnsafeRunPath(f"{what} {name!r} contains a control character")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise UnsafeRunPath(f"{what} is longer than {MAX_NAME_BYTES} bytes")
    return name


def check_relative_path(path: str) -> list[str]:
    """The components of a relative path inside a run directory (each ``check_file_name``)."""
    if not isinstance(path, str) or not path or path.startswith("/"):
        raise UnsafeRunPath(f"path {path!r} must be relative to the run directory")
    return [check_file_name(part, what=f"component of {path!r}") for part in path.split("/")]


async def write_inputs(
    runner: Runner,
    run_dir: str,
    files: Mapping[str, bytes],
    *,
    mode: int = 0o644,
    max_total_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> None:
    """Create ``run_dir`` (mode 0700; parents as needed) and write ``files`` (name ->
    bytes) with ``mode`` (0644, 0600, or read-only 0444/0400), each replacing what had
    that name (a planted symlink included, which is replaced, never written through).
    ``UnsafeRunPath`` before anything runs for a bad name or mode or more than
    ``max_total_bytes`` in all."""
    run_dir = check_work_dir(run_dir)
    if mode not in _MODES:
        raise UnsafeRunPath(f"mode must be 0o644, 0o600, 0o444 or 0o400, got {mode:#o}")
    names = [check_file_name(name) for name in files]
    total = 0
    for name in names:
        data = files[name]
        if not isinstance(data, bytes):
            raise UnsafeRunPath(f"contents of {name!r} must be bytes")
        total += len(data)
    if total > max_total_bytes:
        raise UnsafeRunPath(f"inputs are {total} bytes in all (at most {max_total_bytes})")
    made = await runner.run(["mkdir", "-p", "-m", "0700", "--", run_dir], timeout_s=timeout_s)
    _check(made, run_dir)
    for name in names:
        tmp = f".simjob-input-{secrets.token_hex(8)}"
        argv = ["sh", "-c", _WRITE, "sh", run_dir, name, tmp, f"{mode:o}"]
        result = await runner.run(argv, stdin=files[name], timeout_s=timeout_s)
        _check(result, f"{run_dir}/{name}")


async def list_run_dir(
    runner: Runner,
    run_dir: str,
    *,
    max_depth: int = 8,
    max_entries: int = 10000,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[RunFile]:
    """The entries of ``run_dir`` (sorted by path, at most ``max_entries``); symlinks are
    listed as ``symlink`` and never followed."""
    run_dir = check_work_dir(run_dir)
    argv = ["sh", "-c", _LIST, "sh", run_dir, str(max_depth), str(max_entries)]
    result = await runner.run(argv, timeout_s=timeout_s)
    _check(result, run_dir)
    entries = []
    for record in result.stdout.split("\0"):
        kind, size, mtime, path = [*record.split(" ", 3), "", "", "", ""][:4]
        if not path:
            continue
        entries.append(
            RunFile(
                path=path,
                kind={"f": "file", "d": "dir", "l": "symlink"}.get(kind, "other"),
                size=int(size) if size.isdigit() else 0,
                mtime=_float(mtime),
            )
        )
    return sorted(entries, key=lambda entry: entry.path)


async def fetch_file(
    runner: Runner,
    run_dir: str,
    path: str,
    *,
    max_bytes: int = DEFAULT_MAX_FETCH_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> bytes:
    """The contents of the regular file ``path`` (relative) in ``run_dir``; never through
    a symlink; ``RunDirError`` when it is missing, a symlink, not a file or too large."""
    run_dir = check_work_dir(run_dir)
    *dirs, name = check_relative_path(path)
    argv = ["sh", "-c", _FETCH, "sh", run_dir, str(max_bytes), name, *dirs]
    result = await runner.run(argv, timeout_s=timeout_s)
    _check(result, f"{run_dir}/{path}")
    if result.stderr.strip():  # dd refused (O_NOFOLLOW) or failed while reading
        raise RunDirError(f"{run_dir}/{path}: {result.stderr.strip()}", argv=result.argv)
    try:
        return base64.b64decode(result.stdout.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SlurmUnavailable(f"unreadable answer fetching {run_dir}/{path}: {exc}") from exc


async def remove_run_dir(
    runner: Runner, workdir_root: str, run_dir: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> bool:
    """Remove exactly ``run_dir`` (and what it holds); True if it existed.

    ``run_dir`` must be strictly inside ``workdir_root`` — as text and, on the site, by
    real path (no symlinked component); anything else raises ``UnsafeRunPath`` or
    ``RunDirError`` and removes nothing.
    """
    root = check_work_dir(workdir_root)
    target = check_work_dir(run_dir)
    prefix = root.rstrip("/") + "/"
    if not target.startswith(prefix) or target == root:
        raise UnsafeRunPath(f"{run_dir!r} is not strictly inside {workdir_root!r}")
    relative = check_relative_path(target[len(prefix) :])
    parent = "/".join(relative[:-1])
    parent_dir = f"{prefix}{parent}" if parent else root
    argv = ["sh", "-c", _REMOVE, "sh", root, parent_dir, parent, relative[-1]]
    result = await runner.run(argv, timeout_s=timeout_s)
    _check(result, target)
    return result.stdout.strip() == "removed"


def _check(result: RunResult, what: str) -> None:
    if result.ok:
        return
    reason = _REASONS.get(result.returncode)
    if reason is not None:
        raise RunDirError(
            f"{what}: {result.stderr.strip() or 'refused'} {reason}",
            argv=result.argv,
            stderr=result.stderr,
        )
    raise RunDirError(
        f"{what}: {result.describe()}",
        argv=result.argv,
        stderr=result.stderr,
    )


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0
