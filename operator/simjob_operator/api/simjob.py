"""The SimJob API (namespaced, ``sj``): what to run, and what happened.

``SimJobSpec`` (tier, owner, backend, image, command, env, podMetadata, slurm,
cancel) and ``SimJobStatus`` (phase, conditions, the ``Grant`` recorded at
admission, the backend reference, usage). Cross-field rules the API server can
check live here as CEL: every spec field but ``cancel`` is immutable (transition
rules), the program and the total size of command, args and env are bounded; the
env and podMetadata models and their rules are in ``api.pod``. Rules that need other
objects (the tier) are checked by the operator (``core.validation``). Built on
``api.base``; CRD by ``api.crd_generation``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, JsonValue

from simjob_operator.api.base import (
    DNS_SUBDOMAIN_PATTERN,
    MAX_ARG_LENGTH,
    MAX_TOTAL_ARGV_ENV,
    NO_CONTROL_EXCEPT_TAB_NEWLINE_PATTERN,
    NO_CONTROL_RULE,
    NO_SPACE_OR_CONTROL_RULE,
    SLURM_NAME_PATTERN,
    ApiModel,
    cel,
)
from simjob_operator.api.data import (
    INPUT_DIR,
    MAX_INPUTS,
    WORKSPACE_DIR,
    InputSource,
    WorkspaceSpec,
)
from simjob_operator.api.names import (
    MAX_RUNTIME_SECONDS_CEILING,
    SIMJOB_NAME_MAX_LENGTH,
    SIMTIER_NAME_MAX_LENGTH,
)
from simjob_operator.api.pod import EnvVar as EnvVar
from simjob_operator.api.pod import PodMetadata as PodMetadata
from simjob_operator.api.status import BackendRef as BackendRef
from simjob_operator.api.status import Condition as Condition
from simjob_operator.api.status import Grant as Grant
from simjob_operator.api.status import Resources as Resources
from simjob_operator.api.status import SimJobStatus as SimJobStatus
from simjob_operator.api.status import Usage as Usage

# --------------------------------------------------------------------------- SimJob


class LocalSecretRef(ApiModel):
    """A Secret in the SimJob's own namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the Secret.",
    )


class SimJobSlurmSpec(ApiModel):
    """Where and how a SimJob with backend slurm runs."""

    cluster: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the SlurmCluster to run on.",
    )
    partition: str | None = Field(
        default=None,
        max_length=64,
        pattern=SLURM_NAME_PATTERN,
        description="Slurm partition; overrides the tier's.",
    )
    qos: str | None = Field(
        default=None,
        max_length=64,
        pattern=SLURM_NAME_PATTERN,
        description="Slurm quality of service; overrides the tier's.",
    )
    account: str | None = Field(
        default=None,
        max_length=64,
        pattern=SLURM_NAME_PATTERN,
        description="Slurm account charged for the job; overrides the tier's.",
    )
    credentials_secret_ref: LocalSecretRef | None = Field(
        default=None,
        description="A Secret in this namespace with the user's own SSH key "
        "(key ssh-privatekey; optional keys username and workDir): the job runs under that "
        "site account instead of the SlurmCluster's. Needs a SlurmCluster in ssh mode.",
    )


IMMUTABLE = "is immutable: create a new SimJob (only spec.cancel may change)"
# Characters of command, args and env names and values (CEL on SimJobSpec).
_TOTAL_ARGV_ENV = (
    "(self.command.map(c, c.size()).sum()"
    " + (has(self.args) ? self.args.map(a, a.size()).sum() : 0)"
    " + (has(self.env) ? self.env.map(e, e.name.size()"
    " + (has(e.value) ? e.value.size() : 0)).sum() : 0))"
)


def _immutable(name: str) -> dict[str, JsonValue]:
    return cel("self == oldSelf", f"spec.{name} {IMMUTABLE}")


def _added_or_removed(name: str) -> str:
    return (
        f"spec.{name} cannot be added or removed after creation: create a new SimJob "
        "(only spec.cancel may change)"
    )


class SimJobSpec(ApiModel):
    """What to run, on which tier and backend, and whether to cancel it."""

    # The field rule on owner only runs when old and new both have it; this one
    # also forbids adding or removing it (either would change the slot identity).
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.reuse != 'IfSucceeded' || (has(self.runKey) && has(self.inputHash))",
                    "reuse IfSucceeded needs spec.runKey and spec.inputHash",
                ),
                cel(
                    "has(self.owner) == has(oldSelf.owner)",
                    "owner cannot be added or removed after creation",
                ),
                cel(
                    "self.backend != 'slurm' || has(self.slurm)",
                    "spec.slurm (with its cluster) is required when backend is slurm",
                ),
                *(
                    cel(f"has(self.{name}) == has(oldSelf.{name})", _added_or_removed(name))
                    for name in (
                        "image",
                        "workingDir",
                        "maxRuntimeSeconds",
                        "podMetadata",
                        "slurm",
                        "workspace",
                        "runKey",
                        "inputHash",
                    )
                ),
                *(
                    cel(
                        f"(has(self.{name}) ? self.{name} : []) == "
                        f"(has(oldSelf.{name}) ? oldSelf.{name} : [])",
                        f"spec.{name} {IMMUTABLE}",
                    )
                    for name in ("args", "env", "inputs")  # absent and [] are the same list
                ),
                cel(
                    "size(self.command) == 0 || "
                    + NO_CONTROL_RULE.replace("self", "self.command[0]"),
                    "spec.command[0], the program, must not contain control characters",
                ),
                cel(
                    f"{_TOTAL_ARGV_ENV} <= {MAX_TOTAL_ARGV_ENV}",
                    f"command, args and env (names and values) together must be at most "
                    f"{MAX_TOTAL_ARGV_ENV} characters (1 MiB); pass large inputs as files",
                ),
            ],
        },
    )

    tier: str = Field(
        min_length=1,
        max_length=SIMTIER_NAME_MAX_LENGTH,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the SimTier that sets resources and limits. Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [_immutable("tier")],
        },
    )
    owner: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description="Identity used for slots and accounting; defaults to the namespace. "
        "Immutable once set.",
        json_schema_extra={
            "x-kubernetes-validations": [_immutable("owner")],
        },
    )
    backend: Literal["kubernetes", "slurm"] = Field(
        default="kubernetes",
        description="Where the simulation runs: kubernetes (a batch/v1 Job) or slurm. Immutable.",
        json_schema_extra={
            "maxLength": 16,  # bounds the CEL rule's cost (the enum alone does not)
            "x-kubernetes-validations": [_immutable("backend")],
        },
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Container image; required when backend is kubernetes. No whitespace "
        "or control characters. Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    NO_SPACE_OR_CONTROL_RULE,
                    "image must not contain whitespace or control characters",
                ),
                _immutable("image"),
            ],
        },
    )
    command: list[str] = Field(
        min_length=1,
        max_length=256,
        description="The program and its first arguments (argv, never a shell string); "
        f"each at most {MAX_ARG_LENGTH} characters, no NUL or control characters but tab "
        "and newline (none in the program). Immutable.",
        json_schema_extra={
            "items": {
                "minLength": 1,
                "maxLength": MAX_ARG_LENGTH,
                "pattern": NO_CONTROL_EXCEPT_TAB_NEWLINE_PATTERN,
            },
            "x-kubernetes-validations": [_immutable("command")],
        },
    )
    args: list[str] = Field(
        default_factory=list,
        max_length=4096,
        description=f"Further arguments after command; each at most {MAX_ARG_LENGTH} "
        "characters, no NUL or control characters but tab and newline. Immutable.",
        json_schema_extra={
            "items": {
                "maxLength": MAX_ARG_LENGTH,
                "pattern": NO_CONTROL_EXCEPT_TAB_NEWLINE_PATTERN,
            },
            "x-kubernetes-validations": [_immutable("args")],
        },
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=1024,
        description="Environment variables for the simulation. Immutable.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "x-kubernetes-validations": [_immutable("env")],
        },
    )
    working_dir: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="Working directory of the simulation; no control characters. Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(NO_CONTROL_RULE, "workingDir must not contain control characters"),
                _immutable("workingDir"),
            ],
        },
    )
    max_runtime_seconds: int | None = Field(
        default=None,
        gt=0,
        le=MAX_RUNTIME_SECONDS_CEILING,
        description="Wall-time limit in seconds; at most the tier's maxRuntimeSeconds, "
        "which is also the default. Immutable.",
        json_schema_extra={"x-kubernetes-validations": [_immutable("maxRuntimeSeconds")]},
    )
    pod_metadata: PodMetadata | None = Field(
        default=None,
        description="Labels and annotations for the pod (kubernetes backend). Immutable.",
        json_schema_extra={"x-kubernetes-validations": [_immutable("podMetadata")]},
    )
    slurm: SimJobSlurmSpec | None = Field(
        default=None,
        description="The SlurmCluster and site options (backend slurm). Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [_immutable("slurm")],
        },
    )
    run_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description="The simulation this run belongs to (e.g. user-simulation-model): at "
        "most one unfinished SimJob per runKey in a namespace, as concurrencyPolicy says.",
        json_schema_extra={"x-kubernetes-validations": [_immutable("runKey")]},
    )
    concurrency_policy: Literal["Replace", "Forbid"] = Field(
        default="Replace",
        max_length=16,
        description="With a runKey: Replace (the default; a newer SimJob with the same "
        "runKey cancels the older unfinished one: the user pressed Run again) or Forbid "
        "(the newer one fails with reason RunInProgress). Like a CronJob's policy.",
        json_schema_extra={"x-kubernetes-validations": [_immutable("concurrencyPolicy")]},
    )
    input_hash: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9_.:+/=-]+$",
        description="The gateway's hash of the inputs (Sirepo's computeJobHash): with reuse "
        "IfSucceeded, a Succeeded SimJob of the same runKey and inputHash is reused.",
        json_schema_extra={"x-kubernetes-validations": [_immutable("inputHash")]},
    )
    reuse: Literal["Never", "IfSucceeded"] = Field(
        default="Never",
        max_length=16,
        description="IfSucceeded: when a Succeeded SimJob with the same runKey and inputHash "
        "exists in the namespace, end Succeeded (reason Reused) at once, with no compute "
        "and no slot; status.reusedFrom names it. Never: always run (forceRun).",
        json_schema_extra={"x-kubernetes-validations": [_immutable("reuse")]},
    )
    cancel: bool = Field(
        default=False,
        description="Set to true to cancel: the operator stops the simulation and the "
        "SimJob ends Cancelled. Cannot be set back to false.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self || !oldSelf", "cancel cannot be set back to false once true"),
            ],
        },
    )
    inputs: list[InputSource] = Field(
        default_factory=list,
        max_length=MAX_INPUTS,
        description="Files for the simulation from ConfigMaps and Secrets of this namespace, "
        f"placed read-only under {INPUT_DIR} ($SIMJOB_INPUT_DIR); on Slurm, written into "
        "the run directory's inputs/ at submit.",
        json_schema_extra={
            "x-kubernetes-list-type": "atomic",
            "x-kubernetes-validations": [_immutable("inputs")],
        },
    )
    workspace: WorkspaceSpec | None = Field(
        default=None,
        description=f"Where outputs go (Kubernetes: a PersistentVolumeClaim at {WORKSPACE_DIR}, "
        "$SIMJOB_OUTPUT_DIR; default: the tier's). On Slurm the run directory is the "
        "workspace.",
        json_schema_extra={"x-kubernetes-validations": [_immutable("workspace")]},
    )


class SimJob(ApiModel):
    """A simulation run (namespaced)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.metadata.name.size() <= {SIMJOB_NAME_MAX_LENGTH}",
                    f"metadata.name must be at most {SIMJOB_NAME_MAX_LENGTH} characters "
                    "(its Job is named sj-<name> and labelled with it)",
                ),
            ],
        },
    )

    spec: SimJobSpec = Field(description="What to run.")
    status: SimJobStatus | None = Field(default=None, description="Observed state.")
