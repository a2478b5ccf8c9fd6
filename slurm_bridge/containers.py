"""Running a job inside a container: the runtime's command line as an argv list. Pure.

``containerize(spec, container)`` turns a ``JobSpec`` that would run ``spec.argv`` on the
node into one that runs the same argv inside ``container.image`` with the site's
container runtime, the same environment and the run directory's mounts. The result is
an ordinary ``JobSpec``: scripts.py quotes every element as it quotes any argv, so a
hostile argument, environment value or image name stays one literal word (and the
runtime stops parsing options at ``--``, placed before the image or the command).

Per runtime (``ContainerRuntime``):

* ``podman`` — ``podman [globalArgs] run --rm --entrypoint= --network=host
  --userns=keep-id --cgroups=disabled --env=NAME=value… --volume=src:dst[:ro]…
  [--workdir=dir] [gpuArgs] [runArgs] -- IMAGE ARGV``. ``--entrypoint=`` makes ARGV the
  whole command, as ``command`` replaces the entrypoint on Kubernetes. The defaults come
  before ``runArgs`` so that a site overrides one (podman keeps the last value of a
  flag): ``--userns=keep-id`` runs the container as the job's user (rootless podman),
  ``--cgroups=disabled`` leaves it in the Slurm job's cgroup (Slurm's limits and
  ``scancel`` apply to it; needs crun).
* ``podman-hpc`` (NERSC) — the same through ``podman-hpc run`` (its site modules add
  their own flags; GPUs: ``--gpu``); ``--`` keeps its option parser away from ARGV.
* ``apptainer`` — ``apptainer [globalArgs] exec --containall --no-eval
  --bind=src:dst[:ro]… --pwd=dir [gpuArgs: --nv] [runArgs] -- IMAGE ARGV``, IMAGE as
  ``docker://image`` unless it names a transport (``oci-archive:``, ``docker://``…) or a
  SIF file (an absolute path). The environment travels as ``APPTAINERENV_NAME``
  variables (``--containall`` cleans the rest; ``--no-eval`` keeps values literal).
* ``shifter`` — ``shifter [globalArgs] --image=docker:image --volume=src:dst[:ro]…
  --workdir=dir [gpuArgs: --module=gpu] [runArgs] -- ARGV``; shifter hands the job's
  environment to the container, so the variables are exported as they are without a
  container.

Signals: under Slurm, podman's own forwarding of signals to the container
(``--sig-proxy``) loses the ``SIGTERM`` of ``scancel`` or of the time limit (measured with
podman 4.3 under slurmd: the ``SIGCONT`` Slurm sends first is forwarded by a ``runc kill``
child that Slurm's ``SIGTERM`` then kills, and the ``SIGTERM`` itself never reaches the
container), and the container outlives the job unless it is in the job's cgroup. So
podman and podman-hpc run under ``PODMAN_SUPERVISOR``, a fixed POSIX sh program (no user
value in its text; the command line arrives as its positional parameters): it adds
``--pidfile`` (a ``mktemp`` file) to the run, and on ``TERM``, ``INT``, ``HUP``, ``USR1``
or ``USR2`` sends that signal straight to the container's first process (as soon as
podman has written its pid, if the signal comes first); it exits with podman's status,
the program's exit code.

The environment: podman and podman-hpc get ``--env=NAME=value`` arguments (the
variables are never put into the environment of the runtime itself, where ``PATH``,
``HOME`` or ``LD_PRELOAD`` meant for the container would change how podman runs); the
values are single-quoted words of the script, but the node's process list shows them
while the job runs, as for any ``podman run -e`` — secrets belong in input files.
The working directory: ``spec.working_dir`` (a path inside the container) if set;
else podman's is the image's own (as on Kubernetes) and apptainer's and shifter's the
first read-write mount (they have no portable notion of the image's).
Neighbours: specs.py (``JobSpec``, ``check_text``, ``check_work_dir``), scripts.py.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from slurm_bridge.errors import InvalidJobSpec
from slurm_bridge.specs import JobSpec, check_text, check_work_dir

__all__ = [
    "APPTAINER_ENV_PREFIX",
    "DEFAULT_GPU_ARGS",
    "DEFAULT_RUN_ARGS",
    "PODMAN_SUPERVISOR",
    "Container",
    "ContainerRuntime",
    "Mount",
    "container_argv",
    "containerize",
]

APPTAINER_ENV_PREFIX = "APPTAINERENV_"
MAX_IMAGE_CHARS = 1024
# A mount's host or container path: a plain absolute path without ',' or ':' (the
# separators of --volume/--bind specifications).
MOUNT_PATH = re.compile(r"/[A-Za-z0-9_./@+=-]*")
BINARY = re.compile(r"[A-Za-z0-9_./+][A-Za-z0-9_./+-]*")
# Transports apptainer understands; anything else is a registry image (docker://).
APPTAINER_TRANSPORT = re.compile(
    r"(docker|docker-archive|docker-daemon|oci|oci-archive|oras|library|shub|http|https):"
)
SHIFTER_TYPE = re.compile(r"(docker|custom|id):")


class ContainerRuntime(enum.StrEnum):
    """The container runtime of a Slurm site (a SlurmCluster's ``containerRuntime``)."""

    NONE = "none"
    PODMAN = "podman"
    PODMAN_HPC = "podman-hpc"
    APPTAINER = "apptainer"
    SHIFTER = "shifter"


# Flags every run gets before the site's runArgs (which may override them).
DEFAULT_RUN_ARGS: Mapping[ContainerRuntime, tuple[str, ...]] = {
    ContainerRuntime.PODMAN: (
        "--rm",
        "--entrypoint=",
        "--network=host",
        "--userns=keep-id",
        "--cgroups=disabled",
    ),
    ContainerRuntime.PODMAN_HPC: ("--rm", "--entrypoint=", "--network=host", "--userns=keep-id"),
    ContainerRuntime.APPTAINER: ("--containall", "--no-eval"),
    ContainerRuntime.SHIFTER: (),
}
# Flags of a job that asks GPUs, unless the site names its own (gpuArgs).
DEFAULT_GPU_ARGS: Mapping[ContainerRuntime, tuple[str, ...]] = {
    ContainerRuntime.PODMAN: ("--device=nvidia.com/gpu=all", "--env=CUDA_VISIBLE_DEVICES"),
    ContainerRuntime.PODMAN_HPC: ("--gpu",),
    ContainerRuntime.APPTAINER: ("--nv",),
    ContainerRuntime.SHIFTER: ("--module=gpu",),
}
_SUBCOMMAND = {
    ContainerRuntime.PODMAN: "run",
    ContainerRuntime.PODMAN_HPC: "run",
    ContainerRuntime.APPTAINER: "exec",
}
_IMAGE_WORKDIR = frozenset({ContainerRuntime.PODMAN, ContainerRuntime.PODMAN_HPC})
_SUPERVISED = _IMAGE_WORKDIR
# $1: the position of podman's "run" in the command line that follows (1-based).
PODMAN_SUPERVISOR = r"""
at=$1; shift
pidfile=$(mktemp) || exit 1
i=0
for word do
  shift
  set -- "$@" "$word"
  i=$((i + 1))
  if [ "$i" -eq "$at" ]; then set -- "$@" "--pidfile=$pidfile"; fi
done
child=
forward() {
  pid=$(cat "$pidfile" 2>/dev/null)
  case $pid in
    '' | *[!0-9]*)
      # Not started yet: send it once podman has written the pid (for up to a minute).
      (
        i=0
        while [ "$i" -lt 600 ]; do
          pid=$(cat "$pidfile" 2>/dev/null)
          case $pid in '' | *[!0-9]*) ;; *) exec kill -s "$1" "$pid" ;; esac
          sleep 0.1
          i=$((i + 1))
        done
      ) &
      ;;
    *) kill -s "$1" "$pid" 2>/dev/null ;;
  esac
}
for sig in TERM INT HUP USR1 USR2; do trap "forward $sig" "$sig"; done
"$@" &
child=$!
status=0
wait "$child" || status=$?
while kill -0 "$child" 2>/dev/null; do
  status=0
  wait "$child" || status=$?
done
rm -f "$pidfile"
exit "$status"
"""


@dataclass(frozen=True, slots=True)
class Mount:
    """A host directory (``source``) seen in the container at ``target``."""

    source: str
    target: str
    read_only: bool = False

    def __post_init__(self) -> None:
        for what, path in (("source", self.source), ("target", self.target)):
            if not isinstance(path, str) or not MOUNT_PATH.fullmatch(path):
                raise InvalidJobSpec(
                    f"mount {what} {path!r} must be an absolute path of [A-Za-z0-9_./@+=-]"
                )
            object.__setattr__(self, what, check_work_dir(path))

    def spec(self) -> str:
        """``src:dst`` or ``src:dst:ro`` (podman's --volume, apptainer's --bind, shifter's
        --volume all read it so)."""
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass(frozen=True, slots=True)
class Container:
    """How a job runs in a container: the site's runtime and options, the image, mounts.

    ``binary`` is the runtime's command (default: its name, looked up in the job's
    PATH). ``global_args`` go before the subcommand (podman: ``--root=…``,
    ``--runtime=…``), ``run_args`` after the defaults (``DEFAULT_RUN_ARGS``), ``gpu_args``
    (``None``: ``DEFAULT_GPU_ARGS``) only for a job that asks GPUs. Every option must
    start with ``-`` (``--name=value`` for one with a value), so none can take the
    image's place. ``workdir`` is where the command starts when the job names no
    working directory (``None``: see the module docstring).
    """

    runtime: ContainerRuntime
    image: str
    mounts: Sequence[Mount] = ()
    workdir: str | None = None
    binary: str | None = None
    global_args: Sequence[str] = ()
    run_args: Sequence[str] = ()
    gpu_args: Sequence[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "runtime", ContainerRuntime(self.runtime))
        image = self.image
        if not isinstance(image, str) or not image or len(image) > MAX_IMAGE_CHARS:
            raise InvalidJobSpec(f"image must be 1 to {MAX_IMAGE_CHARS} characters")
        check_text("image", image)
        if image.startswith("-") or any(char.isspace() for char in image):
            raise InvalidJobSpec(f"image {image!r} must not start with '-' or contain spaces")
        object.__setattr__(self, "mounts", tuple(self.mounts))
        for mount in self.mounts:
            if not isinstance(mount, Mount):
                raise InvalidJobSpec(f"mounts must be Mount objects, got {type(mount).__name__}")
        if self.workdir is not None:
            check_text("workdir", self.workdir, allow_empty=False)
            if not self.workdir.startswith("/"):
                raise InvalidJobSpec(f"workdir {self.workdir!r} must be absolute")
        if self.binary is not None and (
            not isinstance(self.binary, str) or not BINARY.fullmatch(self.binary)
        ):
            raise InvalidJobSpec(
                f"container runtime binary {self.binary!r} must be a plain name or path "
                "not starting with '-'"
            )
        for what in ("global_args", "run_args", "gpu_args"):
            options = getattr(self, what)
            if options is None:
                continue
            object.__setattr__(self, what, _options(what, options))


def _options(what: str, options: Sequence[str]) -> tuple[str, ...]:
    if isinstance(options, str | bytes) or not isinstance(options, Sequence):
        raise InvalidJobSpec(f"{what} must be a list of strings")
    for index, option in enumerate(options):
        if not isinstance(option, str) or not option.startswith("-"):
            raise InvalidJobSpec(
                f"{what}[{index}] {option!r} must be an option starting with '-' "
                "(write --name=value for one with a value)"
            )
        check_text(f"{what}[{index}]", option)
    return tuple(options)


def _image_ref(runtime: ContainerRuntime, image: str) -> str:
    if runtime is ContainerRuntime.APPTAINER:
        if image.startswith("/") or APPTAINER_TRANSPORT.match(image):
            return image
        return f"docker://{image}"
    if runtime is ContainerRuntime.SHIFTER:
        return image if SHIFTER_TYPE.match(image) else f"docker:{image}"
    return image


def _workdir(container: Container, working_dir: str | None) -> str | None:
    if working_dir is not None:
        return working_dir
    if container.workdir is not None or container.runtime in _IMAGE_WORKDIR:
        return container.workdir
    writable = [mount.target for mount in container.mounts if not mount.read_only]
    return writable[0] if writable else None


def container_argv(
    container: Container,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    working_dir: str | None = None,
    gpus: int | None = None,
) -> list[str]:
    """The runtime's command line that runs ``argv`` in ``container``.

    ``env`` is put on the command line only for podman and podman-hpc
    (``--env=NAME=value``); for apptainer and shifter it travels in the environment
    (see ``containerize``).
    """
    runtime = container.runtime
    if runtime is ContainerRuntime.NONE:
        raise InvalidJobSpec("container runtime 'none' runs no container")
    line = [container.binary or runtime.value, *container.global_args]
    if runtime is ContainerRuntime.SHIFTER:
        line.append(f"--image={_image_ref(runtime, container.image)}")
    else:
        line.append(_SUBCOMMAND[runtime])
    line.extend(DEFAULT_RUN_ARGS[runtime])
    if runtime in (ContainerRuntime.PODMAN, ContainerRuntime.PODMAN_HPC):
        line.extend(f"--env={name}={value}" for name, value in (env or {}).items())
    mount_flag = "--bind" if runtime is ContainerRuntime.APPTAINER else "--volume"
    line.extend(f"{mount_flag}={mount.spec()}" for mount in container.mounts)
    workdir = _workdir(container, working_dir)
    if workdir is not None:
        flag = "--pwd" if runtime is ContainerRuntime.APPTAINER else "--workdir"
        line.append(f"{flag}={workdir}")
    if gpus:
        gpu_args = container.gpu_args
        line.extend(DEFAULT_GPU_ARGS[runtime] if gpu_args is None else gpu_args)
    line.extend(container.run_args)
    line.append("--")
    if runtime is not ContainerRuntime.SHIFTER:
        line.append(_image_ref(runtime, container.image))
    line.extend(argv)
    return line


def containerize(spec: JobSpec, container: Container | None) -> JobSpec:
    """``spec`` run inside ``container`` (unchanged without one, or with runtime none).

    The result's command is the runtime's command line (``container_argv``; for podman
    and podman-hpc run by ``PODMAN_SUPERVISOR``), its
    working directory unset (the batch script stays where sbatch started it, the run
    directory or the work directory); resources, placement, marker and run directory
    are kept. Raises ``InvalidJobSpec`` when a value cannot be passed (e.g. an
    environment name too long once prefixed for apptainer).
    """
    if container is None or container.runtime is ContainerRuntime.NONE:
        return spec
    runtime = container.runtime
    env: Mapping[str, str]
    if runtime in (ContainerRuntime.PODMAN, ContainerRuntime.PODMAN_HPC):
        env = {}
    elif runtime is ContainerRuntime.APPTAINER:
        env = {f"{APPTAINER_ENV_PREFIX}{name}": value for name, value in spec.env.items()}
    else:
        env = dict(spec.env)
    argv = container_argv(
        container, spec.argv, env=spec.env, working_dir=spec.working_dir, gpus=spec.gpus
    )
    if runtime in _SUPERVISED:
        run_at = len(container.global_args) + 2  # the binary, its global options, "run"
        argv = ["/bin/sh", "-c", PODMAN_SUPERVISOR, "sh", str(run_at), *argv]
    return dataclasses.replace(spec, command=argv, args=(), env=env, working_dir=None)
