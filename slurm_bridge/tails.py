"""The newest marked line of many job output files, read with one command.

``last_marked_lines`` is how a caller follows what running jobs print (the operator:
``SIMJOB_PROGRESS {json}`` lines, docs/data.md) at a bounded cost: ONE ``sh -c``
through a ``Runner`` (runners.py locally, ssh.py on a login node) reads every file of
a batch, whatever their number, and answers with at most one line per file. For each
(run directory, file name) it reads only the file's last ``tail_bytes`` bytes and
answers only the newest line that starts with ``prefix`` (at most ``MAX_LINE_BYTES``):
two processes per file (``stat``, ``dd``) and one ``awk`` for all.
Paths are positional arguments, never spliced into the program text. A batch whose
arguments would exceed ``MAX_ARGUMENT_BYTES`` (what one SSH command line can carry
through a login shell) is split; each part is one more command.

The files are written by the job, so they are untrusted, as in rundirs.py: the run
directory must not be a symlink and is entered with ``cd -P``; a file that is a
symlink is reported as such and never read; the read itself is ``dd iflag=nofollow``
(``O_NOFOLLOW``) from inside the directory, so a symlink planted between the check and
the read is refused too. Missing files (a job not started yet) are simply absent from
the answer. Needs POSIX sh, awk and GNU coreutils (``dd`` with ``skip_bytes``,
``stat -c``) on the login node. Neighbours: rundirs.py (the run directory), scripts.py (where the
output file is: ``output_path``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

from slurm_bridge.errors import InvalidJobSpec, SlurmError, SlurmUnavailable
from slurm_bridge.rundirs import check_file_name
from slurm_bridge.runners import DEFAULT_TIMEOUT_S, Runner
from slurm_bridge.specs import check_work_dir

__all__ = [
    "DEFAULT_TAIL_BYTES",
    "MAX_ARGUMENT_BYTES",
    "MAX_LINE_BYTES",
    "last_marked_lines",
    "read_tail",
]

DEFAULT_TAIL_BYTES = 16 * 1024
MAX_LINE_BYTES = 4096
# Linux caps one argument at 128 KiB (MAX_ARG_STRLEN), and over SSH the whole command
# line is one argument of the login shell: keep every command well below it.
MAX_ARGUMENT_BYTES = 96 * 1024
_PREFIX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ :]{0,63}")

# $1: bytes to read from each file's end; $2: the line prefix; $3: a nonce; $4: the
# longest line kept; then pairs (run directory, file name). For each readable file the
# loop prints "=<nonce> <index>" on a line of its own and the file's tail; ONE awk keeps
# each header and the newest marked line after it. Two processes per file (stat, dd),
# no subshell. A file cannot forge another's header: it does not know the nonce.
_TAILS = r"""
max=$1; prefix=$2; nonce=$3; limit=$4; shift 4
i=0
while [ "$#" -ge 2 ]; do
  dir=$1; name=$2; shift 2
  i=$((i + 1))
  [ -L "$dir" ] && continue
  cd -P -- "$dir" 2>/dev/null || continue
  [ -L "$name" ] && continue
  [ -f "$name" ] || continue
  size=$(stat -c %s -- "$name" 2>/dev/null) || continue
  skip=0
  [ "$size" -gt "$max" ] && skip=$((size - max))
  printf '\n=%s %s\n' "$nonce" "$i"
  dd if="$name" iflag=nofollow,nonblock,skip_bytes,count_bytes skip="$skip" count="$max" \
    bs=65536 status=none 2>/dev/null
done | awk -v h="=$nonce " -v p="$prefix" -v n="$limit" '
  function flush() { if (head != "") print head; if (last != "") print last }
  index($0, h) == 1 { flush(); head = $0; last = ""; next }
  index($0, p) == 1 { last = substr($0, 1, n) }
  END { flush() }'
"""

# $1 run directory, $2 file name, $3 bytes: the file's last $3 bytes, never through a
# symlink. Exit 3: no such file; 4: a symlink.
_TAIL = r"""
[ -L "$1" ] && exit 4
cd -P -- "$1" 2>/dev/null || exit 3
[ -L "$2" ] && exit 4
[ -f "$2" ] || exit 3
size=$(stat -c %s -- "$2") || exit 1
skip=0
[ "$size" -gt "$3" ] && skip=$((size - $3))
printf '%s\n' "$size"
dd if="$2" iflag=nofollow,nonblock,skip_bytes,count_bytes skip="$skip" count="$3" bs=65536 \
  status=none
"""
SYMLINK_NOTE = "[simjob: the output file is a symlink; it was not read]"


async def read_tail(
    runner: Runner,
    run_dir: str,
    name: str,
    max_bytes: int,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> tuple[bytes, bool]:
    """The last ``max_bytes`` bytes of the file ``name`` in ``run_dir`` and whether the
    file is longer; ``b""`` when it does not exist, ``SYMLINK_NOTE`` when it is a
    symlink (never followed). ``SlurmUnavailable`` when the command fails."""
    run_dir, name = check_work_dir(run_dir), check_file_name(name)
    argv = ["sh", "-c", _TAIL, "sh", run_dir, name, str(max(1, max_bytes))]
    result = await runner.run(argv, timeout_s=timeout_s)
    if result.returncode == 3:
        return b"", False
    if result.returncode == 4:
        return SYMLINK_NOTE.encode(), False
    if not result.ok:
        message = f"reading {run_dir}/{name}: {result.describe()}"
        raise SlurmUnavailable(message, argv=result.argv, stderr=result.stderr)
    size, _, data = result.stdout.partition("\n")
    return data.encode("utf-8"), int(size) > max_bytes if size.isdigit() else False


def _batches(files: Sequence[tuple[str, str]]) -> list[list[int]]:
    """Indexes of ``files`` split so that each command's arguments stay bounded."""
    batches: list[list[int]] = [[]]
    size = len(_TAILS.encode())
    for index, (run_dir, name) in enumerate(files):
        cost = len(run_dir.encode()) + len(name.encode()) + 8  # quoting and spaces
        if batches[-1] and size + cost > MAX_ARGUMENT_BYTES:
            batches.append([])
            size = len(_TAILS.encode())
        batches[-1].append(index)
        size += cost
    return [batch for batch in batches if batch]


def parse_answer(text: str, count: int, nonce: str, prefix: str) -> list[str | None]:
    """The newest marked line of each of ``count`` files from the program's output
    (None: no such line, no such file, or a symlink). Pure."""
    found: list[str | None] = [None] * count
    current: int | None = None
    header = f"={nonce} "
    for line in text.split("\n"):
        if line.startswith(header):
            number = line[len(header) :]
            current = int(number) - 1 if number.isdigit() else None
            if current is not None and not 0 <= current < count:
                current = None
        elif current is not None and line.startswith(prefix):
            found[current] = line.rstrip("\r")[:MAX_LINE_BYTES]
    return found


async def last_marked_lines(
    runner: Runner,
    files: Sequence[tuple[str, str]],
    prefix: str,
    *,
    tail_bytes: int = DEFAULT_TAIL_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[str | None]:
    """For each (run directory, file name) of ``files``, the newest line starting with
    ``prefix`` among the file's last ``tail_bytes`` bytes, or None. One command per
    ``MAX_ARGUMENT_BYTES`` of paths (one in all for hundreds of files). Raises
    ``InvalidJobSpec`` for a bad path or prefix before anything runs, ``SlurmError``
    when the command fails (``SlurmUnavailable``: the site did not answer)."""
    if not _PREFIX.fullmatch(prefix):
        raise InvalidJobSpec(f"prefix {prefix!r} must match {_PREFIX.pattern}")
    if tail_bytes < 1:
        raise InvalidJobSpec(f"tail_bytes must be positive, got {tail_bytes}")
    checked = [(check_work_dir(run_dir), check_file_name(name)) for run_dir, name in files]
    found: list[str | None] = [None] * len(checked)
    for batch in _batches(checked):
        pairs = [part for index in batch for part in checked[index]]
        nonce = secrets.token_hex(16)
        limit = str(MAX_LINE_BYTES)
        argv = ["sh", "-c", _TAILS, "sh", str(tail_bytes), prefix, nonce, limit, *pairs]
        result = await runner.run(argv, timeout_s=timeout_s)
        if not result.ok:
            raise SlurmError(
                f"reading {len(batch)} output files: {result.describe()}",
                argv=result.argv,
                stderr=result.stderr,
            )
        answer = parse_answer(result.stdout, len(batch), nonce, prefix)
        for index, line in zip(batch, answer, strict=True):
            found[index] = line
    return found
