"""Names shared by every module: API group, kinds, labels, finalizer, reasons.

Nothing here imports from the rest of the package; ``models`` (the API),
``phases`` (the state machine) and the handlers read their identifiers from here
so that a label or a reason is spelled in exactly one place.
"""

from typing import Final

GROUP: Final = "simjob.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

SIMJOB_KIND: Final = "SimJob"
SIMJOB_PLURAL: Final = "simjobs"
SIMJOB_SINGULAR: Final = "simjob"
SIMJOB_SHORT_NAMES: Final = ("sj",)

SIMTIER_KIND: Final = "SimTier"
SIMTIER_PLURAL: Final = "simtiers"
SIMTIER_SINGULAR: Final = "simtier"
SIMTIER_SHORT_NAMES: Final = ("st",)

# Everything the operator owns carries these labels; keys under the group are
# reserved and users may not set them through spec.podMetadata.
RESERVED_PREFIX: Final = f"{GROUP}/"
LABEL_NAME: Final = f"{GROUP}/name"
LABEL_OWNER: Final = f"{GROUP}/owner"
LABEL_TIER: Final = f"{GROUP}/tier"
LABEL_UID: Final = f"{GROUP}/uid"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "simjob-operator"

FINALIZER: Final = f"{GROUP}/cleanup"
# kopf keeps its own progress in annotations under this prefix (never in status).
KOPF_ANNOTATION_PREFIX: Final = f"kopf.{GROUP}"

FIELD_MANAGER: Final = "simjob-operator"
CONTAINER_NAME: Final = "simulation"

# Condition types (status.conditions[].type).
COND_ADMITTED: Final = "Admitted"
COND_RUNNING: Final = "Running"
COND_FINISHED: Final = "Finished"

# Reasons (conditions, events, status.phase explanations).
REASON_WAITING_FOR_SLOT: Final = "WaitingForSlot"
REASON_ADMITTED: Final = "SlotAvailable"
REASON_UNKNOWN_TIER: Final = "UnknownTier"
REASON_RUNTIME_ABOVE_TIER: Final = "RuntimeAboveTierLimit"
REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_BACKEND_UNAVAILABLE: Final = "BackendUnavailable"
REASON_CANCEL_REQUESTED: Final = "CancelRequested"
REASON_DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
REASON_COMPLETED: Final = "Completed"
REASON_BACKEND_LOST: Final = "BackendObjectLost"

# Kubernetes backend.
GPU_RESOURCE: Final = "nvidia.com/gpu"
JOB_NAME_PREFIX: Final = "sj-"

# Hard ceiling the CRD schema can enforce without knowing the tier: 31 days.
MAX_RUNTIME_SECONDS_CEILING: Final = 31 * 24 * 3600

# Name limits the CRDs enforce (CEL on metadata.name): a SimJob's name becomes
# the label value simjob.io/name and, behind JOB_NAME_PREFIX, its Job's name —
# both capped at 63 characters; a SimTier's name becomes the label simjob.io/tier.
LABEL_VALUE_MAX_LENGTH: Final = 63
SIMJOB_NAME_MAX_LENGTH: Final = LABEL_VALUE_MAX_LENGTH - len(JOB_NAME_PREFIX)
SIMTIER_NAME_MAX_LENGTH: Final = LABEL_VALUE_MAX_LENGTH
# spec.podMetadata.labels / .annotations: bounded so the CEL rules that iterate
# their keys stay inside the API server's cost budget.
POD_METADATA_MAX_ENTRIES: Final = 64

# --------------------------------------------------------------------------- operator runtime
# (added by the operator-runtime work; see docs/operator.md)

# More reasons (status.reason, condition reasons, event reasons).
REASON_STARTING: Final = "Starting"  # admitted; the backend object exists but has not started
REASON_STARTED: Final = "Started"  # the simulation runs
REASON_ERROR: Final = "Error"  # the simulation failed without a more specific reason
REASON_DELETED: Final = "Deleted"  # the SimJob was deleted before it finished
REASON_OOM_KILLED: Final = "OOMKilled"

# Labels and values the batch/v1 Job controller puts on the pods of a Job.
POD_LABEL_CONTROLLER_UID: Final = "batch.kubernetes.io/controller-uid"
POD_LABEL_JOB_NAME: Final = "batch.kubernetes.io/job-name"
JOB_KIND: Final = "Job"
JOB_API_VERSION: Final = "batch/v1"
BACKEND_KUBERNETES: Final = "kubernetes"
BACKEND_SLURM: Final = "slurm"

# The restricted Pod Security Standard wants a non-root user; this is the
# conventional "nonroot" uid of distroless images.
POD_RUN_AS_USER: Final = 65532

# kopf handler ids (they appear in kopf's progress annotations and in logs).
HANDLER_RESYNC: Final = "resync"
HANDLER_CLEANUP: Final = "cleanup"
HANDLER_JOB_EVENT: Final = "job-event"
HANDLER_SIMJOB_EVENT: Final = "simjob-event"
HANDLER_TIER_EVENT: Final = "tier-event"

# Timing of the level-triggered loops (seconds).
RESYNC_INTERVAL_SECONDS: Final = 10.0  # kopf timer per SimJob: re-observe the backend
RESYNC_IDLE_SECONDS: Final = 5.0  # ...but only when the SimJob has been quiet this long
ADMISSION_RESYNC_SECONDS: Final = 10.0  # admission re-evaluates while anything waits
STOP_POLL_SECONDS: Final = 1.0  # re-check a cancel or delete until the backend object is gone
UNKNOWN_TIER_GRACE_SECONDS: Final = 5.0  # a SimJob may be applied just before its SimTier
# A stalled watch is re-established after this (an int: it becomes ?timeoutSeconds=).
WATCH_SERVER_TIMEOUT_SECONDS: Final = 300
WATCH_CLIENT_TIMEOUT_SECONDS: Final = 330
CLEANUP_TIMEOUT_SECONDS: Final = 300.0  # on.delete stops waiting (GC still removes the Job)
# on.delete retries after an error (Slurm unreachable: its job may still run); kopf's is 60 s
CLEANUP_RETRY_SECONDS: Final = 10.0
RECONCILE_WORKERS: Final = 16
EVENT_REPORTING_CONTROLLER: Final = "simjob.io/operator"

# --------------------------------------------------------------------------- deployment
# (added by the Helm chart work; see docs/helm.md)

# The namespaces the operator serves, comma-separated; unset or empty: all. Set by
# `simjob-operator -n NAME ...` (main.cli) from exact names; the admission pass then
# LISTs SimJobs only there, so an operator limited to some namespaces (and a Role in
# each) never reads or admits SimJobs elsewhere.
ENV_WATCH_NAMESPACES: Final = "SIMJOB_WATCH_NAMESPACES"

# --------------------------------------------------------------------------- Slurm backend
# (added by the Slurm backend work; see docs/slurm.md)

SLURMCLUSTER_KIND: Final = "SlurmCluster"
SLURMCLUSTER_PLURAL: Final = "slurmclusters"
SLURMCLUSTER_SINGULAR: Final = "slurmcluster"
SLURMCLUSTER_SHORT_NAMES: Final = ("slc",)
SLURM_JOB_KIND: Final = "SlurmJob"  # status.backendRef.kind
# The Slurm job name of a SimJob: SLURM_MARKER_PREFIX + its uid (unique, what find() looks up).
SLURM_MARKER_PREFIX: Final = "simjob-"
COND_REACHABLE: Final = "Reachable"  # SlurmCluster status.conditions[].type

# Keys of the Secrets a SlurmCluster or a SimJob names (ssh-privatekey as in the
# kubernetes.io/ssh-auth Secret type).
SECRET_KEY_PRIVATE_KEY: Final = "ssh-privatekey"
SECRET_KEY_KNOWN_HOSTS: Final = "known_hosts"
SECRET_KEY_USERNAME: Final = "username"  # optional, per-user Secrets: the site login
SECRET_KEY_WORK_DIR: Final = "workDir"  # optional, per-user Secrets: that user's workDir

# Reasons of the Slurm backend.
REASON_UNKNOWN_SLURM_CLUSTER: Final = "UnknownSlurmCluster"
REASON_INVALID_SLURM_CREDENTIALS: Final = "InvalidSlurmCredentials"
REASON_SLURM_REJECTED: Final = "SlurmRejected"
REASON_CANCELLED_IN_SLURM: Final = "CancelledInSlurm"
REASON_SLURM_REACHABLE: Final = "SlurmAnswered"
REASON_SLURM_UNREACHABLE: Final = "SlurmUnavailable"
REASON_SLURM_CONFIG: Final = "ConfigurationError"

# Timing of the Slurm backend (seconds).
SLURM_EARLY_POLL_DELAY_SECONDS: Final = 0.3  # new job ids are polled after this (batched)
SLURM_CLUSTER_RESYNC_SECONDS: Final = 15.0  # SlurmClusters are re-listed this often
SLURM_CREDENTIALS_TTL_SECONDS: Final = 60.0  # Secrets are re-read after this
SLURM_CANCEL_CONFIRM_SECONDS: Final = 5.0  # one cancel attempt waits this long for Slurm
SLURM_COMMAND_TIMEOUT_SECONDS: Final = 30.0
# A test hook: when this variable is "<namespace>/<name>" of a SimJob, the operator exits
# (os._exit) right after sbatch returned its job and before the job id is written, like a
# kill -9 at the worst moment.
ENV_CRASH_AFTER_SBATCH: Final = "SIMJOB_TEST_CRASH_AFTER_SBATCH"
