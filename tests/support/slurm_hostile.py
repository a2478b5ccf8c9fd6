"""Hostile strings for the Slurm bridge's injection tests (unit and real-Slurm runs).

``ACCEPTED`` values must reach the job literally (as argv elements, environment values,
working-directory names); ``REJECTED`` values carry a newline or another control
character and must be refused before anything is sent to Slurm.
Neighbours: tests/unit/test_slurm_scripts.py, tests/integration/test_slurm_bridge.py.
"""

from __future__ import annotations

ACCEPTED: tuple[str, ...] = (
    "plain",
    "",
    " ",
    "  two  spaces  ",
    "'",
    '"',
    "it's",
    'say "hi"',
    "'\"'\"'",
    "'; id; '",
    '"; id; "',
    "$(id)",
    "$(echo pwned > /tmp/simjob-pwned)",
    "${HOME}",
    "$HOME",
    "$((6*7))",
    "$'\\x41'",
    "`id`",
    "; id",
    "a && id",
    "a || id",
    "| cat",
    "> /tmp/simjob-pwned",
    "< /etc/passwd",
    "&",
    "#SBATCH --wrap=id",
    "#!/bin/sh",
    "# comment",
    "--wrap=id",
    "-n",
    "-e",
    "--",
    "*",
    "?",
    "[a-z]*",
    "/etc/*",
    "~",
    "~root",
    "{a,b}",
    "\\",
    "\\n",
    "\\\\",
    "%s",
    "%j",
    "%%",
    "!",
    "!!",
    "a=b",
    "IFS=x",
    "é ü ß ✓ 日本語 🙂",
    "\u202egnp.exe",  # right-to-left override: a display trick, not a shell one
    "\u00a0non-breaking\u00a0space",
    "x" * 10000,
)

REJECTED: tuple[str, ...] = (
    "a\nb",
    "\n#SBATCH --wrap=id",
    "trailing newline\n",
    "a\rb",
    "tab\there",
    "nul\x00byte",
    "\x1b[31mred",
    "del\x7f",
    "next line\x85",
    "line\u2028separator",
    "paragraph\u2029separator",
)
