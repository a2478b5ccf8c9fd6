"""The operator's timings and limits, in one typed place.

``Settings`` groups what used to be scattered constants: the level-triggered loops
(``Timings``), the work queue and API client (``Limits``), the Slurm backend
(``SlurmTimings``) and the removal of expired outputs (``Retention``). ``DEFAULT`` is
what production runs with; ``controller.runtime`` takes a ``Settings`` (tests inject
shorter ones) and hands the parts each component needs to it. The few settings an
installation chooses come from the operator's environment (the Helm chart sets them):
``retention_from_env`` reads them from a mapping it is given. Pure; no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

# The removal Job's image and pull policy (the chart's outputsRemoval values).
ENV_REMOVAL_IMAGE = "SIMJOB_OUTPUTS_REMOVAL_IMAGE"
ENV_REMOVAL_PULL_POLICY = "SIMJOB_OUTPUTS_REMOVAL_PULL_POLICY"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


@dataclasses.dataclass(frozen=True)
class Timings:
    """The level-triggered loops (seconds)."""

    # Re-observe an unfinished SimJob that nothing looked at for this long (watches are
    # the way changes arrive; this only heals a missed event). The loop ticks every
    # resync_tick and costs no API call for a SimJob whose Job the watch delivered.
    resync_interval: float = 120.0
    resync_tick: float = 10.0
    admission_resync: float = 10.0  # admission re-evaluates while anything waits
    stop_poll: float = 1.0  # re-check a cancel or delete until the backend object is gone
    unknown_tier_grace: float = 5.0  # a SimJob may be applied just before its SimTier
    # A stalled watch is re-established after this (an int: it becomes ?timeoutSeconds=).
    watch_server_timeout: int = 300
    watch_client_timeout: int = 330
    cleanup_timeout: float = 300.0  # on.delete stops waiting (GC still removes the Job)
    # on.delete retries after an error (Slurm unreachable: its job may still run)
    cleanup_retry: float = 10.0


@dataclasses.dataclass(frozen=True)
class Limits:
    """Concurrency of the operator and its API client."""

    reconcile_workers: int = 16
    api_pool_size: int = 64  # connections (and threads) toward the API server
    api_connect_timeout: float = 5.0
    api_read_timeout: float = 30.0
    max_conflicts: int = 5  # 409s in a row before a reconcile is retried later
    queue_head: int = 3  # a waiting SimJob's position is written again when it gets here
    # Client-side rate limit toward the API server (client-go's controllers use 20/30).
    api_qps: float = 50.0
    api_burst: int = 100
    api_429_retries: int = 3


@dataclasses.dataclass(frozen=True)
class SlurmTimings:
    """The Slurm backend (seconds)."""

    early_poll_delay: float = 0.3  # new job ids are polled after this (batched)
    cluster_resync: float = 15.0  # SlurmClusters are re-listed this often
    credentials_ttl: float = 60.0  # Secrets are re-read after this
    cancel_confirm: float = 5.0  # one cancel attempt waits this long for Slurm
    cancel_poll_interval: float = 0.25
    command_timeout: float = 30.0
    unwanted_cancel_attempts: int = 4  # scancel of a job whose SimJob went away


@dataclasses.dataclass(frozen=True)
class Retention:
    """Removing expired outputs (``controller.retention``)."""

    # The image of the Job that removes a run's sub-path from a claim (busybox's sh and
    # rm) and its imagePullPolicy; $SIMJOB_OUTPUTS_REMOVAL_IMAGE and
    # $SIMJOB_OUTPUTS_REMOVAL_PULL_POLICY override them (the chart's outputsRemoval
    # values, e.g. a mirror in an air-gapped registry).
    removal_image: str = "docker.io/library/busybox:1.37"
    removal_pull_policy: str = "IfNotPresent"
    removal_poll: float = 2.0  # a running removal Job is looked at this often


@dataclasses.dataclass(frozen=True)
class Settings:
    timings: Timings = dataclasses.field(default_factory=Timings)
    limits: Limits = dataclasses.field(default_factory=Limits)
    slurm: SlurmTimings = dataclasses.field(default_factory=SlurmTimings)
    retention: Retention = dataclasses.field(default_factory=Retention)


DEFAULT = Settings()


def retention_from_env(retention: Retention, env: Mapping[str, str]) -> Retention:
    """``retention`` with the removal Job's image and pull policy from ``env`` (unset or
    empty keeps the value). Raises ``ValueError`` for a pull policy Kubernetes would
    refuse, so the operator stops at start instead of failing every removal."""
    image = env.get(ENV_REMOVAL_IMAGE, "").strip() or retention.removal_image
    policy = env.get(ENV_REMOVAL_PULL_POLICY, "").strip() or retention.removal_pull_policy
    if policy not in PULL_POLICIES:
        raise ValueError(
            f"${ENV_REMOVAL_PULL_POLICY} is {policy!r}; it must be one of "
            f"{', '.join(PULL_POLICIES)}"
        )
    return dataclasses.replace(retention, removal_image=image, removal_pull_policy=policy)
