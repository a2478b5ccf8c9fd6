"""The ``simjob`` command line (console scripts ``simjob`` and ``kubectl-simjob``).

``main`` is the entry point; the commands are in ``simjob_sdk.cli.commands``, the
printing (tables, json/yaml, the rich live view) in ``simjob_sdk.cli.render``.
See docs/cli.md.
"""

from simjob_sdk.cli.commands import cli


def main() -> None:
    cli(prog_name="simjob")


__all__ = ["cli", "main"]
