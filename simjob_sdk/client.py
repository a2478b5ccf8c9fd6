"""``SimJobClient``: the synchronous SDK a science gateway uses to run SimJobs.

Submit (idempotent by name), get, list, cancel, delete, wait (a watch), watch, logs,
outputs/download, queue position, rerun, usage (the ledger: ``usage``). Every call goes through
``simjob_sdk.errors.judged``: callers see ``SimJobError``s only. The spec is the
operator's own ``SimJobSpec`` (``simjob_operator.api.simjob``); results are
``simjob_sdk.objects.SimJobObject``. Neighbours: ``connection`` (the ApiClient),
``watching`` (wait/watch), ``queueing`` (queue position), ``logs`` and ``slurm``
(output text and files), ``runkeys`` (the run-key seam); ``aio`` wraps this class for
asyncio.
"""

from __future__ import annotations

import builtins
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from kubernetes.client.api_client import ApiClient
from kubernetes.client.exceptions import ApiException

from simjob_operator.api import names as c
from simjob_operator.api.simjob import SimJobSpec
from simjob_sdk import logs as logs_
from simjob_sdk import queueing, runkeys, slurm, watching
from simjob_sdk.connection import Apis, connect, from_api_client
from simjob_sdk.errors import (
    BackendUnavailable,
    Conflict,
    NotFound,
    Rejected,
    SimJobError,
    is_already_exists,
    judged,
)
from simjob_sdk.objects import Outputs, SimJobObject, WatchEvent
from simjob_sdk.slurm import SlurmAccess
from simjob_sdk.usage import UsageReport, read_usage

RETRY_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0)
# Not part of a SimJob's identity when a submit finds one of its name.
_IGNORED_ON_MATCH = ("cancel",)


def same_spec(a: SimJobSpec, b: SimJobSpec) -> bool:
    """Whether two specs ask for the same run (``cancel`` aside)."""
    left, right = a.to_api(), b.to_api()
    for key in _IGNORED_ON_MATCH:
        left.pop(key, None)
        right.pop(key, None)
    return left == right


def rerun_name(name: str) -> str:
    """A fresh name for a rerun of ``name``: ``<name>-r<5 hex>``, within the name limit."""
    suffix = f"-r{secrets.token_hex(3)[:5]}"
    return name[: c.SIMJOB_NAME_MAX_LENGTH - len(suffix)].rstrip("-.") + suffix


class SimJobClient:
    """Synchronous client; thread-safe for concurrent calls (one urllib3 pool).

    ``namespace``: default for every call (else the kubeconfig context's, else
    ``default``). ``kubeconfig``/``context``: as kubectl's; or pass a configured
    ``api_client``. ``retries``: attempts after a failure to reach the API server
    (reads and submits; a submit is safe to retry because it is idempotent by name).
    ``slurm``: how to reach Slurm sites for logs/outputs (``simjob_sdk.slurm``).
    """

    def __init__(
        self,
        namespace: str | None = None,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        api_client: ApiClient | None = None,
        retries: int = 3,
        slurm: SlurmAccess | None = None,
    ) -> None:
        self._apis: Apis = (
            from_api_client(api_client) if api_client is not None else connect(kubeconfig, context)
        )
        self.namespace = namespace or self._apis.default_namespace
        self.retries = retries
        self.slurm = slurm

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        self._apis.api_client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> SimJobClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _ns(self, namespace: str | None) -> str:
        return namespace or self.namespace

    def _retrying(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        """A call retried on BackendUnavailable (only for reads and idempotent writes)."""
        for attempt in range(self.retries + 1):
            try:
                with judged(what):
                    return func(*args, **kwargs)
            except BackendUnavailable:
                if attempt >= self.retries:
                    raise
                time.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
        raise AssertionError("unreachable")  # pragma: no cover

    def _custom(self, what: str, verb: str, *path: Any, **kwargs: Any) -> Any:
        """``CustomObjectsApi.<verb>(GROUP, VERSION, *path, **kwargs)``, retried."""
        call = getattr(self._apis.custom, verb)
        return self._retrying(what, call, c.GROUP, c.VERSION, *path, **kwargs)

    # ------------------------------------------------------------------ writes

    def submit(
        self,
        spec: SimJobSpec | Mapping[str, Any],
        *,
        name: str,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        run_key: str | None = None,
        input_hash: str | None = None,
        reuse: str | None = None,
    ) -> SimJobObject:
        """Create the SimJob ``name``, or return it if it already exists with the same
        spec (a retry after a lost answer); ``Conflict`` if it exists with another spec.
        Connection failures are retried (``retries``): still one SimJob.
        ``run_key``/``input_hash``/``reuse`` set ``spec.runKey``/``inputHash``/``reuse``
        (docs/api.md, run keys)."""
        ns = self._ns(namespace)
        model = spec if isinstance(spec, SimJobSpec) else SimJobSpec.model_validate(dict(spec))
        model = runkeys.with_run_fields(model, run_key=run_key, input_hash=input_hash, reuse=reuse)
        metadata: dict[str, Any] = {"name": name, "namespace": ns}
        if labels:
            metadata["labels"] = dict(labels)
        if annotations:
            metadata["annotations"] = dict(annotations)
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.SIMJOB_KIND,
            "metadata": metadata,
            "spec": model.to_api(),
        }

        def create() -> Any:  # None: it exists already (``_existing`` judges it)
            try:
                return self._apis.custom.create_namespaced_custom_object(
                    c.GROUP, c.VERSION, ns, c.SIMJOB_PLURAL, body
                )
            except ApiException as exc:
                if is_already_exists(exc):
                    return None
                raise

        raw = self._retrying(f"CREATE SimJob {ns}/{name}", create)
        return self._existing(ns, name, model) if raw is None else SimJobObject.from_api(raw)

    def _existing(self, namespace: str, name: str, spec: SimJobSpec) -> SimJobObject:
        found = self.get(name, namespace=namespace)
        if not same_spec(found.spec, spec):
            raise Conflict(
                f"SimJob {namespace}/{name} already exists with a different spec "
                "(choose another name, or delete it first)",
                status=409,
            )
        return found

    def cancel(self, name: str, *, namespace: str | None = None) -> SimJobObject:
        """Set ``spec.cancel: true`` (a no-op on a finished SimJob)."""
        ns = self._ns(namespace)
        raw = self._custom(
            f"CANCEL SimJob {ns}/{name}",
            "patch_namespaced_custom_object",
            ns,
            c.SIMJOB_PLURAL,
            name,
            {"spec": {"cancel": True}},
            _content_type="application/merge-patch+json",
        )
        return SimJobObject.from_api(raw)

    def delete(self, name: str, *, namespace: str | None = None, missing_ok: bool = False) -> None:
        """Delete the SimJob (the operator stops what still runs first)."""
        ns = self._ns(namespace)
        try:
            delete = "delete_namespaced_custom_object"
            self._custom(f"DELETE SimJob {ns}/{name}", delete, ns, c.SIMJOB_PLURAL, name)
        except NotFound:
            if not missing_ok:
                raise

    def rerun(
        self, name: str, *, namespace: str | None = None, new_name: str | None = None
    ) -> SimJobObject:
        """A new SimJob with the spec of ``name`` (same run key, ``reuse: Never`` when the
        models have it): pressing Run again. Pass ``new_name`` to make the rerun
        itself idempotent across retries."""
        ns = self._ns(namespace)
        old = self.get(name, namespace=ns)
        labels = {k: v for k, v in old.labels.items() if not k.startswith(c.RESERVED_PREFIX)}
        return self.submit(
            runkeys.rerun_spec(old.spec),
            name=new_name or rerun_name(name),
            namespace=ns,
            labels=labels,
        )

    # ------------------------------------------------------------------ reads

    def get(self, name: str, *, namespace: str | None = None) -> SimJobObject:
        ns = self._ns(namespace)
        get = "get_namespaced_custom_object"
        raw = self._custom(f"GET SimJob {ns}/{name}", get, ns, c.SIMJOB_PLURAL, name)
        return SimJobObject.from_api(raw)

    def list(
        self,
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        owner: str | None = None,
        phase: str | None = None,
        tier: str | None = None,
        label_selector: str | None = None,
    ) -> list[SimJobObject]:
        """SimJobs, oldest first. ``phase``/``tier`` filter on the server (selectable
        fields); ``owner`` is the effective owner (spec.owner, else the namespace)."""
        fields = [f"status.phase={phase}"] if phase else []
        fields += [f"spec.tier={tier}"] if tier else []
        kwargs: dict[str, Any] = {}
        if fields:
            kwargs["field_selector"] = ",".join(fields)
        if label_selector:
            kwargs["label_selector"] = label_selector
        if all_namespaces:
            listed = self._custom(
                "LIST SimJobs", "list_cluster_custom_object", c.SIMJOB_PLURAL, **kwargs
            )
        else:
            ns = self._ns(namespace)
            list_ = "list_namespaced_custom_object"
            listed = self._custom(f"LIST SimJobs in {ns}", list_, ns, c.SIMJOB_PLURAL, **kwargs)
        jobs = [SimJobObject.from_api(raw) for raw in listed.get("items") or []]
        if owner is not None:
            jobs = [job for job in jobs if job.owner == owner]
        return sorted(jobs, key=lambda j: (j.creation_timestamp, j.namespace, j.name))

    def queue_position(self, name: str, *, namespace: str | None = None) -> int | None:
        """The exact place in the queue now (see ``simjob_sdk.queueing``): 1 = next,
        0 = a slot is free for it, None = not waiting. Reads every SimJob of the tier
        in the cluster (slots are per owner across namespaces); without the RBAC to list
        cluster-wide, those of its namespace."""
        job = self.get(name, namespace=namespace)
        selector = {"field_selector": f"spec.tier={job.spec.tier}"}
        what = "LIST SimJobs of the tier"
        try:
            listed = self._custom(what, "list_cluster_custom_object", c.SIMJOB_PLURAL, **selector)
        except Rejected:  # 403: namespace-scoped credentials
            list_ = "list_namespaced_custom_object"
            listed = self._custom(what, list_, job.namespace, c.SIMJOB_PLURAL, **selector)
        try:
            get = "get_cluster_custom_object"
            tier = self._custom(
                f"GET SimTier {job.spec.tier}", get, c.SIMTIER_PLURAL, job.spec.tier
            )
            capacity: int | None = int((tier.get("spec") or {}).get("maxConcurrentPerOwner", 1))
        except (NotFound, Rejected):
            capacity = None
        return queueing.position(listed.get("items") or [], job.uid, capacity)

    # ------------------------------------------------------------------ waiting

    def wait(
        self,
        name: str,
        *,
        namespace: str | None = None,
        timeout: float | None = None,
        on_change: watching.OnChange | None = None,
    ) -> SimJobObject:
        """Block until the SimJob finishes (any terminal phase; check ``.succeeded``).
        ``on_change(job)`` is called with the first state and each change of phase,
        queue position, reason, message, progress or exit code. ``TimedOut`` after
        ``timeout`` seconds; ``NotFound`` if it is deleted meanwhile."""
        return watching.wait_for_end(
            self._apis, self._ns(namespace), name, timeout=timeout, on_change=on_change
        )

    def watch(
        self,
        *,
        namespace: str | None = None,
        all_namespaces: bool = False,
        label_selector: str | None = None,
        name: str | None = None,
        stop: threading.Event | None = None,
        round_seconds: float = watching.ROUND_SECONDS,
    ) -> Iterator[WatchEvent]:
        """The matching SimJobs (as ADDED), then every change, until ``stop`` is set
        (checked between events and every ``round_seconds``)."""
        return watching.watch_events(
            self._apis,
            None if all_namespaces else self._ns(namespace),
            label_selector=label_selector,
            field_selector=f"metadata.name={name}" if name else None,
            stop=stop,
            round_seconds=round_seconds,
        )

    # ------------------------------------------------------------------ outputs

    def logs(
        self, name: str, *, namespace: str | None = None, follow: bool = False
    ) -> Iterator[str]:
        """The simulation's output lines: the pod's log (Kubernetes) or the batch output
        file (Slurm, through ``slurm``)."""
        job = self.get(name, namespace=namespace)
        if job.spec.backend == c.BACKEND_SLURM:
            return logs_.slurm_logs(
                self.slurm,
                job,
                follow=follow,
                refresh=lambda: self.get(name, namespace=job.namespace),
            )
        return logs_.pod_logs(self._apis, job, follow=follow)

    def outputs(self, name: str, *, namespace: str | None = None) -> Outputs:
        """Kubernetes: ``status.workspace`` (where the data path put them; None until
        then). Slurm: the run directory and its files (through ``slurm``)."""
        job = self.get(name, namespace=namespace)
        if job.spec.backend == c.BACKEND_SLURM:
            files = slurm.list_outputs(self.slurm, job)
            return Outputs(c.BACKEND_SLURM, slurm.run_dir(self.slurm, job), files)
        return Outputs(c.BACKEND_KUBERNETES, job.workspace)

    def download(
        self, name: str, path: str | os.PathLike[str], *, namespace: str | None = None
    ) -> builtins.list[Path]:
        """Copy a Slurm run directory's regular files under ``path``; returns them.
        Kubernetes workspaces are not copied by the SDK: ``outputs().location`` says
        where they are (``SimJobError`` here)."""
        job = self.get(name, namespace=namespace)
        if job.spec.backend != c.BACKEND_SLURM:
            raise SimJobError(
                f"SimJob {job.namespace}/{name} runs on Kubernetes: its outputs are in the "
                f"workspace {job.workspace or '(none recorded)'}; read them from there"
            )
        root = Path(path)
        written = []
        for entry in slurm.list_outputs(self.slurm, job):
            if entry.kind != "file":
                continue
            target = root / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(slurm.fetch_output(self.slurm, job, entry.path))
            written.append(target)
        return written

    def usage(
        self,
        *,
        owner: str | None = None,
        since: datetime | date | None = None,
        until: datetime | date | None = None,
        namespace: str | None = None,
    ) -> UsageReport:
        """The usage ledger (docs/accounting.md): the SimUsage records of the namespace,
        one per owner x tier x UTC day, of ``owner`` (default: every owner) for the days
        ``since``..``until`` (inclusive, UTC days); ``.total()``, ``.by_tier()``."""
        ns = self._ns(namespace)
        report: UsageReport = self._retrying(
            f"LIST SimUsages in {ns}",
            read_usage,
            self._apis.custom.list_namespaced_custom_object,
            ns,
            owner=owner,
            since=since,
            until=until,
        )
        return report
