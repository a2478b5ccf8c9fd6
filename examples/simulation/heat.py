#!/usr/bin/env python3
"""2-D heat diffusion: the example simulation that the `simjob/simulation` image runs.

An explicit finite-difference solution of the heat equation du/dt = alpha * laplace(u) on a
square plate whose edges are held at 0 and whose centre starts hot. Parameters come from the
command line, or from ``params.json`` in the input folder (``--input`` / ``SIMJOB_INPUT_DIR``;
command-line flags win). While it runs it prints progress lines that SimJob reads::

    SIMJOB_PROGRESS {"percent": 42.5, "message": "step 420 of 1000"}

and at the end writes into the output folder (``--output`` / ``SIMJOB_OUTPUT_DIR``):
``field.npy`` (the final temperature field) and ``summary.json``.

For fidelity tests: ``--seconds`` stretches the run to about that long (sleeping between
steps), ``--exit-code N`` ends with status N after the run, ``--alloc-mib M`` touches M MiB
of memory first (a memory hog), and SIGTERM writes a marker file (``--term-marker`` /
``SIMJOB_TERM_MARKER``) and exits 143.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

PROGRESS_PREFIX = "SIMJOB_PROGRESS "
DEFAULTS: dict[str, Any] = {
    "grid": 64,
    "steps": 200,
    "alpha": 0.2,
    "seconds": 0.0,
    "progress_every": 0,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="2-D heat diffusion (SimJob example simulation)")
    p.add_argument("--grid", type=int, help=f"grid points per side (default {DEFAULTS['grid']})")
    p.add_argument("--steps", type=int, help=f"time steps (default {DEFAULTS['steps']})")
    p.add_argument("--alpha", type=float, help="diffusion number alpha*dt/dx^2, <= 0.25")
    p.add_argument("--seconds", type=float, help="stretch the run to about this many seconds")
    p.add_argument("--progress-every", type=int, help="steps between progress lines")
    p.add_argument("--input", default=os.environ.get("SIMJOB_INPUT_DIR"), help="input folder")
    p.add_argument("--output", default=os.environ.get("SIMJOB_OUTPUT_DIR"), help="output folder")
    p.add_argument(
        "--term-marker",
        default=os.environ.get("SIMJOB_TERM_MARKER"),
        help="file written when SIGTERM arrives",
    )
    p.add_argument("--exit-code", type=int, default=0, help="exit status after the run")
    p.add_argument("--alloc-mib", type=int, default=0, help="touch this much memory first")
    return p.parse_args(argv)


def load_params(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults, then ``params.json`` from the input folder, then command-line flags."""
    params = dict(DEFAULTS)
    if args.input:
        path = Path(args.input) / "params.json"
        if path.is_file():
            loaded = json.loads(path.read_text())
            if not isinstance(loaded, dict):
                raise SystemExit(f"{path}: expected a JSON object")
            params.update({k: v for k, v in loaded.items() if k in DEFAULTS})
    for key in DEFAULTS:
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    if int(params["grid"]) < 3 or int(params["steps"]) < 1:
        raise SystemExit("grid must be >= 3 and steps >= 1")
    if not 0 < float(params["alpha"]) <= 0.25:
        raise SystemExit("alpha must be in (0, 0.25] for a stable explicit scheme")
    return params


def progress(percent: float, message: str) -> None:
    line = json.dumps({"percent": round(percent, 1), "message": message})
    print(PROGRESS_PREFIX + line, flush=True)


def initial_field(n: int) -> np.ndarray:
    u = np.zeros((n, n))
    lo, hi = n // 4, n - n // 4
    u[lo:hi, lo:hi] = 100.0
    return u


def step(u: np.ndarray, alpha: float) -> np.ndarray:
    """One explicit step; the boundary stays at 0 (Dirichlet)."""
    new = u.copy()
    new[1:-1, 1:-1] = u[1:-1, 1:-1] + alpha * (
        u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1]
    )
    return new


def hog(mib: int) -> bytearray:
    """Allocate and touch ``mib`` MiB so it is resident (for OOM tests)."""
    block = bytearray(mib * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return block


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(signum: int, frame: FrameType | None) -> None:
        if args.term_marker:
            Path(args.term_marker).parent.mkdir(parents=True, exist_ok=True)
            Path(args.term_marker).write_text(f"SIGTERM at {time.time():.3f}\n")
        print("heat: SIGTERM received, stopping", flush=True)
        sys.exit(143)

    signal.signal(signal.SIGTERM, on_term)
    params = load_params(args)
    held = hog(args.alloc_mib) if args.alloc_mib > 0 else None
    if held is not None:
        print(f"heat: holding {args.alloc_mib} MiB", flush=True)

    n, steps, alpha = int(params["grid"]), int(params["steps"]), float(params["alpha"])
    every = int(params["progress_every"]) or max(1, steps // 10)
    pause = float(params["seconds"]) / steps if float(params["seconds"]) > 0 else 0.0
    print(f"heat: grid {n}x{n}, {steps} steps, alpha {alpha}", flush=True)
    u = initial_field(n)
    start_energy = float(u.sum())
    started = time.monotonic()
    progress(0.0, f"step 0 of {steps}")
    for i in range(1, steps + 1):
        u = step(u, alpha)
        if pause:
            time.sleep(pause)
        if i % every == 0 or i == steps:
            progress(100.0 * i / steps, f"step {i} of {steps}")

    summary = {
        "grid": n,
        "steps": steps,
        "alpha": alpha,
        "max_temperature": float(u.max()),
        "mean_temperature": float(u.mean()),
        "energy_fraction_left": float(u.sum()) / start_energy,
        "wall_seconds": round(time.monotonic() - started, 3),
    }
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / "field.npy", u)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("heat: done " + json.dumps(summary), flush=True)
    return int(args.exit_code)


if __name__ == "__main__":
    sys.exit(main())
