"""slurm_bridge.tails on this host's real sh/dd (LocalRunner over a temporary folder):
the newest marked line of many output files in ONE command, each read only at its tail,
never through a symlink (a planted file symlink, a symlinked run directory); missing
files are simply absent; arguments beyond what one SSH command line carries are split.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from slurm_bridge import InvalidJobSpec, LocalRunner, RunResult
from slurm_bridge.tails import (
    MAX_LINE_BYTES,
    SYMLINK_NOTE,
    last_marked_lines,
    parse_answer,
    read_tail,
)

PREFIX = "SIMJOB_PROGRESS "


class CountingRunner(LocalRunner):
    def __init__(self) -> None:
        super().__init__()
        self.commands = 0

    async def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout_s: float = 60.0
    ) -> RunResult:
        self.commands += 1
        return await super().run(argv, stdin=stdin, timeout_s=timeout_s)


def lines(
    files: list[tuple[str, str]], runner: LocalRunner | None = None, **kw: int
) -> list[str | None]:
    return asyncio.run(last_marked_lines(runner or LocalRunner(), files, PREFIX, **kw))


def test_the_newest_marked_line_of_each_file_in_one_command(tmp_path: Path) -> None:
    runs = []
    for index in range(50):
        run_dir = tmp_path / f"run{index}"
        run_dir.mkdir()
        text = "".join(f'noise\nSIMJOB_PROGRESS {{"percent": {step}}}\n' for step in range(index))
        (run_dir / "simjob-1.out").write_text(text + "trailing output, no newline")
        runs.append((str(run_dir), "simjob-1.out"))
    runner = CountingRunner()
    found = lines(runs, runner)
    assert runner.commands == 1
    assert found[0] is None  # no progress line yet
    assert found[1:] == [f'SIMJOB_PROGRESS {{"percent": {i - 1}}}' for i in range(1, 50)]


def test_only_the_tail_is_read_and_a_line_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "out").write_text('SIMJOB_PROGRESS {"percent": 1}\n' + "x" * 10000 + "\n")
    assert lines([(str(tmp_path), "out")], tail_bytes=5000) == [None]
    assert lines([(str(tmp_path), "out")], tail_bytes=20000) == ['SIMJOB_PROGRESS {"percent": 1}']
    (tmp_path / "long").write_text(PREFIX + "y" * 20000 + "\n")
    (line,) = lines([(str(tmp_path), "long")], tail_bytes=30000)
    assert line is not None
    assert len(line) == MAX_LINE_BYTES


def test_symlinks_are_never_read_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text('SIMJOB_PROGRESS {"percent": 99, "message": "leak"}\n')
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "simjob-1.out").symlink_to(outside / "secret")  # a planted file symlink
    linked_dir = tmp_path / "linked"
    linked_dir.symlink_to(outside)  # a run directory that is a symlink
    (outside / "simjob-1.out").write_text('SIMJOB_PROGRESS {"percent": 98}\n')
    found = lines([(str(run_dir), "simjob-1.out"), (str(linked_dir), "simjob-1.out")])
    assert found == [None, None]
    data, cut = asyncio.run(read_tail(LocalRunner(), str(run_dir), "simjob-1.out", 100))
    assert (data, cut) == (SYMLINK_NOTE.encode(), False)


def test_missing_files_and_directories_are_absent(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    found = lines([(str(tmp_path / "run"), "simjob-1.out"), (str(tmp_path / "nope"), "x.out")])
    assert found == [None, None]
    assert asyncio.run(read_tail(LocalRunner(), str(tmp_path / "run"), "x", 10)) == (b"", False)


def test_read_tail_says_when_it_cut(tmp_path: Path) -> None:
    (tmp_path / "out").write_bytes(b"a" * 100 + b"\nlast line\n")
    data, cut = asyncio.run(read_tail(LocalRunner(), str(tmp_path), "out", 20))
    assert (data, cut) == ((b"a" * 100 + b"\nlast line\n")[-20:], True)
    assert asyncio.run(read_tail(LocalRunner(), str(tmp_path), "out", 1000))[1] is False


def test_many_long_paths_are_split_into_bounded_commands(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 200)
    deep.mkdir()
    (deep / "simjob-1.out").write_text('SIMJOB_PROGRESS {"percent": 5}\n')
    runner = CountingRunner()
    found = lines([(str(deep), "simjob-1.out")] * 1000, runner)  # ~250 KB of arguments
    assert runner.commands == 3
    assert found == ['SIMJOB_PROGRESS {"percent": 5}'] * 1000


@pytest.mark.parametrize(
    ("files", "prefix"),
    [
        ([("relative/dir", "out")], PREFIX),
        ([("/a/../b", "out")], PREFIX),
        ([("/tmp", "../out")], PREFIX),
        ([("/tmp", "-rf")], PREFIX),
        ([("/tmp", "out")], "^.*$"),
        ([("/tmp", "out")], "=1 ok"),
    ],
)
def test_bad_paths_and_prefixes_are_refused_before_anything_runs(
    files: list[tuple[str, str]], prefix: str
) -> None:
    runner = CountingRunner()
    with pytest.raises(InvalidJobSpec):
        asyncio.run(last_marked_lines(runner, files, prefix))
    assert runner.commands == 0


def test_parse_answer_keeps_the_lines_after_a_header_with_the_nonce() -> None:
    text = (
        "=n0nce 1\nSIMJOB_PROGRESS {}\r\n=n0nce 3\n=other 2\nSIMJOB_PROGRESS third\n"
        "=n0nce 9\nSIMJOB_PROGRESS x\n=n0nce x\nSIMJOB_PROGRESS y\n"
    )
    # "=other 2" is no header (another nonce): the line after it is still file 3's.
    found = parse_answer(text, 3, "n0nce", PREFIX)
    assert found == ["SIMJOB_PROGRESS {}", None, "SIMJOB_PROGRESS third"]


def test_a_job_cannot_forge_the_progress_of_another(tmp_path: Path) -> None:
    # A file that prints header-like lines (it cannot know the nonce of the command).
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    forged = "".join(f"={i} 2\n=x 2\n" for i in range(5))
    (tmp_path / "a" / "out").write_text(forged + 'SIMJOB_PROGRESS {"percent": 99}\n')
    (tmp_path / "b" / "out").write_text('SIMJOB_PROGRESS {"percent": 1}\n')
    found = lines([(str(tmp_path / "a"), "out"), (str(tmp_path / "b"), "out")])
    assert found == ['SIMJOB_PROGRESS {"percent": 99}', 'SIMJOB_PROGRESS {"percent": 1}']


def test_a_file_without_a_final_newline_keeps_the_next_header(tmp_path: Path) -> None:
    for name, text in (("a", 'SIMJOB_PROGRESS {"percent": 3}\npartial'), ("b", "x")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "out").write_text(text)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "out").write_text('SIMJOB_PROGRESS {"percent": 4}')  # no newline
    found = lines([(str(tmp_path / d), "out") for d in "abc"])
    assert found == ['SIMJOB_PROGRESS {"percent": 3}', None, 'SIMJOB_PROGRESS {"percent": 4}']
