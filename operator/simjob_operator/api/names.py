"""Names of the SimJob API: group, kinds, labels, finalizer, limits.

The bottom of the operator's layers (``api`` < ``core`` < ``kube`` < ``backends`` <
``controller``): nothing here imports from the rest of the package. The pydantic
models (``api.simjob``, ``api.simtier``, ``api.slurmcluster``), the phase machine
(``core.phases``) and every backend read their identifiers from here, so that a
label or a kind is spelled in exactly one place. Reasons live beside it in
``api.reasons``; timings and limits of the running operator in ``core.settings``.
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

SLURMCLUSTER_KIND: Final = "SlurmCluster"
SLURMCLUSTER_PLURAL: Final = "slurmclusters"
SLURMCLUSTER_SINGULAR: Final = "slurmcluster"
SLURMCLUSTER_SHORT_NAMES: Final = ("slc",)

SIMUSAGE_KIND: Final = "SimUsage"
SIMUSAGE_PLURAL: Final = "simusages"
SIMUSAGE_SINGULAR: Final = "simusage"
SIMUSAGE_SHORT_NAMES: Final = ("su",)

# Everything the operator owns carries these labels; keys under the group are
# reserved and users may not set them through spec.podMetadata.
RESERVED_PREFIX: Final = f"{GROUP}/"
LABEL_NAME: Final = f"{GROUP}/name"
LABEL_OWNER: Final = f"{GROUP}/owner"
LABEL_TIER: Final = f"{GROUP}/tier"
LABEL_UID: Final = f"{GROUP}/uid"
LABEL_PERIOD: Final = f"{GROUP}/period"  # SimUsage: the day (YYYY-MM-DD, UTC)
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "simjob-operator"

FINALIZER: Final = f"{GROUP}/cleanup"
# Set with spec.cancel by the run that replaced this one (concurrencyPolicy Replace).
ANNOTATION_REPLACED_BY: Final = f"{GROUP}/replaced-by"
# kopf keeps its own progress in annotations under this prefix (never in status).
KOPF_ANNOTATION_PREFIX: Final = f"kopf.{GROUP}"

FIELD_MANAGER: Final = "simjob-operator"
CONTAINER_NAME: Final = "simulation"
EVENT_REPORTING_CONTROLLER: Final = "simjob.io/operator"

# Condition types (status.conditions[].type).
COND_ADMITTED: Final = "Admitted"
COND_RUNNING: Final = "Running"
COND_FINISHED: Final = "Finished"
COND_REACHABLE: Final = "Reachable"  # SlurmCluster
COND_CREDENTIALS_EXPIRED: Final = "CredentialsExpired"  # SlurmCluster with a certificate

# Backends (spec.backend) and the kinds of their objects (status.backendRef.kind).
BACKEND_KUBERNETES: Final = "kubernetes"
BACKEND_SLURM: Final = "slurm"
JOB_KIND: Final = "Job"
JOB_API_VERSION: Final = "batch/v1"
SLURM_JOB_KIND: Final = "SlurmJob"

# Kubernetes backend.
GPU_RESOURCE: Final = "nvidia.com/gpu"
JOB_NAME_PREFIX: Final = "sj-"
# Labels the batch/v1 Job controller puts on the pods of a Job.
POD_LABEL_CONTROLLER_UID: Final = "batch.kubernetes.io/controller-uid"
POD_LABEL_JOB_NAME: Final = "batch.kubernetes.io/job-name"
# The restricted Pod Security Standard wants a non-root user; this is the
# conventional "nonroot" uid of distroless images.
POD_RUN_AS_USER: Final = 65532

# Slurm backend: a SimJob's Slurm job name is SLURM_MARKER_PREFIX + its uid (unique,
# what SlurmClient.find looks up, so a job submitted before a crash is adopted).
SLURM_MARKER_PREFIX: Final = "simjob-"
# Keys of the Secrets a SlurmCluster or a SimJob names (ssh-privatekey as in the
# kubernetes.io/ssh-auth Secret type).
SECRET_KEY_PRIVATE_KEY: Final = "ssh-privatekey"
SECRET_KEY_KNOWN_HOSTS: Final = "known_hosts"
SECRET_KEY_USERNAME: Final = "username"  # optional, per-user Secrets: the site login
SECRET_KEY_WORK_DIR: Final = "workDir"  # optional, per-user Secrets: that user's workDir
# optional: an OpenSSH certificate of ssh-privatekey (``ssh-keygen -s``, sshproxy's *-cert.pub)
SECRET_KEY_CERTIFICATE: Final = "ssh-certificate"

# Hard ceiling the CRD schema can enforce without knowing the tier: 31 days.
MAX_RUNTIME_SECONDS_CEILING: Final = 31 * 24 * 3600
# How long an admitted SimJob may wait on its backend without starting, when its tier
# does not say (SimTier spec.maxPendingSeconds).
DEFAULT_MAX_PENDING_SECONDS: Final = 600
# Name limits the CRDs enforce (CEL on metadata.name): a SimJob's name becomes
# the label value simjob.io/name and, behind JOB_NAME_PREFIX, its Job's name —
# both capped at 63 characters; a SimTier's name becomes the label simjob.io/tier.
LABEL_VALUE_MAX_LENGTH: Final = 63
SIMJOB_NAME_MAX_LENGTH: Final = LABEL_VALUE_MAX_LENGTH - len(JOB_NAME_PREFIX)
SIMTIER_NAME_MAX_LENGTH: Final = LABEL_VALUE_MAX_LENGTH
# spec.podMetadata.labels / .annotations: bounded so the CEL rules that iterate
# their keys stay inside the API server's cost budget.
POD_METADATA_MAX_ENTRIES: Final = 64

# kopf handler ids (they appear in kopf's progress annotations and in logs).
HANDLER_RESYNC: Final = "resync"
HANDLER_CLEANUP: Final = "cleanup"
HANDLER_JOB_EVENT: Final = "job-event"
HANDLER_SIMJOB_EVENT: Final = "simjob-event"
HANDLER_TIER_EVENT: Final = "tier-event"

# The namespaces the operator serves, comma-separated; unset or empty: all. Set by
# `simjob-operator -n NAME ...` (main.cli) from exact names; the admission pass then
# reads SimJobs only there.
ENV_WATCH_NAMESPACES: Final = "SIMJOB_WATCH_NAMESPACES"
