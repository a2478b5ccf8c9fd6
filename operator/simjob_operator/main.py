"""Entry points: ``kopf run -m simjob_operator.main`` and the ``simjob-operator`` script.

Importing this module registers the handlers (``handlers``). ``cli()`` runs
kopf's own command line with the operator's defaults: all namespaces
(``--all-namespaces``) and ``--standalone`` (no peering), unless the arguments
name namespaces or a peering; any other kopf ``run`` option passes through,
e.g. ``simjob-operator --verbose`` or ``simjob-operator -n lab``. Namespaces
named exactly with ``-n`` are also handed to the runtime (``$SIMJOB_WATCH_NAMESPACES``,
read by ``kube.Kube.connect``), so the admission pass lists SimJobs only there; with
kopf patterns (``-n 'lab-*'``) it still lists the whole cluster. ``--metrics-port N``
(ours, not kopf's: taken out of the arguments) serves Prometheus metrics on port N
(``$SIMJOB_METRICS_PORT``, read by ``controller.exporter``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

from simjob_operator.api import names as c
from simjob_operator.controller import handlers  # noqa: F401 - registers the kopf handlers
from simjob_operator.controller.exporter import ENV_PORT as ENV_METRICS_PORT

SCOPE_OPTIONS = ("-n", "--namespace", "-A", "--all-namespaces")
NAMESPACE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
PEERING_OPTIONS = ("-P", "--peering", "--standalone")
METRICS_OPTION = "--metrics-port"


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


def watched_namespaces(args: Sequence[str]) -> list[str] | None:
    """The namespaces that ``-n``/``--namespace`` name in ``args``, or None: no
    namespace option (all namespaces), or a kopf pattern (``lab-*``, ``!kube-system``)
    that cannot be listed name by name."""
    names: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg in ("-n", "--namespace"):
            names.append(next(rest, ""))
        elif arg.startswith("--namespace="):
            names.append(arg.removeprefix("--namespace="))
        elif arg.startswith("-n"):
            names.append(arg.removeprefix("-n").removeprefix("="))
    if not names or not all(NAMESPACE_NAME.match(name) for name in names):
        return None
    return names


def metrics_port(args: Sequence[str]) -> tuple[list[str], str | None]:
    """``args`` without ``--metrics-port N`` / ``--metrics-port=N``, and that N (the last
    one given), or None."""
    rest: list[str] = []
    port: str | None = None
    items = iter(args)
    for arg in items:
        if arg == METRICS_OPTION:
            port = next(items, "")
        elif arg.startswith(f"{METRICS_OPTION}="):
            port = arg.removeprefix(f"{METRICS_OPTION}=")
        else:
            rest.append(arg)
    return rest, port


def cli(argv: Sequence[str] | None = None) -> None:
    from kopf.cli import main

    given, port = metrics_port(sys.argv[1:] if argv is None else argv)
    if port is not None:
        os.environ[ENV_METRICS_PORT] = port
    arguments = kopf_arguments(given)
    namespaces = watched_namespaces(arguments)
    if namespaces is None:  # all namespaces, or patterns: the runtime lists the cluster
        os.environ.pop(c.ENV_WATCH_NAMESPACES, None)
    else:
        os.environ[c.ENV_WATCH_NAMESPACES] = ",".join(namespaces)
    main(args=arguments, prog_name="simjob-operator")
