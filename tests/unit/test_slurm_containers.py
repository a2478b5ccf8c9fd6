"""Container command lines built by slurm_bridge.containers, per runtime, and no injection.

Each runtime's argv is checked element by element; then the batch script of a
containerized job is run by /bin/sh with a stand-in for the runtime (a script that
writes its argv and environment, NUL-separated) to prove that the hostile corpus reaches
the runtime as the exact words ``container_argv`` promised: one word per value, after
the ``--`` that ends the runtime's options. The real podman runs the same corpus in
tests/integration/test_slurm_containers.py.
"""

from __future__ import annotations

import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from slurm_bridge import InvalidJobSpec, JobSpec, batch_script
from slurm_bridge.containers import (
    DEFAULT_GPU_ARGS,
    PODMAN_SUPERVISOR,
    Container,
    ContainerRuntime,
    Mount,
    container_argv,
    containerize,
)
from slurm_bridge.scripts import SCRIPT_HEADER
from tests.support.slurm_hostile import ACCEPTED

RUN_DIR = "/scratch/simjob/lab/heat-1234"
MOUNTS = (
    Mount(RUN_DIR, "/simjob/workspace"),
    Mount(f"{RUN_DIR}/inputs", "/simjob/inputs", read_only=True),
)
IMAGE = "docker.io/simjob/simulation:local"
ARGV = ["python3", "/opt/simulation/heat.py", "--steps", "10"]
MULTILINE = ("a\nb", "\n#SBATCH --wrap=id", "trailing newline\n", "tab\there")


def container(runtime: str, **kwargs: object) -> Container:
    return Container(runtime=ContainerRuntime(runtime), image=IMAGE, mounts=MOUNTS, **kwargs)  # type: ignore[arg-type]


def test_podman_argv() -> None:
    argv = container_argv(container("podman"), ARGV, env={"A": "1", "B": "x y"})
    assert argv == [
        "podman",
        "run",
        "--rm",
        "--entrypoint=",
        "--network=host",
        "--userns=keep-id",
        "--cgroups=disabled",
        "--env=A=1",
        "--env=B=x y",
        f"--volume={RUN_DIR}:/simjob/workspace",
        f"--volume={RUN_DIR}/inputs:/simjob/inputs:ro",
        "--",
        IMAGE,
        *ARGV,
    ]


def test_podman_site_options_follow_the_defaults_they_override() -> None:
    argv = container_argv(
        container(
            "podman",
            binary="/usr/bin/podman",
            global_args=["--root=/var/tmp/store", "--runtime=runc"],
            run_args=["--userns=host", "--cgroups=enabled"],
        ),
        ARGV,
        working_dir="/simjob/workspace/case 1",
        gpus=2,
    )
    assert argv[:4] == ["/usr/bin/podman", "--root=/var/tmp/store", "--runtime=runc", "run"]
    tail = argv[argv.index(f"--volume={RUN_DIR}/inputs:/simjob/inputs:ro") + 1 :]
    assert tail == [
        "--workdir=/simjob/workspace/case 1",
        "--device=nvidia.com/gpu=all",
        "--env=CUDA_VISIBLE_DEVICES",
        "--userns=host",
        "--cgroups=enabled",
        "--",
        IMAGE,
        *ARGV,
    ]
    assert argv.index("--userns=keep-id") < argv.index("--userns=host")


def test_podman_hpc_argv() -> None:
    argv = container_argv(container("podman-hpc"), ARGV, env={"A": "1"}, gpus=1)
    assert argv == [
        "podman-hpc",
        "run",
        "--rm",
        "--entrypoint=",
        "--network=host",
        "--userns=keep-id",
        "--env=A=1",
        f"--volume={RUN_DIR}:/simjob/workspace",
        f"--volume={RUN_DIR}/inputs:/simjob/inputs:ro",
        "--gpu",
        "--",
        IMAGE,
        *ARGV,
    ]


def test_apptainer_argv() -> None:
    argv = container_argv(container("apptainer"), ARGV, env={"A": "1"}, gpus=1)
    assert argv == [
        "apptainer",
        "exec",
        "--containall",
        "--no-eval",
        f"--bind={RUN_DIR}:/simjob/workspace",
        f"--bind={RUN_DIR}/inputs:/simjob/inputs:ro",
        "--pwd=/simjob/workspace",  # the first read-write mount when the job names none
        "--nv",
        "--",
        f"docker://{IMAGE}",
        *ARGV,
    ]


def test_shifter_argv() -> None:
    argv = container_argv(container("shifter"), ARGV, env={"A": "1"}, gpus=4)
    assert argv == [
        "shifter",
        f"--image=docker:{IMAGE}",
        f"--volume={RUN_DIR}:/simjob/workspace",
        f"--volume={RUN_DIR}/inputs:/simjob/inputs:ro",
        "--workdir=/simjob/workspace",
        "--module=gpu",
        "--",
        *ARGV,
    ]


@pytest.mark.parametrize(
    ("runtime", "image", "ref"),
    [
        ("apptainer", "ubuntu:24.04", "docker://ubuntu:24.04"),
        ("apptainer", "docker://ubuntu:24.04", "docker://ubuntu:24.04"),
        ("apptainer", "oci-archive:/images/sim.tar", "oci-archive:/images/sim.tar"),
        ("apptainer", "oras://ghcr.io/x/y:1", "oras://ghcr.io/x/y:1"),
        ("apptainer", "/sw/images/sim.sif", "/sw/images/sim.sif"),
        ("shifter", "ubuntu:24.04", "--image=docker:ubuntu:24.04"),
        ("shifter", "docker:ubuntu:24.04", "--image=docker:ubuntu:24.04"),
        ("shifter", "id:0123abcd", "--image=id:0123abcd"),
        ("podman", "oci-archive:/images/sim.tar", "oci-archive:/images/sim.tar"),
        ("podman-hpc", "registry.nersc.gov/p/sim:1", "registry.nersc.gov/p/sim:1"),
    ],
)
def test_image_references_per_runtime(runtime: str, image: str, ref: str) -> None:
    argv = container_argv(Container(runtime=ContainerRuntime(runtime), image=image), ["x"])
    assert ref in argv


@pytest.mark.parametrize("runtime", ["podman", "podman-hpc", "apptainer", "shifter"])
def test_gpu_args_only_for_gpu_jobs_and_the_site_may_replace_them(runtime: str) -> None:
    default = DEFAULT_GPU_ARGS[ContainerRuntime(runtime)]
    assert not set(default) & set(container_argv(container(runtime), ["x"], gpus=0))
    assert set(default) <= set(container_argv(container(runtime), ["x"], gpus=1))
    replaced = container_argv(container(runtime, gpu_args=["--mygpu"]), ["x"], gpus=1)
    assert "--mygpu" in replaced
    assert not set(default) & set(replaced)
    assert not set(default) & set(container_argv(container(runtime, gpu_args=[]), ["x"], gpus=1))


def test_podman_workdir_defaults_to_the_images_own() -> None:
    argv = container_argv(container("podman"), ["x"])
    assert not any(word.startswith("--workdir") for word in argv)
    assert "--workdir=/w" in container_argv(container("podman", workdir="/w"), ["x"])


def test_containerize_moves_the_job_into_the_container() -> None:
    spec = JobSpec(
        marker="simjob-1",
        command=ARGV[:2],
        args=ARGV[2:],
        env={"PATH": "/opt/bin:/usr/bin", "LD_PRELOAD": "/x.so"},
        working_dir="/simjob/workspace",
        cpus_per_task=4,
        memory_mib=512,
        gpus=1,
        partition="gpu",
    )
    podman = containerize(spec, container("podman"))
    # podman runs under the supervisor, its "run" the 2nd word of its command line.
    assert podman.command[:5] == ("/bin/sh", "-c", PODMAN_SUPERVISOR, "sh", "2")
    assert podman.command[5:] == tuple(
        container_argv(
            container("podman"), spec.argv, env=spec.env, working_dir=spec.working_dir, gpus=1
        )
    )
    # The variables are podman's arguments, never podman's own environment.
    assert podman.env == {}
    assert "--env=PATH=/opt/bin:/usr/bin" in podman.command
    assert "--env=LD_PRELOAD=/x.so" in podman.command
    assert "--workdir=/simjob/workspace" in podman.command
    assert podman.working_dir is None
    assert podman.args == ()
    assert (podman.cpus_per_task, podman.memory_mib, podman.gpus, podman.partition) == (
        4,
        512,
        1,
        "gpu",
    )
    apptainer = containerize(spec, container("apptainer"))
    assert apptainer.env == {
        "APPTAINERENV_PATH": "/opt/bin:/usr/bin",
        "APPTAINERENV_LD_PRELOAD": "/x.so",
    }
    assert not any("PATH" in word for word in apptainer.command)
    shifter = containerize(spec, container("shifter"))
    assert shifter.env == spec.env
    assert containerize(spec, None) is spec
    assert containerize(spec, container("none")) is spec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": ""}, "1 to 1024"),
        ({"image": "x" * 1025}, "1 to 1024"),
        ({"image": "-v /:/host"}, "must not start with '-'"),
        ({"image": "a b"}, "contain spaces"),
        ({"image": "a\nb"}, "control character"),
        ({"run_args": ["--volume", "/etc:/etc"]}, r"run_args\[1\]"),
        ({"global_args": ["root"]}, "starting with '-'"),
        ({"gpu_args": ["--x\n"]}, "control character"),
        ({"run_args": "--rm"}, "list of strings"),
        ({"binary": "--version"}, "binary"),
        ({"binary": "pod man"}, "binary"),
        ({"workdir": "relative"}, "absolute"),
        ({"runtime": "docker"}, "docker"),
    ],
)
def test_unsafe_containers_are_refused(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"runtime": ContainerRuntime.PODMAN, "image": IMAGE, **kwargs}
    with pytest.raises((InvalidJobSpec, ValueError), match=message):
        Container(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("/a,b", "/simjob/workspace"),
        ("/a:b", "/simjob/workspace"),
        ("relative", "/simjob/workspace"),
        ("/a/../etc", "/simjob/workspace"),
        ("/a b", "/simjob/workspace"),
        ("/ok", "/simjob/x:rw"),
    ],
)
def test_mount_paths_are_plain(source: str, target: str) -> None:
    with pytest.raises(InvalidJobSpec):
        Mount(source, target)


def test_apptainer_env_name_too_long_once_prefixed_is_refused() -> None:
    spec = JobSpec(marker="m-1", command=["x"], env={"A" * 250: "v"})
    with pytest.raises(InvalidJobSpec, match="environment variable name"):
        containerize(spec, container("apptainer"))


# ------------------------------------------------------- the script runs the runtime


RECORDER = """#!/bin/sh
# A stand-in for the container runtime: records its argv and environment (NUL-separated).
out="$(dirname "$0")"
printf '%s\\0' "$@" > "$out/argv"
env -0 > "$out/env"
"""


def fake_runtime(tmp_path: Path) -> str:
    path = tmp_path / "runtime"
    path.write_text(RECORDER, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def run_script(script: str, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    job = tmp_path / "job.sh"
    job.write_text(script, encoding="utf-8")
    done = subprocess.run(["/bin/sh", str(job)], capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    argv = (tmp_path / "argv").read_bytes().decode("utf-8").split("\0")[:-1]
    env = {}
    for record in (tmp_path / "env").read_bytes().decode("utf-8").split("\0")[:-1]:
        name, _, value = record.partition("=")
        env[name] = value
    return argv, env


@pytest.mark.parametrize("runtime", ["podman", "podman-hpc", "apptainer", "shifter"])
def test_hostile_args_and_env_reach_the_runtime_as_single_words(
    runtime: str, tmp_path: Path
) -> None:
    values = (*ACCEPTED, *MULTILINE)
    env = {f"V{index}": value for index, value in enumerate(values)}
    spec = JobSpec(
        marker="m-1",
        command=["printf", "%s\\n"],
        args=list(values),
        env=env,
        working_dir="/simjob/workspace/$(id) 'q'",
    )
    box = container(runtime, binary=fake_runtime(tmp_path))
    job = containerize(spec, box)
    script = batch_script(job)
    # sbatch reads directives only before the first command: the header, then a command
    # (a multi-line value's later lines sit inside its single quotes, after that).
    assert script.startswith(SCRIPT_HEADER)
    assert script.removeprefix(SCRIPT_HEADER).startswith(("export ", "exec "))

    argv, seen_env = run_script(script, tmp_path)
    expected = container_argv(box, spec.argv, env=env, working_dir=spec.working_dir, gpus=spec.gpus)
    if runtime in ("podman", "podman-hpc"):
        # The supervisor adds its --pidfile right after "run", and nothing else.
        assert argv[0] == "run"
        assert argv[1].startswith("--pidfile=/")
        del argv[1]
    assert argv == expected[1:]
    # The job's argv is exactly what follows the '--' (and the image) that ends options.
    after = argv[argv.index("--") + 1 :]
    if runtime != "shifter":
        assert after[0] == (f"docker://{IMAGE}" if runtime == "apptainer" else IMAGE)
        after = after[1:]
    assert after == ["printf", "%s\\n", *values]
    assert "--workdir=/simjob/workspace/$(id) 'q'" in argv or (
        "--pwd=/simjob/workspace/$(id) 'q'" in argv
    )
    if runtime in ("podman", "podman-hpc"):
        assert [word for word in argv if word.startswith("--env=")] == [
            f"--env={name}={value}" for name, value in env.items()
        ]
        assert not set(env) & set(seen_env)
    elif runtime == "apptainer":
        assert {name: seen_env[f"APPTAINERENV_{name}"] for name in env} == env
    else:
        assert {name: seen_env[name] for name in env} == env
    assert not Path("/tmp/simjob-pwned").exists()


# ------------------------------------------------------------ the podman supervisor

FAKE_PODMAN = """#!/usr/bin/env python3
# A stand-in for podman run: starts the "container's first process" (another process),
# writes its pid to the --pidfile it was given, exits with its status, and ignores the
# signals itself (podman's own forwarding is what fails under Slurm).
import os, signal, subprocess, sys
out = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(out, "podman-argv"), "w") as f:
    f.write("\\n".join(sys.argv[1:]) + "\\n")
pidfile = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--pidfile=")][0]
child = subprocess.Popen([sys.executable, os.path.join(out, "program.py")] + sys.argv[-2:])
for number in (signal.SIGTERM, signal.SIGUSR1):
    signal.signal(number, signal.SIG_IGN)
with open(pidfile, "w") as f:
    f.write(str(child.pid))
sys.exit(child.wait())
"""
PROGRAM = """
import os, signal, sys, time
out = os.path.dirname(os.path.abspath(__file__))
seconds, code = float(sys.argv[1]), int(sys.argv[2])
def stop(number, frame):
    with open(os.path.join(out, "signal"), "w") as f:
        f.write(signal.Signals(number).name)
    sys.exit(143)
for number in (signal.SIGTERM, signal.SIGUSR1):
    signal.signal(number, stop)
open(os.path.join(out, "ready"), "w").close()
time.sleep(seconds)
sys.exit(code)
"""


def supervised_job(tmp_path: Path, seconds: float, exit_code: int) -> subprocess.Popen[bytes]:
    fake = tmp_path / "podman"
    fake.write_text(FAKE_PODMAN, encoding="utf-8")
    fake.chmod(0o755)
    (tmp_path / "program.py").write_text(PROGRAM, encoding="utf-8")
    spec = JobSpec(marker="m-1", command=["program"], args=[str(seconds), str(exit_code)])
    job = containerize(spec, container("podman", binary=str(fake), global_args=["--root=/r"]))
    script = tmp_path / "job.sh"
    script.write_text(batch_script(job), encoding="utf-8")
    return subprocess.Popen(["/bin/sh", str(script)], env={"PATH": "/usr/bin:/bin"})


def pid_file(tmp_path: Path) -> Path:
    """The --pidfile the supervisor gave podman, once the program's pid is in it and
    the program handles its signals."""
    for _ in range(200):
        argv = tmp_path / "podman-argv"
        if argv.exists():
            words = argv.read_text().splitlines()
            if len(words) > 2:
                path = Path(words[2].removeprefix("--pidfile="))
                ready = (tmp_path / "ready").exists()
                if ready and path.exists() and path.read_text().strip():
                    return path
        time.sleep(0.05)
    raise AssertionError("podman never got a pid file with the program's pid")


@pytest.mark.parametrize("exit_code", [0, 3])
def test_the_supervisor_exits_with_the_programs_status(tmp_path: Path, exit_code: int) -> None:
    job = supervised_job(tmp_path, 0.5, exit_code)
    assert job.wait(timeout=60) == exit_code
    argv = (tmp_path / "podman-argv").read_text().splitlines()
    assert argv[:2] == ["--root=/r", "run"]
    assert argv[2].startswith("--pidfile=/")
    assert argv[-3:] == ["program", "0.5", str(exit_code)]
    assert not Path(argv[2].removeprefix("--pidfile=")).exists()  # removed at the end
    assert not (tmp_path / "signal").exists()


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGUSR1"])
def test_slurms_signal_reaches_the_containers_process_through_the_pidfile(
    tmp_path: Path, signal_name: str
) -> None:
    job = supervised_job(tmp_path, 60, 0)
    pid_file(tmp_path)
    job.send_signal(getattr(signal, signal_name))  # to the batch script's shell only
    assert job.wait(timeout=30) == 143
    assert (tmp_path / "signal").read_text() == signal_name
