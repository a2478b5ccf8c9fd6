"""Where simulations run: adapters behind the ``Backend`` protocol (``backends.base``).

``backends.kubernetes`` runs a batch/v1 Job per SimJob; ``backends.slurm`` a Slurm
job on a SlurmCluster through ``slurm_bridge``. Backends return results and
observations; they never write SimJob status or post Events (``controller`` does).
Above ``kube``; imports nothing from ``controller``.
"""

from simjob_operator.backends.base import (
    Backend,
    Rejected,
    RetryAfter,
    SubmitResult,
    Submitted,
)

__all__ = ["Backend", "Rejected", "RetryAfter", "SubmitResult", "Submitted"]
