"""The simulation's data in the API: inputs, the workspace, progress.

``InputSource`` (``spec.inputs[]``): a ConfigMap or a Secret of the SimJob's namespace,
whole or chosen keys, placed read-only under ``INPUT_DIR``. ``WorkspaceSpec``
(``spec.workspace``, defaulted by the tier's ``workspace``): on Kubernetes a
PersistentVolumeClaim mounted read-write at ``WORKSPACE_DIR`` with a sub-path unique to
the run; on Slurm the run directory under the SlurmCluster's workDir. ``Progress`` and
``WorkspaceStatus`` are what status reports. Built on ``api.base``; used by
``api.simjob`` (the fields), ``api.simtier`` (the defaults) and the backends.
"""

from __future__ import annotations

from typing import Final

from pydantic import ConfigDict, Field

from simjob_operator.api.base import DNS_SUBDOMAIN_PATTERN, ApiModel, cel

INPUT_DIR: Final = "/simjob/inputs"
WORKSPACE_DIR: Final = "/simjob/workspace"
# A file name an input may be placed under: one path component, no dot-dot, no
# leading dash, no control characters (the same rule on both backends).
INPUT_FILE_PATTERN: Final = r"^[A-Za-z0-9_][A-Za-z0-9_.,+=@-]{0,127}$"
MAX_INPUTS: Final = 16
MAX_INPUT_ITEMS: Final = 64
# The bytes of all inputs of one SimJob together (ConfigMaps and Secrets are themselves
# limited to 1 MiB each by the API server); checked by the operator, which reads them.
MAX_INPUT_BYTES: Final = 4 * 1024 * 1024


class KeyToPath(ApiModel):
    """One key of a ConfigMap or Secret, as a file."""

    key: str = Field(min_length=1, max_length=253, description="The key in the object.")
    path: str | None = Field(
        default=None,
        pattern=INPUT_FILE_PATTERN,
        description="File name under the input directory (default: the key).",
    )


class ObjectInput(ApiModel):
    """A ConfigMap or Secret in the SimJob's namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the ConfigMap or Secret.",
    )
    items: list[KeyToPath] = Field(
        default_factory=list,
        max_length=MAX_INPUT_ITEMS,
        description="Keys to place, and their file names; empty: every key, as itself.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )


class InputSource(ApiModel):
    """Files for the simulation from exactly one ConfigMap or Secret."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.configMap) != has(self.secret)",
                    "an input names exactly one of configMap or secret",
                ),
            ],
        },
    )

    config_map: ObjectInput | None = Field(default=None, description="A ConfigMap's keys.")
    secret: ObjectInput | None = Field(default=None, description="A Secret's keys.")


class WorkspaceSpec(ApiModel):
    """Where the simulation writes its outputs (Kubernetes: a PersistentVolumeClaim)."""

    claim_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="PersistentVolumeClaim in the SimJob's namespace (default: the tier's).",
    )
    sub_path: str | None = Field(
        default=None,
        max_length=512,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$",
        description="Directory in the claim (default: <namespace>/<name>-<uid>, unique per "
        "run, so reruns never overwrite each other). No '..', no leading '/'.",
    )


class TierWorkspace(ApiModel):
    """A tier's default workspace."""

    claim_name: str = Field(
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="PersistentVolumeClaim (in each SimJob's namespace) for the outputs.",
    )


class Progress(ApiModel):
    """The newest progress line of the simulation (docs/data.md)."""

    percent: float = Field(description="0 to 100.")
    message: str = Field(default="", description="What the simulation said with it.")
    update_time: str | None = Field(default=None, description="When it was read.")


class WorkspaceStatus(ApiModel):
    """Where the outputs of this run are."""

    claim_name: str | None = Field(default=None, description="Kubernetes: the claim.")
    path: str | None = Field(default=None, description="Kubernetes: the directory in it.")
    cluster: str | None = Field(default=None, description="Slurm: the SlurmCluster.")
    directory: str | None = Field(default=None, description="Slurm: the run directory.")
