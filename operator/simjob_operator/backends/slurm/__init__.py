"""The Slurm backend: one Slurm job per SimJob, through ``slurm_bridge``.

``backend`` (the adapter), ``jobs`` (pure translations), ``sites`` (SlurmClusters and
their clients), ``credentials`` (logins and their Secrets), ``poller`` (one batched
poller per cluster), ``supervisor`` (the pollers' task), ``reachability`` (the client
wrapper that sets the Reachable condition, and its status writer).
"""
