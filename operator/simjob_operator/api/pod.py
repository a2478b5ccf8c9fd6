"""What a SimJob puts into its pod: environment variables and pod metadata, with the
CEL rules that keep them valid for the Job the operator builds.

``EnvVar`` (names, size and characters of values) and ``PodMetadata`` (label and
annotation keys are qualified names; label values valid; keys that Kubernetes, its
Job controller or the operator set are refused; annotations at most 256 KiB in all).
Used by ``api.simjob`` (``SimJobSpec.env`` / ``.pod_metadata``); built on ``api.base``.
"""

from __future__ import annotations

from pydantic import Field, JsonValue

from simjob_operator.api.base import (
    ENV_NAME_PATTERN,
    LABEL_VALUE_MAX_LENGTH,
    LABEL_VALUE_RE,
    MAX_ANNOTATIONS_BYTES,
    MAX_ENV_VALUE_LENGTH,
    NO_CONTROL_EXCEPT_TAB_NEWLINE_PATTERN,
    QUALIFIED_NAME_PREFIX_RE,
    QUALIFIED_NAME_RE,
    ApiModel,
    cel,
)
from simjob_operator.api.names import POD_METADATA_MAX_ENTRIES


class EnvVar(ApiModel):
    """One environment variable for the simulation."""

    name: str = Field(
        min_length=1,
        max_length=256,
        pattern=ENV_NAME_PATTERN,
        description="Variable name (letters, digits, underscore; not starting with a digit).",
    )
    value: str = Field(
        default="",
        max_length=MAX_ENV_VALUE_LENGTH,
        description="Variable value: no NUL or control characters but tab and newline.",
        json_schema_extra={"pattern": NO_CONTROL_EXCEPT_TAB_NEWLINE_PATTERN},
    )


QUALIFIED_WORDS = (
    "a qualified name: an optional DNS subdomain prefix (at most 253 characters) and a "
    "slash, then at most 63 letters, digits, dashes, underscores or dots, beginning and "
    "ending with a letter or digit"
)


def _key_rules(what: str, *, lower: bool) -> list[JsonValue]:
    """CEL on a map of labels or annotations: keys are qualified names, not reserved."""
    key = "k.lowerAscii()" if lower else "k"
    valid = (
        f"{key}.matches('{QUALIFIED_NAME_RE}') "
        f"&& (!k.contains('/') || k.matches('{QUALIFIED_NAME_PREFIX_RE}'))"
    )
    kube_reserved = (
        "k.startsWith('kubernetes.io/') || k.startsWith('k8s.io/') "
        "|| k.startsWith('batch.kubernetes.io/')"
    )
    if what == "label":
        kube_reserved += (
            " || k == 'controller-uid' || k == 'job-name' || k == 'app.kubernetes.io/managed-by'"
        )
        kube_words = (
            "controller-uid, job-name, app.kubernetes.io/managed-by and keys under "
            "kubernetes.io/, k8s.io/ or batch.kubernetes.io/"
        )
    else:
        kube_reserved += (
            " || k.split('/')[0].endsWith('.security.alpha.kubernetes.io') "
            "|| k.split('/')[0].endsWith('.security.beta.kubernetes.io')"
        )
        kube_words = (
            "keys under kubernetes.io/, k8s.io/, batch.kubernetes.io/ or "
            "*.security.alpha/beta.kubernetes.io/"
        )
    return [
        cel(
            "self.all(k, !k.startsWith('simjob.io/'))",
            f"{what} keys under simjob.io/ are reserved for the operator",
        ),
        cel(
            f"self.all(k, !({kube_reserved}))",
            f"{what} keys {kube_words} are set by Kubernetes or the operator",
            message_expression=f"'{what} key \"' + self.filter(k, {kube_reserved})[0] + "
            f"'\" is set by Kubernetes or the operator ({kube_words} are reserved)'",
        ),
        cel(
            f"self.all(k, {valid})",
            f"{what} keys must be {QUALIFIED_WORDS}",
            message_expression=f"'{what} key \"' + self.filter(k, !({valid}))[0] + "
            f"'\" is not {QUALIFIED_WORDS}'",
        ),
    ]


class PodMetadata(ApiModel):
    """Labels and annotations copied onto the pod that runs the simulation."""

    labels: dict[str, str] = Field(
        default_factory=dict,
        max_length=POD_METADATA_MAX_ENTRIES,
        description="Labels for the pod: keys are qualified names, values valid label "
        "values (at most 63 characters). Keys under simjob.io/ and the labels Kubernetes "
        "sets on a Job's pods are reserved.",
        json_schema_extra={
            "additionalProperties": {
                "type": "string",
                "description": "A label value.",
                "maxLength": LABEL_VALUE_MAX_LENGTH,
                "x-kubernetes-validations": [
                    cel(
                        f"self.matches('{LABEL_VALUE_RE}')",
                        "label values must be empty or at most 63 letters, digits, '-', '_' "
                        "or '.', beginning and ending with a letter or digit",
                    )
                ],
            },
            "x-kubernetes-validations": _key_rules("label", lower=False),
        },
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        max_length=POD_METADATA_MAX_ENTRIES,
        description="Annotations for the pod: keys are qualified names, keys and values "
        "together at most 256 KiB. Keys under simjob.io/, kubernetes.io/, k8s.io/ and "
        "batch.kubernetes.io/ are reserved.",
        json_schema_extra={
            "additionalProperties": {
                "type": "string",
                "description": "An annotation value.",
                "maxLength": MAX_ANNOTATIONS_BYTES,
            },
            "x-kubernetes-validations": [
                *_key_rules("annotation", lower=True),
                cel(
                    f"self.map(k, bytes(k).size() + bytes(self[k]).size()).sum() "
                    f"<= {MAX_ANNOTATIONS_BYTES}",
                    f"annotations must be at most {MAX_ANNOTATIONS_BYTES} bytes (256 KiB), "
                    "keys and values together",
                ),
            ],
        },
    )
