"""A fake of exactly the pyslurm (25.11) surface that slurm_bridge.pyslurm_client uses.

Faithful to pyslurm's documented behaviour where the client depends on it:

* ``JobSubmitDescription(**attrs)`` accepts only its documented public attributes (a
  Cython ``cdef public`` class raises AttributeError for others); ``submit()`` loads
  ``script`` from the file when such a path exists, refuses scripts that do not start
  with ``#!`` or contain NUL or DOS line ends (ValueError, as pyslurm), and returns the
  new job id as an int; ``priority=0`` holds the job (pyslurm's ``--hold``).
* ``Jobs.load()`` returns a mapping (``.values()``) of every job the controller knows;
  ``Job(id).cancel()`` sends SIGKILL and ignores finished or unknown jobs (pyslurm's
  ``send_signal`` ignores ESLURM_ALREADY_DONE and, for signal 9, ESLURM_INVALID_JOB_ID).
* ``Job`` attributes: ``id``, ``name``, ``comment``, ``user_id``, ``state`` (e.g.
  "PENDING"), ``state_reason``, ``exit_code``, ``exit_code_signal``, ``start_time`` and
  ``end_time`` (epoch ints or None), ``standard_output``.
* ``db.JobFilter(ids=, names=, users=, start_time=)`` and ``db.Jobs.load(filter)`` for
  slurmdbd accounting; ``RPCError(errno=, msg=)`` for every failure.
* ``slurmctld.ping_primary()`` -> ``PingResponse`` (``is_responding``, ``hostname``,
  ``latency``); it raises ``RPCError`` when the controller cannot be reached, as
  pyslurm's ``verify_rpc`` does.

``CONTROLLER`` is the in-memory slurmctld the tests drive (``start``, ``finish``,
``purge``, ``reachable``) and inspect (``calls``, ``descriptions``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

__version__ = "25.11.0"

ESLURM_INVALID_PARTITION_NAME = 2000
SLURM_COMMUNICATIONS_CONNECTION_ERROR = 1001


class RPCError(Exception):
    """pyslurm.RPCError: ``errno`` and ``msg``."""

    def __init__(self, errno: int = -1, msg: str | None = None) -> None:
        self.errno = errno
        self.msg = msg or f"Slurm error {errno}"
        super().__init__(self.msg)


@dataclass
class Controller:
    """The fake slurmctld (+ slurmdbd) behind the fake API."""

    jobs: dict[int, Job] = field(default_factory=dict)
    db_jobs: dict[int, Job] = field(default_factory=dict)
    partitions: set[str] = field(default_factory=lambda: {"debug", "short"})
    reachable: bool = True
    next_id: int = 1000
    calls: list[str] = field(default_factory=list)
    descriptions: dict[int, dict[str, Any]] = field(default_factory=dict)
    scripts: dict[int, str] = field(default_factory=dict)

    def check(self, call: str) -> None:
        self.calls.append(call)
        if not self.reachable:
            raise RPCError(
                SLURM_COMMUNICATIONS_CONNECTION_ERROR,
                "Unable to contact slurm controller (connect failure)",
            )

    def start(self, job_id: int) -> None:
        job = self.jobs[job_id]
        job.state, job.state_reason, job.start_time = "RUNNING", "None", int(time.time())

    def finish(self, job_id: int, state: str, exit_code: int = 0, signal: int = 0) -> None:
        job = self.jobs[job_id]
        job.state, job.exit_code, job.exit_code_signal = state, exit_code, signal
        job.state_reason = "NonZeroExitCode" if exit_code else "None"
        job.start_time = job.start_time or int(time.time())
        job.end_time = int(time.time())
        self.db_jobs[job_id] = job

    def purge(self, job_id: int) -> None:
        """MinJobAge passed: the controller forgets the job (accounting keeps it)."""
        del self.jobs[job_id]

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


CONTROLLER = Controller()


class Job:
    """pyslurm.Job (controller view)."""

    def __init__(self, job_id: int) -> None:
        self.id = job_id
        self.name: str | None = None
        self.comment: str | None = None
        self.user_id: int | None = None
        self.state: str | None = None
        self.state_reason: str | None = None
        self.exit_code: int | None = None
        self.exit_code_signal: int | None = None
        self.start_time: int | None = None
        self.end_time: int | None = None
        self.standard_output: str | None = None
        self.cluster = "simjob"

    @staticmethod
    def load(job_id: int) -> Job:
        CONTROLLER.check("Job.load")
        if job_id not in CONTROLLER.jobs:
            raise RPCError(2017, "Invalid job id specified")
        return _copy(CONTROLLER.jobs[job_id])

    def cancel(self) -> None:
        CONTROLLER.check("Job.cancel")
        job = CONTROLLER.jobs.get(self.id)
        if job is None or job.end_time is not None:
            return  # ESLURM_INVALID_JOB_ID with SIGKILL / ESLURM_ALREADY_DONE: ignored
        CONTROLLER.finish(self.id, "CANCELLED", 0, 9)


class Jobs(dict[int, Job]):
    """pyslurm.Jobs (a mapping of id -> Job; ``values()`` over all clusters)."""

    @staticmethod
    def load(preload_passwd_info: bool = False, frozen: bool = False) -> Jobs:
        CONTROLLER.check("Jobs.load")
        return Jobs({job_id: _copy(job) for job_id, job in CONTROLLER.jobs.items()})


_SUBMIT_ATTRS = frozenset(
    [
        "name",
        "account",
        "user_id",
        "group_id",
        "priority",
        "site_factor",
        "wckey",
        "array",
        "batch_constraints",
        "begin_time",
        "clusters",
        "cluster_constraints",
        "comment",
        "admin_comment",
        "requires_contiguous_nodes",
        "cores_reserved_for_system",
        "threads_reserved_for_system",
        "working_directory",
        "cpu_frequency",
        "nodes",
        "deadline",
        "delay_boot_time",
        "dependencies",
        "excluded_nodes",
        "required_nodes",
        "constraints",
        "kill_on_node_fail",
        "licenses",
        "mail_user",
        "mail_types",
        "mcs_label",
        "memory_per_cpu",
        "memory_per_node",
        "memory_per_gpu",
        "network",
        "nice",
        "log_files_open_mode",
        "overcommit",
        "partitions",
        "profile_types",
        "accounting_gather_frequency",
        "qos",
        "requires_node_reboot",
        "is_requeueable",
        "reservations",
        "script",
        "script_args",
        "environment",
        "resource_sharing",
        "distribution",
        "time_limit",
        "time_limit_min",
        "container",
        "container_id",
        "cpus_per_task",
        "cpus_per_gpu",
        "sockets_per_node",
        "cores_per_socket",
        "threads_per_core",
        "gpus",
        "gpus_per_socket",
        "gpus_per_task",
        "gres_per_node",
        "gpu_binding",
        "ntasks",
        "ntasks_per_node",
        "ntasks_per_socket",
        "ntasks_per_core",
        "ntasks_per_gpu",
        "switches",
        "signal",
        "standard_in",
        "standard_output",
        "standard_error",
        "kill_on_invalid_dependency",
        "spreads_over_nodes",
        "use_min_nodes",
        "gres_binding",
        "gres_tasks_per_sharing",
        "temporary_disk_per_node",
        "get_user_environment",
        "min_cpus_per_node",
        "wait_all_nodes",
        "selinux_context",
        "segment_size",
        "reserved_ports",
        "extra",
    ]
)


class JobSubmitDescription:
    """pyslurm.JobSubmitDescription: documented attributes only; ``submit() -> int``."""

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        if key not in _SUBMIT_ATTRS:
            raise AttributeError(
                f"'pyslurm.core.job.submission.JobSubmitDescription' object has no attribute "
                f"'{key}'"
            )
        object.__setattr__(self, key, value)

    def submit(self) -> int:
        attrs = dict(vars(self))
        script = attrs.get("script")
        if not script:
            raise ValueError("You need to provide a batch script.")
        body = Path(script).read_text() if Path(script).is_file() else str(script)
        if not body.startswith("#!"):
            raise ValueError("Not a valid Batch script. First line must start with '#!'")
        if "\0" in body or "\r\n" in body:
            raise ValueError("Batch script contains NUL or DOS line breaks")
        CONTROLLER.check("JobSubmitDescription.submit")
        partition = attrs.get("partitions")
        if partition is not None and partition not in CONTROLLER.partitions:
            raise RPCError(ESLURM_INVALID_PARTITION_NAME, "Invalid partition name specified")
        CONTROLLER.next_id += 1
        job = Job(CONTROLLER.next_id)
        job.name = attrs.get("name")
        job.comment = attrs.get("comment")
        job.user_id = os.getuid()
        job.state = "PENDING"
        job.state_reason = "JobHeldUser" if attrs.get("priority") == 0 else "None"
        output = attrs.get("standard_output")
        job.standard_output = str(output).replace("%j", str(job.id)) if output else None
        CONTROLLER.jobs[job.id] = job
        CONTROLLER.descriptions[job.id] = attrs
        CONTROLLER.scripts[job.id] = body
        return job.id


class JobFilter:
    """pyslurm.db.JobFilter (the attributes the client sets)."""

    def __init__(
        self,
        ids: list[int] | None = None,
        names: list[str] | None = None,
        users: list[int | str] | None = None,
        start_time: Any = None,
        **kwargs: Any,
    ) -> None:
        self.ids = ids
        self.names = names
        self.users = users
        self.start_time = start_time
        for key, value in kwargs.items():
            setattr(self, key, value)


class DbJobs(dict[int, Job]):
    """pyslurm.db.Jobs: ``load(db_filter)`` from the accounting database."""

    @staticmethod
    def load(db_filter: JobFilter | None = None, db_connection: Any = None) -> DbJobs:
        CONTROLLER.check("db.Jobs.load")
        selected = {}
        for job_id, job in CONTROLLER.db_jobs.items():
            if db_filter is not None:
                if db_filter.ids is not None and job_id not in db_filter.ids:
                    continue
                if db_filter.names is not None and job.name not in db_filter.names:
                    continue
                if db_filter.users is not None and job.user_id not in db_filter.users:
                    continue
            selected[job_id] = _copy(job)
        return DbJobs(selected)


db = SimpleNamespace(Jobs=DbJobs, JobFilter=JobFilter, Job=Job)


@dataclass
class PingResponse:
    """pyslurm.slurmctld.PingResponse (the attributes the client reads)."""

    hostname: str
    is_primary: bool = True
    is_responding: bool = True
    index: int = 0
    latency: float = 0.1


def _ping_primary() -> PingResponse:
    CONTROLLER.check("slurmctld.ping_primary")
    return PingResponse(hostname="localhost")


slurmctld = SimpleNamespace(ping_primary=_ping_primary, PingResponse=PingResponse)


def _copy(job: Job) -> Job:
    clone = Job(job.id)
    clone.__dict__.update(job.__dict__)
    return clone
