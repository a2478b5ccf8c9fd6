"""The plumbing every ``simjob`` subcommand shares: its connection and output options,
the ``Session`` (consoles and the ``SimJobClient``), exit statuses, ``run`` (a body with a
client, SDK errors turned into exit statuses) and ``follow`` (the live view until a SimJob
ends). Used by ``simjob_sdk.cli.commands`` (the group and its subcommands); printing in
``simjob_sdk.cli.render``; calls through ``simjob_sdk.client.SimJobClient``.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from simjob_sdk.cli import render
from simjob_sdk.client import SimJobClient
from simjob_sdk.errors import SimJobError, TimedOut
from simjob_sdk.objects import SimJobObject

EXIT_OK, EXIT_NOT_SUCCEEDED, EXIT_SDK_ERROR, EXIT_TIMEOUT = 0, 1, 3, 4
QUEUE_REFRESH_SECONDS = 2.0
F = TypeVar("F", bound=Callable[..., Any])


def connection_options(func: F) -> F:
    """-n/--kubeconfig/--context, accepted after the subcommand too (kubectl's habit)."""
    func = click.option(
        "-n", "--namespace", "namespace", default=None, help="Namespace (default: the context's)."
    )(func)
    func = click.option(
        "--kubeconfig",
        default=None,
        type=click.Path(dir_okay=False),
        help="Path to the kubeconfig file.",
    )(func)
    func = click.option("--context", default=None, help="The kubeconfig context.")(func)
    return func


def output_option(func: F) -> F:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["json", "yaml", "wide"]),
        default=None,
        help="Output format.",
    )(func)


class Session:
    """What the group's options set; subcommand options override them."""

    def __init__(self, namespace: str | None, kubeconfig: str | None, context: str | None):
        self.namespace, self.kubeconfig, self.context = namespace, kubeconfig, context
        self.console = Console(highlight=False)
        if not self.console.is_terminal:  # a pipe or a file: never wrap or cut (as kubectl)
            self.console = Console(highlight=False, width=4096)
        self.errors = Console(stderr=True, highlight=False)

    def client(
        self, namespace: str | None, kubeconfig: str | None, context: str | None
    ) -> SimJobClient:
        return SimJobClient(
            namespace or self.namespace,
            kubeconfig=kubeconfig or self.kubeconfig,
            context=context or self.context,
        )


def fail(session: Session, error: SimJobError) -> None:
    session.errors.print(f"error: {error.message}", markup=False)
    sys.exit(EXIT_TIMEOUT if isinstance(error, TimedOut) else EXIT_SDK_ERROR)


def run(
    ctx: click.Context,
    body: Callable[[SimJobClient, Session], int | None],
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    session: Session = ctx.obj
    try:
        client = session.client(namespace, kubeconfig, context)
        try:
            code = body(client, session)
        finally:
            client.close()
    except SimJobError as error:
        fail(session, error)
    except NotImplementedError as error:
        session.errors.print(f"error: {error}", markup=False)
        sys.exit(EXIT_SDK_ERROR)
    sys.exit(code or EXIT_OK)


def follow(client: SimJobClient, session: Session, name: str, timeout: float | None) -> int:
    """The live view until the SimJob ends; the exit status it deserves."""
    changes: queue.Queue[SimJobObject] = queue.Queue()
    outcome: list[SimJobObject | BaseException] = []

    def waiter() -> None:
        try:
            outcome.append(client.wait(name, timeout=timeout, on_change=changes.put))
        except BaseException as exc:  # noqa: BLE001 (handed to the main thread, raised there)
            outcome.append(exc)

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    job: SimJobObject | None = None
    position: int | None = None
    refreshed = 0.0
    with render.LiveView(session.console) as view:
        while thread.is_alive() or not changes.empty():
            try:
                job = changes.get(timeout=0.25)
            except queue.Empty:
                if job is None or job.phase not in ("Queued", "Pending", None):
                    continue
            if job is None:
                continue
            now = time.monotonic()
            if job.phase in ("Queued", "Pending", None) and now - refreshed > QUEUE_REFRESH_SECONDS:
                refreshed = now
                try:
                    position = client.queue_position(name)
                except SimJobError:
                    position = job.status.queue_position
            elif job.phase not in ("Queued", "Pending", None):
                position = None
            view.update(job, position)
        thread.join()
        result = outcome[0]
        if isinstance(result, SimJobError):
            raise result
        if isinstance(result, BaseException):
            raise result
        view.finish(result)
    return EXIT_OK if result.succeeded else EXIT_NOT_SUCCEEDED
