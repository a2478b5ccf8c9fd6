"""SimJob SDK: typed sync and async clients for the SimJob API, without the operator.

A science gateway installs ``simjob`` (no kopf) and writes::

    from simjob_sdk import SimJobClient, SimJobSpec
    client = SimJobClient(namespace="physics")
    job = client.submit(SimJobSpec(tier="basic", image="busybox:1.36",
                                   command=["echo", "hi"]), name="run-42")
    done = client.wait("run-42", on_change=lambda j: print(j.phase))

The models are the operator's own (``simjob_operator.api``, which imports only
pydantic); the operator's other layers are never imported. Modules: ``client``
(``SimJobClient``), ``aio`` (``AsyncSimJobClient``), ``errors`` (the exception tree),
``objects`` (what calls return), ``watching``, ``queueing``, ``logs``, ``slurm`` and
``runkeys`` (run keys on a spec, a rerun's spec), ``usage`` (the usage ledger), ``cli``
(the ``simjob`` command). See docs/sdk.md.
"""

from simjob_operator.api.simjob import (
    EnvVar,
    PodMetadata,
    SimJobSlurmSpec,
    SimJobSpec,
    SimJobStatus,
)
from simjob_sdk.aio import AsyncSimJobClient
from simjob_sdk.client import SimJobClient
from simjob_sdk.errors import (
    BackendUnavailable,
    Conflict,
    NotFound,
    Rejected,
    SimJobError,
    TimedOut,
)
from simjob_sdk.objects import Outputs, Progress, SimJobObject, WatchEvent
from simjob_sdk.slurm import SlurmAccess
from simjob_sdk.usage import UsageRecord, UsageReport, UsageTotals

__all__ = [
    "AsyncSimJobClient",
    "BackendUnavailable",
    "Conflict",
    "EnvVar",
    "NotFound",
    "Outputs",
    "PodMetadata",
    "Progress",
    "Rejected",
    "SimJobClient",
    "SimJobError",
    "SimJobObject",
    "SimJobSlurmSpec",
    "SimJobSpec",
    "SimJobStatus",
    "SlurmAccess",
    "TimedOut",
    "UsageRecord",
    "UsageReport",
    "UsageTotals",
    "WatchEvent",
]
