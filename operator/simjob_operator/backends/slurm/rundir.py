"""A SimJob's run directory on a Slurm site: its layout, its inputs, its environment.

Every run gets ``<workDir>/<namespace>/<name>-<uid>`` (``slurm_bridge.run_dir_path``;
the workDir of the login that submits: the SlurmCluster's, or the ``workDir`` of a
per-user credentials Secret), unique per run, so a rerun never overwrites an older
run's files. It holds::

    inputs/               spec.inputs, written by the operator at submit ($SIMJOB_INPUT_DIR)
    outputs/              where the simulation writes ($SIMJOB_OUTPUT_DIR)
    simjob-<jobid>.out    the batch output (stdout and stderr; progress lines)

The job starts in the run directory (``JobSpec.directory``: sbatch ``--chdir`` and
``--output``); ``spec.workingDir``, when set, is entered after that. ``$SIMJOB_INPUT_DIR``
and ``$SIMJOB_OUTPUT_DIR`` mean what they mean on Kubernetes, so the same program runs
on both backends; a variable of ``spec.env`` of the same name wins.

``read_inputs`` reads the ConfigMaps and Secrets that ``spec.inputs`` names (only
those, by name) into files: ConfigMap keys become mode 0444 files, Secret keys 0400.
Every file name follows ``api.data.INPUT_FILE_PATTERN`` (the rule of both backends: a
whole object's hostile key such as ``..`` or ``-rf`` is refused, not written), two
sources may not give the same name, and all files together are at most
``api.data.MAX_INPUT_BYTES``. What no retry fixes raises ``InputError`` (the SimJob
fails ``InvalidInputs``; an object the operator may not read says which RBAC grant or
chart value is missing, ``refused``); a missing object or key raises ``InputMissing``.
The rule for a missing input is the Kubernetes backend's (a pod whose ConfigMap does
not exist waits): it is waited for up to the grant's maxPendingSeconds after admission
(``InputWait``; the SimJob shows ``Queued``, reason ``InputNotFound``, naming it), then
the SimJob fails ``InputNotFound``. ``prepare_run_dir`` does both at submit and turns
what fails into the backend's refusal; ``in_run_dir`` puts a ``JobSpec`` in its run
directory; ``run_dir_in`` reads the one recorded in status.workspace.
Writing is ``slurm_bridge.write_inputs`` (no path escapes, symlinks replaced, never
followed). Neighbours: ``backend`` (calls these at submit), ``progress`` (reads the
batch output), ``kube.seam.KubeApi`` (the reads).
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime

from simjob_operator.api import names as c
from simjob_operator.api.data import (
    INPUT_FILE_PATTERN,
    MAX_INPUT_BYTES,
    InputSource,
    WorkspaceStatus,
)
from simjob_operator.api.reasons import Reason
from simjob_operator.api.simjob import Grant
from simjob_operator.backends.base import Rejected, RetryAfter
from simjob_operator.core.pacing import admitted_since
from simjob_operator.core.times import parse_time
from simjob_operator.core.view import SimJobRecord
from simjob_operator.kube.seam import KubeApi, Refused
from slurm_bridge import (
    InvalidJobSpec,
    JobSpec,
    LocalRunner,
    RunDirError,
    Runner,
    SlurmClient,
    run_dir_path,
    write_inputs,
)

INPUTS = "inputs"
OUTPUTS = "outputs"
# The SimJob's reasons when its inputs cannot be placed (status.reason, docs/data.md).
INVALID_INPUTS = Reason.INVALID_INPUTS
NOT_FOUND = Reason.INPUT_NOT_FOUND
CONFIGMAP_MODE = 0o444
SECRET_MODE = 0o400
_FILE_NAME = re.compile(INPUT_FILE_PATTERN)


class InputError(Exception):
    """``spec.inputs`` cannot be placed (a bad key, a name twice, too large...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputMissing(InputError):
    """A ConfigMap or Secret (or a key of one) that ``spec.inputs`` names is not there."""


@dataclasses.dataclass(frozen=True)
class InputWait:
    """How long a missing input may still be waited for (seconds ``left``) of the
    grant's maxPendingSeconds (``limit``), counted from admission."""

    left: float
    limit: int

    @property
    def retry_in(self) -> float:
        """Soon at first (objects applied in the wrong order), then every 30 s at most."""
        waited = self.limit - self.left
        return min(self.left, max(2.0, min(30.0, waited / 4)))


def input_wait(record: SimJobRecord, grant: Grant, now: datetime) -> InputWait:
    """The wait for missing inputs, like a pod's for its ConfigMap: maxPendingSeconds
    from admission (from creation when the admission time is unknown). Pure."""
    limit = grant.max_pending_seconds or c.DEFAULT_MAX_PENDING_SECONDS
    since = admitted_since(record) or parse_time(record.creation_timestamp)
    if since is None:
        return InputWait(0.0, limit)
    return InputWait(max(0.0, limit - (now - since).total_seconds()), limit)


def refused(kind: str, namespace: str, name: str, message: str, status: int | None) -> str:
    """Why an input could not be read although it may exist, and what would allow it."""
    text = f"the operator may not read {kind} {namespace}/{name} ({message})"
    if status != 403:
        return text
    if kind == "Secret":
        return (
            f"{text}: Secret inputs on Slurm need the chart value slurmInputs.secrets=true, "
            "which lets the operator get Secrets in the namespaces it serves (docs/helm.md)"
        )
    return f"{text}: the operator's ServiceAccount needs get on configmaps in {namespace}"


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The files of ``spec.inputs``: ConfigMap keys (0444) and Secret keys (0400)."""

    config: dict[str, bytes] = dataclasses.field(default_factory=dict)
    secret: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.config or self.secret)

    @property
    def size(self) -> int:
        return sum(len(data) for part in (self.config, self.secret) for data in part.values())


def place_of(client: SlurmClient) -> tuple[Runner, str]:
    """The runner that reaches the files of ``client`` (a ``sites`` client) and its
    work directory: the client's own runner (the CLI client's, local or SSH); for
    pyslurm (local mode only) this host."""
    inner = getattr(client, "inner", client)  # reachability.ReportingClient
    runner: Runner | None = getattr(inner, "runner", None)
    return runner or LocalRunner(), str(getattr(inner, "work_dir", "/"))


def run_dir_of(work_dir: str, namespace: str, name: str, uid: str) -> str:
    return run_dir_path(work_dir, namespace, name, uid)


def workspace(cluster: str, run_dir: str) -> WorkspaceStatus:
    return WorkspaceStatus(cluster=cluster, directory=run_dir)


def run_dir_in(record: SimJobRecord, cluster: str) -> str | None:
    """The run directory recorded in status.workspace (None for a job submitted before
    there were run directories: its output file is in the work directory)."""
    recorded = record.status.workspace
    if recorded is None or recorded.cluster != cluster or not recorded.directory:
        return None
    return recorded.directory


def in_run_dir(job: JobSpec, run_dir: str, *, with_inputs: bool) -> JobSpec:
    """``job`` started in ``run_dir`` (its output file there too) with the data
    variables; ``spec.env`` wins over them. Raises ``InvalidJobSpec``."""
    env = {**data_env(run_dir, with_inputs=with_inputs), **job.env}
    return dataclasses.replace(job, directory=run_dir, env=env)


def data_env(run_dir: str, *, with_inputs: bool) -> dict[str, str]:
    """The variables that tell the simulation where its data is (like Kubernetes)."""
    env = {"SIMJOB_OUTPUT_DIR": f"{run_dir}/{OUTPUTS}"}
    if with_inputs:
        env["SIMJOB_INPUT_DIR"] = f"{run_dir}/{INPUTS}"
    return env


def select(kind: str, name: str, data: dict[str, bytes], source: InputSource) -> dict[str, bytes]:
    """The files one ConfigMap or Secret gives: its chosen keys (renamed) or all. Pure."""
    chosen = source.config_map or source.secret
    assert chosen is not None
    if not chosen.items:
        pairs = [(key, key) for key in sorted(data)]
    else:
        pairs = [(item.key, item.path or item.key) for item in chosen.items]
    files: dict[str, bytes] = {}
    for key, file_name in pairs:
        if key not in data:
            raise InputMissing(f"{kind} {name} has no key {key!r}")
        if not _FILE_NAME.fullmatch(file_name):
            raise InputError(
                f"key {file_name!r} of {kind} {name} cannot be an input file name (it must "
                f"match {INPUT_FILE_PATTERN}; choose keys with items[].path)"
            )
        if file_name in files:
            raise InputError(f"{kind} {name} gives the input file {file_name!r} twice")
        files[file_name] = data[key]
    return files


async def read_inputs(kube: KubeApi, namespace: str, sources: list[InputSource]) -> Inputs:
    """The files of ``sources`` (ConfigMaps and Secrets of ``namespace``), checked."""
    inputs = Inputs()
    for source in sources:
        is_secret = source.secret is not None
        chosen = source.secret or source.config_map
        assert chosen is not None
        kind = "Secret" if is_secret else "ConfigMap"
        try:
            if is_secret:
                data = await kube.get_secret_data(namespace, chosen.name)
            else:
                data = await kube.get_configmap_data(namespace, chosen.name)
        except Refused as exc:
            why = refused(kind, namespace, chosen.name, exc.message, exc.status)
            raise InputError(why) from exc
        if data is None:
            raise InputMissing(f"{kind} {namespace}/{chosen.name} does not exist")
        target = inputs.secret if is_secret else inputs.config
        for file_name, content in select(kind, chosen.name, data, source).items():
            if file_name in inputs.config or file_name in inputs.secret:
                raise InputError(f"two inputs give the file {file_name!r}")
            target[file_name] = content
    if inputs.size > MAX_INPUT_BYTES:
        raise InputError(
            f"the inputs are {inputs.size} bytes in all; at most {MAX_INPUT_BYTES} bytes "
            f"({MAX_INPUT_BYTES // 2**20} MiB) are written into a Slurm run directory"
        )
    return inputs


async def prepare(runner: Runner, run_dir: str, inputs: Inputs, timeout_s: float) -> None:
    """Create the run directory with ``outputs/`` and write ``inputs/`` (idempotent: a
    retry after a crash writes the same files again)."""
    await write_inputs(runner, f"{run_dir}/{OUTPUTS}", {}, timeout_s=timeout_s)
    folder = f"{run_dir}/{INPUTS}"
    for files, mode in ((inputs.config, CONFIGMAP_MODE), (inputs.secret, SECRET_MODE)):
        if files:
            limit = MAX_INPUT_BYTES
            await write_inputs(
                runner, folder, files, mode=mode, max_total_bytes=limit, timeout_s=timeout_s
            )


async def prepare_run_dir(
    kube: KubeApi,
    record: SimJobRecord,
    cluster: str,
    runner: Runner,
    run_dir: str,
    *,
    wait: InputWait,
    timeout_s: float,
) -> Rejected | RetryAfter | None:
    """Read ``spec.inputs`` and prepare the run directory (``prepare``): None when it is
    ready, else the refusal for the backend to return. A missing object is retried,
    shown as the SimJob's reason, while ``wait`` lasts. Raises ``SlurmUnavailable`` (the
    site did not answer: the backend keeps the phase and retries)."""
    assert record.spec is not None
    try:
        inputs = await read_inputs(kube, record.namespace, list(record.spec.inputs))
        await prepare(runner, run_dir, inputs, timeout_s)
    except InputMissing as exc:  # may be created after the SimJob
        if wait.left > 0:
            message = (
                f"waiting for an input: {exc.message} (spec.inputs); the SimJob fails "
                f"{NOT_FOUND} if it is still missing {wait.limit} s after admission "
                "(maxPendingSeconds)"
            )
            return RetryAfter(wait.retry_in, message, reason=NOT_FOUND)
        message = f"{exc.message}; it did not appear within maxPendingSeconds ({wait.limit} s)"
        return Rejected(NOT_FOUND, message)
    except InputError as exc:
        return Rejected(INVALID_INPUTS, exc.message)
    except InvalidJobSpec as exc:  # slurm_bridge.UnsafeRunPath
        return Rejected(INVALID_INPUTS, str(exc))
    except RunDirError as exc:
        return Rejected(Reason.SLURM_REJECTED, f"{cluster} refused the run directory: {exc}")
    return None
