"""Run directories through the local runner: inputs in, outputs listed and fetched, removal.

Hostile names are refused before anything runs; a run directory with planted symlinks
(a file linked to /etc/passwd or to a secret outside, a symlinked directory, a symlink
where an input goes) can neither be read nor written through; removal takes exactly one
directory strictly inside the work-dir root and leaves its neighbours. The same runs
over the real sshd in tests/integration/test_bridge_ssh.py.
Neighbours: slurm_bridge/rundirs.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from slurm_bridge import (
    InvalidJobSpec,
    LocalRunner,
    RunDirError,
    UnsafeRunPath,
    fetch_file,
    list_run_dir,
    remove_run_dir,
    run_dir_path,
    write_inputs,
)

T = TypeVar("T")
RUNNER = LocalRunner()
HOSTILE_NAMES = [
    "",
    ".",
    "..",
    "../x",
    "a/b",
    "/etc/passwd",
    "-rf",
    "--help",
    "a\nb",
    "a\x00b",
    "tab\tname",
    "esc\x1b",
    "x" * 256,
]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def test_run_dir_path_is_workdir_namespace_name_uid() -> None:
    assert run_dir_path("/scratch/w/", "lab", "sim", "0b5c-11") == "/scratch/w/lab/sim-0b5c-11"
    for bad in ("..", "a/b", "-x", ""):
        with pytest.raises(InvalidJobSpec):
            run_dir_path("/scratch/w", bad, "sim", "u")
    with pytest.raises(InvalidJobSpec):
        run_dir_path("relative", "lab", "sim", "u")


def test_inputs_are_written_with_modes_and_odd_names(tmp_path: Path) -> None:
    run_dir = tmp_path / "lab" / "sim-1"
    files = {
        "input.json": b'{"steps": 3}\n',
        "secret.key": bytes(range(256)),
        "it's $(id) `x` é.txt": b"",
        "multi\u00a0line.sh": b"echo 1\necho 2\n",
    }
    run(write_inputs(RUNNER, str(run_dir), files))
    run(write_inputs(RUNNER, str(run_dir), {"secret.key": b"k"}, mode=0o600))
    assert {p.name for p in run_dir.iterdir()} == set(files)
    assert (run_dir / "input.json").read_bytes() == files["input.json"]
    assert (run_dir / "secret.key").read_bytes() == b"k"
    assert (run_dir / "secret.key").stat().st_mode & 0o777 == 0o600
    assert (run_dir / "input.json").stat().st_mode & 0o777 == 0o644
    assert run_dir.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_hostile_input_names_are_refused_before_anything_runs(name: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafeRunPath):
        run(write_inputs(RUNNER, str(tmp_path / "run"), {name: b"x"}))
    assert not (tmp_path / "run").exists()


def test_input_limits_and_modes(tmp_path: Path) -> None:
    with pytest.raises(UnsafeRunPath, match="at most 10"):
        run(
            write_inputs(
                RUNNER, str(tmp_path / "r"), {"a": b"123456", "b": b"12345"}, max_total_bytes=10
            )
        )
    with pytest.raises(UnsafeRunPath, match="mode"):
        run(write_inputs(RUNNER, str(tmp_path / "r"), {"a": b""}, mode=0o777))
    assert not (tmp_path / "r").exists()


def test_a_planted_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "input.txt").symlink_to(outside)
    (run_dir / "dir-link").symlink_to(tmp_path)
    run(write_inputs(RUNNER, str(run_dir), {"input.txt": b"new\n", "dir-link": b"file\n"}))
    assert outside.read_text() == "precious\n"
    assert not (run_dir / "input.txt").is_symlink()
    assert (run_dir / "input.txt").read_bytes() == b"new\n"
    assert (run_dir / "dir-link").read_bytes() == b"file\n"
    assert not (tmp_path / "input.txt").exists()
    (run_dir / "real-dir").mkdir()
    with pytest.raises(RunDirError, match="not a regular file"):
        run(write_inputs(RUNNER, str(run_dir), {"real-dir": b"x"}))


def planted(tmp_path: Path) -> Path:
    """A run directory as a hostile simulation leaves it."""
    secret = tmp_path / "secret-dir"
    secret.mkdir()
    (secret / "key").write_text("private\n")
    run_dir = tmp_path / "lab" / "sim-1"
    (run_dir / "out" / "deep").mkdir(parents=True)
    (run_dir / "out" / "result.dat").write_bytes(b"\x00\x01binary\xff\n")
    (run_dir / "out" / "deep" / "log.txt").write_text("line 1\nline 2\n")
    (run_dir / "passwd").symlink_to("/etc/passwd")
    (run_dir / "key").symlink_to(secret / "key")
    (run_dir / "secrets").symlink_to(secret)
    (run_dir / "inside").symlink_to(run_dir / "out")
    (run_dir / "rel").symlink_to("out/result.dat")
    return run_dir


def test_list_reports_symlinks_without_following_them(tmp_path: Path) -> None:
    run_dir = planted(tmp_path)
    entries = {e.path: e for e in run(list_run_dir(RUNNER, str(run_dir)))}
    assert set(entries) == {
        "out",
        "out/deep",
        "out/deep/log.txt",
        "out/result.dat",
        "passwd",
        "key",
        "secrets",
        "inside",
        "rel",
    }
    assert entries["out/result.dat"].kind == "file"
    assert entries["out/result.dat"].size == 10
    assert entries["out"].kind == "dir"
    assert all(entries[n].kind == "symlink" for n in ("passwd", "key", "secrets", "inside"))
    assert len(run(list_run_dir(RUNNER, str(run_dir), max_entries=2))) == 2
    assert {e.path for e in run(list_run_dir(RUNNER, str(run_dir), max_depth=1))} == {
        "out",
        "passwd",
        "key",
        "secrets",
        "inside",
        "rel",
    }


def test_fetch_reads_files_and_never_follows_symlinks(tmp_path: Path) -> None:
    run_dir = planted(tmp_path)
    assert run(fetch_file(RUNNER, str(run_dir), "out/result.dat")) == b"\x00\x01binary\xff\n"
    assert run(fetch_file(RUNNER, str(run_dir), "out/deep/log.txt")) == b"line 1\nline 2\n"
    for path in ("passwd", "key", "secrets/key", "inside/result.dat", "rel"):
        with pytest.raises(RunDirError, match="symlink"):
            run(fetch_file(RUNNER, str(run_dir), path))
    for path in ("nope", "out/nope", "nope/x"):
        with pytest.raises(RunDirError, match="does not exist"):
            run(fetch_file(RUNNER, str(run_dir), path))
    with pytest.raises(RunDirError, match="not a regular file"):
        run(fetch_file(RUNNER, str(run_dir), "out"))
    with pytest.raises(RunDirError, match="larger than the limit"):
        run(fetch_file(RUNNER, str(run_dir), "out/result.dat", max_bytes=9))
    for path in ("/etc/passwd", "../secret-dir/key", "out/../passwd", "out//x", "", "-n", "a\nb"):
        with pytest.raises(UnsafeRunPath):
            run(fetch_file(RUNNER, str(run_dir), path))


def test_a_run_dir_that_is_itself_a_symlink_is_refused(tmp_path: Path) -> None:
    run_dir = planted(tmp_path)
    link = tmp_path / "lab" / "sim-2"
    link.symlink_to(run_dir)
    with pytest.raises(RunDirError, match="symlink"):
        run(fetch_file(RUNNER, str(link), "out/result.dat"))
    with pytest.raises(RunDirError, match="symlink"):
        run(list_run_dir(RUNNER, str(link)))
    with pytest.raises(RunDirError, match="symlink"):
        run(write_inputs(RUNNER, str(link), {"x": b"x"}))
    assert not (run_dir / "x").exists()


def test_remove_takes_exactly_one_directory_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "work"
    mine = root / "lab" / "sim-1"
    neighbour = root / "lab" / "sim-2"
    for d in (mine, neighbour):
        (d / "out").mkdir(parents=True)
        (d / "out" / "f").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    (mine / "escape").symlink_to(outside)
    assert run(remove_run_dir(RUNNER, str(root), str(mine))) is True
    assert not mine.exists()
    assert (neighbour / "out" / "f").read_text() == "x"
    assert (outside / "keep").read_text() == "keep"
    assert run(remove_run_dir(RUNNER, str(root), str(mine))) is False  # already gone
    for bad in (str(root), str(tmp_path), f"{root}/../outside", "/etc", f"{root}x/lab", "rel"):
        with pytest.raises(InvalidJobSpec):
            run(remove_run_dir(RUNNER, str(root), bad))
    assert outside.exists()


def test_remove_refuses_a_path_that_escapes_by_symlink(tmp_path: Path) -> None:
    root = tmp_path / "work"
    root.mkdir()
    outside = tmp_path / "outside"
    (outside / "victim").mkdir(parents=True)
    (root / "lab").symlink_to(outside)  # <root>/lab/victim is really outside/victim
    with pytest.raises(RunDirError, match="symlink"):
        run(remove_run_dir(RUNNER, str(root), str(root / "lab" / "victim")))
    (root / "own").mkdir()
    (root / "own" / "run-link").symlink_to(outside / "victim")
    with pytest.raises(RunDirError, match="symlink"):
        run(remove_run_dir(RUNNER, str(root), str(root / "own" / "run-link")))
    assert (outside / "victim").is_dir()
    assert os.path.islink(root / "own" / "run-link")
