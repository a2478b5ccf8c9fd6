"""The ``simjob`` command (also ``kubectl-simjob``, so ``kubectl simjob ...`` works).

Subcommands: submit, get, list, watch, logs, cancel, rerun, delete, usage. kubectl's
habits: ``-n/--namespace``, ``--kubeconfig``, ``--context`` (before or after the
subcommand), ``-o json|yaml|wide``. Exit status: 0 = done (for commands that wait: the
SimJob Succeeded); 1 = it ended otherwise (Failed, Cancelled, TimedOut); 2 = bad usage;
3 = an SDK error (not found, rejected, conflict, unreachable); 4 = ``--timeout`` passed.
Built on ``simjob_sdk.client.SimJobClient``; the shared options, ``Session``, exit statuses
and the live ``follow`` are in ``simjob_sdk.cli.session``; printing in ``simjob_sdk.cli.render``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import yaml

from simjob_sdk.cli import render
from simjob_sdk.cli.session import (
    EXIT_OK,
    Session,
    connection_options,
    follow,
    output_option,
    run,
)
from simjob_sdk.client import SimJobClient
from simjob_sdk.objects import SimJobObject


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@connection_options
@click.pass_context
def cli(
    ctx: click.Context, namespace: str | None, kubeconfig: str | None, context: str | None
) -> None:
    """Run and follow SimJobs (simulations on Kubernetes or Slurm)."""
    ctx.obj = Session(namespace, kubeconfig, context)


def _load(file: str) -> list[dict[str, Any]]:
    text = sys.stdin.read() if file == "-" else Path(file).read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise click.UsageError(f"{file}: expected SimJob manifests (YAML or JSON)")
    return docs


@cli.command()
@click.option("-f", "--filename", "file", required=True, help="SimJob manifest(s); - for stdin.")
@click.option("--name", default=None, help="Name (when the file has no metadata.name).")
@click.option("--wait", "wait_", is_flag=True, help="Follow it live; exit 0 only if it succeeds.")
@click.option("--timeout", type=float, default=None, help="Give up waiting after SECONDS.")
@output_option
@connection_options
@click.pass_context
def submit(
    ctx: click.Context,
    file: str,
    name: str | None,
    wait_: bool,
    timeout: float | None,
    output: str | None,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Submit SimJobs from a file (idempotent: the same file twice is one SimJob)."""
    docs = _load(file)
    if wait_ and len(docs) != 1:
        raise click.UsageError("--wait follows one SimJob: give a file with one manifest")

    def body(client: SimJobClient, session: Session) -> int:
        submitted = []
        for doc in docs:
            meta = doc.get("metadata") or {}
            spec = doc.get("spec", doc if "spec" not in doc and "kind" not in doc else None)
            job_name = name or meta.get("name")
            if not job_name or spec is None:
                raise click.UsageError("each manifest needs metadata.name (or --name) and spec")
            job = client.submit(
                spec,
                name=job_name,
                namespace=namespace or meta.get("namespace"),
                labels=meta.get("labels"),
                annotations=meta.get("annotations"),
            )
            submitted.append(job)
            if output not in ("json", "yaml"):
                session.console.print(f"simjob.simjob.io/{job.name} submitted", markup=False)
        if output in ("json", "yaml"):
            session.console.print(
                render.dump(submitted, output, single=len(submitted) == 1), markup=False
            )
        if wait_:
            return follow(client, session, submitted[0].name, timeout)
        return EXIT_OK

    run(ctx, body, namespace, kubeconfig, context)


@cli.command()
@click.argument("names", nargs=-1)
@output_option
@connection_options
@click.pass_context
def get(
    ctx: click.Context,
    names: tuple[str, ...],
    output: str | None,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Show SimJobs by name (all of the namespace without names)."""

    def body(client: SimJobClient, session: Session) -> int:
        jobs = [client.get(n) for n in names] if names else client.list()
        _show(session, jobs, output, single=len(names) == 1)
        return EXIT_OK

    run(ctx, body, namespace, kubeconfig, context)


@cli.command(name="list")
@click.option("-A", "--all-namespaces", is_flag=True, help="SimJobs of every namespace.")
@click.option("--owner", default=None, help="Only this owner's (spec.owner, else namespace).")
@click.option("--phase", default=None, help="Only SimJobs in this phase.")
@click.option("-l", "--selector", default=None, help="Label selector.")
@output_option
@connection_options
@click.pass_context
def list_(
    ctx: click.Context,
    all_namespaces: bool,
    owner: str | None,
    phase: str | None,
    selector: str | None,
    output: str | None,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """List SimJobs, oldest first."""

    def body(client: SimJobClient, session: Session) -> int:
        jobs = client.list(
            all_namespaces=all_namespaces, owner=owner, phase=phase, label_selector=selector
        )
        _show(session, jobs, output, single=False)
        return EXIT_OK

    run(ctx, body, namespace, kubeconfig, context)


def _show(session: Session, jobs: list[SimJobObject], output: str | None, *, single: bool) -> None:
    if output in ("json", "yaml"):
        session.console.print(render.dump(jobs, output, single=single), markup=False)
    elif not jobs:
        session.errors.print("No SimJobs found.")
    else:
        render.table(session.console, jobs, wide=output == "wide")


@cli.command()
@click.argument("name")
@click.option("--timeout", type=float, default=None, help="Give up after SECONDS (exit 4).")
@connection_options
@click.pass_context
def watch(
    ctx: click.Context,
    name: str,
    timeout: float | None,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Follow one SimJob live until it ends; exit 0 only if it Succeeded."""
    run(
        ctx,
        lambda client, session: follow(client, session, name, timeout),
        namespace,
        kubeconfig,
        context,
    )


@cli.command()
@click.argument("name")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Stream until it ends.")
@connection_options
@click.pass_context
def logs(
    ctx: click.Context,
    name: str,
    follow_: bool,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Print the simulation's output (the pod's log, or Slurm's batch output)."""

    def body(client: SimJobClient, session: Session) -> int:
        for line in client.logs(name, follow=follow_):
            click.echo(line)
        return EXIT_OK

    run(ctx, body, namespace, kubeconfig, context)


@cli.command()
@click.argument("name")
@click.option("--wait", "wait_", is_flag=True, help="Wait until it has ended.")
@connection_options
@click.pass_context
def cancel(
    ctx: click.Context,
    name: str,
    wait_: bool,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Cancel a SimJob (spec.cancel: true)."""

    def body(client: SimJobClient, session: Session) -> int:
        client.cancel(name)
        session.console.print(f"simjob.simjob.io/{name} cancel requested", markup=False)
        if wait_:
            job = client.wait(name)
            session.console.print(render.describe(job, None), markup=False)
        return EXIT_OK

    run(ctx, body, namespace, kubeconfig, context)


@cli.command()
@click.argument("name")
@click.option("--name", "new_name", default=None, help="Name of the rerun (default: NAME-r…).")
@click.option("--wait", "wait_", is_flag=True, help="Follow it live; exit 0 only if it succeeds.")
@click.option("--timeout", type=float, default=None, help="Give up waiting after SECONDS.")
@connection_options
@click.pass_context
def rerun(
    ctx: click.Context,
    name: str,
    new_name: str | None,
    wait_: bool,
    timeout: float | None,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Run a SimJob's spec again as a new SimJob (never reusing a result)."""

    def body(client: SimJobClient, session: Session) -> int:
        job = client.rerun(name, new_name=new_name)
        session.console.print(f"simjob.simjob.io/{job.name} submitted", markup=False)
        return follow(client, session, job.name, timeout) if wait_ else EXIT_OK

    run(ctx, body, namespace, kubeconfig, context)


@cli.command()
@click.argument("name")
@connection_options
@click.pass_context
def delete(
    ctx: click.Context,
    name: str,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Delete a SimJob (what still runs is stopped first)."""

    def body(client: SimJobClient, session: Session) -> int:
        client.delete(name)
        session.console.print(f"simjob.simjob.io/{name} deleted", markup=False)
        return EXIT_OK

    run(ctx, body, namespace, kubeconfig, context)


@cli.command()
@click.option("--owner", default=None, help="Whose use (default: every owner's).")
@click.option(
    "--since", type=click.DateTime(["%Y-%m-%d"]), default=None, help="From this UTC day on."
)
@click.option(
    "--until", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Up to this UTC day."
)
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", help="Format."
)
@connection_options
@click.pass_context
def usage(
    ctx: click.Context,
    owner: str | None,
    since: datetime | None,
    until: datetime | None,
    output: str,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Resource use from the usage ledger: per day, owner and tier, and the total."""

    def body(client: SimJobClient, session: Session) -> int:
        report = client.usage(owner=owner, since=since, until=until)
        if output == "json":
            session.console.print_json(json.dumps(render.usage_json(report)))
        else:
            render.usage_table(session.console, report)
        return EXIT_OK

    run(ctx, body, namespace, kubeconfig, context)
