"""Entry points: ``kopf run -m simjob_operator.main`` and the ``simjob-operator`` script.

Importing this module registers the handlers (``handlers``). ``cli()`` runs
kopf's own command line with the operator's defaults: all namespaces
(``--all-namespaces``) and ``--standalone`` (no peering), unless the arguments
name namespaces or a peering; any other kopf ``run`` option passes through,
e.g. ``simjob-operator --verbose`` or ``simjob-operator -n lab``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import handlers  # noqa: F401 - registers the kopf handlers

SCOPE_OPTIONS = ("-n", "--namespace", "-A", "--all-namespaces")
PEERING_OPTIONS = ("-P", "--peering", "--standalone")


def _given(args: Sequence[str], options: Sequence[str]) -> bool:
    return any(arg == opt or arg.startswith(f"{opt}=") for arg in args for opt in options)


def kopf_arguments(args: Sequence[str]) -> list[str]:
    """The ``kopf`` command line for ``simjob-operator ARGS``."""
    defaults = []
    if not _given(args, SCOPE_OPTIONS):
        defaults.append("--all-namespaces")
    if not _given(args, PEERING_OPTIONS):
        defaults.append("--standalone")
    return ["run", "-m", __name__, *defaults, *args]


def cli(argv: Sequence[str] | None = None) -> None:
    from kopf.cli import main

    arguments = kopf_arguments(sys.argv[1:] if argv is None else argv)
    main(args=arguments, prog_name="simjob-operator")
