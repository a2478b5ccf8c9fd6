"""The example simulation (examples/simulation/heat.py) on the host's Python.

The same program runs in the `simjob/simulation` image on the real node
(tests/integration/test_realnode_node.py); here: its physics, parameters, progress
lines, output files, exit codes and SIGTERM handling. Needs numpy (a dev dependency).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HEAT = REPO / "examples" / "simulation" / "heat.py"
PREFIX = "SIMJOB_PROGRESS "


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEAT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def progress_lines(stdout: str) -> list[dict[str, object]]:
    return [
        json.loads(line[len(PREFIX) :]) for line in stdout.splitlines() if line.startswith(PREFIX)
    ]


def test_runs_and_writes_outputs(tmp_path: Path) -> None:
    result = run("--grid", "24", "--steps", "40", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    progress = progress_lines(result.stdout)
    assert progress[0] == {"percent": 0.0, "message": "step 0 of 40"}
    assert progress[-1] == {"percent": 100.0, "message": "step 40 of 40"}
    percents = [float(str(p["percent"])) for p in progress]
    assert percents == sorted(percents)
    field = np.load(tmp_path / "field.npy")
    assert field.shape == (24, 24)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 40
    # Heat flows out through the cold edges: energy decreases, the peak falls below 100.
    assert 0 < summary["energy_fraction_left"] < 1
    assert summary["max_temperature"] < 100
    assert np.all(field[0, :] == 0)
    assert np.all(field[:, -1] == 0)
    assert float(field.max()) == summary["max_temperature"]


def test_params_from_input_dir_and_env(tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    (inp / "params.json").write_text(json.dumps({"grid": 10, "steps": 7, "progress_every": 1}))
    env = {"SIMJOB_INPUT_DIR": str(inp), "SIMJOB_OUTPUT_DIR": str(out), "PATH": "/usr/bin:/bin"}
    result = run(env=env)
    assert result.returncode == 0, result.stderr
    assert len(progress_lines(result.stdout)) == 8  # step 0 and each of the 7 steps
    assert json.loads((out / "summary.json").read_text())["grid"] == 10
    # A flag wins over params.json.
    result = run("--steps", "3", env=env)
    assert progress_lines(result.stdout)[-1]["message"] == "step 3 of 3"


def test_exit_code_and_bad_parameters(tmp_path: Path) -> None:
    result = run("--grid", "8", "--steps", "2", "--exit-code", "3")
    assert result.returncode == 3
    assert "heat: done" in result.stdout
    result = run("--alpha", "0.5")
    assert result.returncode != 0
    assert "alpha" in result.stderr


def test_sigterm_writes_marker_and_exits_143(tmp_path: Path) -> None:
    marker = tmp_path / "term" / "marker"
    args = ["--steps", "1000", "--seconds", "60", "--term-marker", str(marker)]
    proc = subprocess.Popen(
        [sys.executable, str(HEAT), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the banner: the handler is installed by now
        assert first.startswith("heat: grid")
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert marker.read_text().startswith("SIGTERM at ")


def test_alloc_mib_holds_memory() -> None:
    result = run("--grid", "4", "--steps", "1", "--alloc-mib", "16")
    assert result.returncode == 0
    assert "holding 16 MiB" in result.stdout
