"""Every reason the operator writes: ``status.reason``, condition reasons, Events.

One ``Reason`` enum (a ``StrEnum``, so a member is its CamelCase string in JSON and
YAML); no reason is spelled as a string literal anywhere else in the operator.
Reasons that come from a backend as they are (a pod's ``ImagePullBackOff``, a Slurm
pending reason) are passed through as plain strings and are not listed here.
Neighbours: ``api.names`` (kinds, labels), ``core.phases`` (which reason goes with
which phase).
"""

import enum


class Reason(enum.StrEnum):
    # Admission.
    WAITING_FOR_SLOT = "WaitingForSlot"
    ADMITTED = "SlotAvailable"
    UNKNOWN_TIER = "UnknownTier"
    RUNTIME_ABOVE_TIER = "RuntimeAboveTierLimit"
    INVALID_SPEC = "InvalidSpec"
    BACKEND_UNAVAILABLE = "BackendUnavailable"
    # Running.
    STARTING = "Starting"  # admitted; the backend object exists but has not started
    STARTED = "Started"  # the simulation runs
    UNSCHEDULABLE = "Unschedulable"  # admitted, but the backend could not start it in time
    # Endings.
    COMPLETED = "Completed"
    ERROR = "Error"  # the simulation failed without a more specific reason
    OOM_KILLED = "OOMKilled"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    CANCEL_REQUESTED = "CancelRequested"
    DELETED = "Deleted"  # the SimJob was deleted before it finished
    BACKEND_LOST = "BackendObjectLost"
    RUN_IN_PROGRESS = "RunInProgress"  # concurrencyPolicy Forbid: an older run of its runKey
    REPLACED = "Replaced"  # concurrencyPolicy Replace: a newer run of its runKey cancelled it
    REUSED = "Reused"  # reuse IfSucceeded: a Succeeded run with the same inputs stands for it
    REFUSED = "RefusedByAPIServer"  # a permanent 4xx from the API server (e.g. 422 Invalid)
    INVALID_INPUTS = "InvalidInputs"  # Slurm: an input file name, size or Secret refused
    INPUT_NOT_FOUND = "InputNotFound"  # Slurm: a ConfigMap/Secret (key) still missing
    # Slurm.
    UNKNOWN_SLURM_CLUSTER = "UnknownSlurmCluster"
    INVALID_SLURM_CREDENTIALS = "InvalidSlurmCredentials"
    SLURM_REJECTED = "SlurmRejected"
    CANCELLED_IN_SLURM = "CancelledInSlurm"
    SLURM_REACHABLE = "SlurmAnswered"
    SLURM_UNREACHABLE = "SlurmUnavailable"
    SLURM_CONFIG = "ConfigurationError"
    SLURM_UNSATISFIABLE = "SlurmUnsatisfiable"  # no node of the partition can ever run it
    CREDENTIALS_EXPIRED = "CredentialsExpired"  # an SSH certificate past its validBefore
    CREDENTIALS_VALID = "CredentialsValid"


# status.reason while the operator stops a run it was asked to stop (and of its ending).
STOP_REASONS = frozenset({Reason.CANCEL_REQUESTED, Reason.REPLACED, Reason.DELETED})
