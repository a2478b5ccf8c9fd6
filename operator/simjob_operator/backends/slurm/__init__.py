"""The Slurm backend: one Slurm job per SimJob, through ``slurm_bridge``.

``backend`` (the adapter), ``jobs`` (pure translations), ``sites`` (SlurmClusters and
their clients), ``poller`` (one batched poller per cluster), ``supervisor`` (the
pollers' task), ``reachability`` (the Reachable condition).
"""
