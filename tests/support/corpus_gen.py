"""The generated bad-input corpus: hostile and malformed SimJobs and SimTiers, in code.

Each ``GenCase`` holds its manifest(s) and what must happen:

* ``rejected``: the API server refuses the last document with a message containing
  ``expect`` (one document: a create; two: a valid original created first, then the
  update);
* ``accepted``: a boundary value the API server must take (so the rules do not
  over-reach);
* ``failed``: the schema takes it, the operator must end it ``Failed`` with reason
  ``expect`` (a missing tier or SlurmCluster, a runtime above the tier's...);
* ``edit``: created and started by the operator, then ``patch`` (a merge patch of
  spec) must be refused with ``expect``; cancelled afterwards, it must end Cancelled;
* ``succeeded``: a boundary value the schema takes must also run to Succeeded (the
  Job the operator builds from it is valid too).

``schema_cases()`` (rejected + accepted) run as server dry-runs in
tests/integration/test_bad_input_schema.py; ``operator_cases()`` (the rest) against
the live operator in tests/integration/test_bad_input_operator.py; the shape is checked
in tests/unit/test_api_corpus_gen.py. Names are unique per kind; SimTier names start
with ``corpus-gen-`` (cluster-scoped). The file corpus (tests/corpus/, read by
``corpus_cases``) is the hand-written half.
"""

from __future__ import annotations

from typing import Any

from tests.support.corpus_gen_base import (
    ADDED_REMOVED,
    API,
    CONTROL,
    IMMUTABLE,
    LABEL_VALUE,
    QUALIFIED,
    QUANTITY,
    RESERVED_KUBE,
    TIER_MAX_RUNTIME,
    TIERS,
    TOO_LONG,
    TOO_MANY,
    TYPE,
    Builder,
    Doc,
    GenCase,
    simjob,
    simtier,
    slug,
    unique,
)

# A label key at its limits: a 253-character prefix and a 63-character name.
LONGEST_KEY = ("a" * 63 + ".") * 3 + "a" * 61 + "/" + "k" * 63

__all__ = ["TIERS", "GenCase", "all_cases", "operator_cases", "schema_cases"]


def _types(b: Builder) -> None:
    # A map where a scalar or list belongs: strict decoding names its first key.
    wrong: list[tuple[str, Any]] = [
        ("int", 1),
        ("bool", True),
        ("list", ["x"]),
        ("map", {"a": "b"}),
    ]
    for fld in ("tier", "owner", "image", "workingDir", "backend"):
        for kind, value in wrong:
            if (fld, kind) in {("backend", "list"), ("backend", "map")}:
                continue
            want = f'unknown field "spec.{fld}.a"' if kind == "map" else f"spec.{fld} {TYPE} string"
            b.sj(f"type {fld} {kind}", "rejected", want, **{fld: value})
    for fld in ("command", "args", "env"):
        for kind, value in (("string", "x"), ("int", 3), ("map", {"a": "b"})):
            want = f'unknown field "spec.{fld}.a"' if kind == "map" else f"spec.{fld} {TYPE} array"
            b.sj(f"type {fld} {kind}", "rejected", want, **{fld: value})
    b.sj("type command item int", "rejected", f"spec.command[0] {TYPE} string", command=[1])
    b.sj("type args item bool", "rejected", f"spec.args[0] {TYPE} string", args=[True])
    b.sj("type args item list", "rejected", f"spec.args[0] {TYPE} string", args=[["a"]])
    b.sj("type env item string", "rejected", f"spec.env[0] {TYPE} object", env=["A=1"])
    b.sj("type env name int", "rejected", f"spec.env[0].name {TYPE} string", env=[{"name": 1}])
    b.sj("type env value int", "rejected", f"spec.env[0].value {TYPE} string",
         env=[{"name": "A", "value": 1}])  # fmt: skip
    for kind, value in (("string", "60"), ("float", 1.5), ("bool", True), ("huge", 1e30)):
        b.sj(f"type runtime {kind}", "rejected", f"spec.maxRuntimeSeconds {TYPE} integer",
             maxRuntimeSeconds=value)  # fmt: skip
    for kind, value in (("string", "true"), ("int", 1), ("yes", "yes")):
        b.sj(f"type cancel {kind}", "rejected", f"spec.cancel {TYPE} boolean", cancel=value)
    b.sj("type podmetadata list", "rejected", f"spec.podMetadata {TYPE} object", podMetadata=[])
    b.sj("type labels list", "rejected", f"spec.podMetadata.labels {TYPE} object",
         podMetadata={"labels": ["a"]})  # fmt: skip
    for kind, value in (("int", 1), ("bool", False), ("map", {"x": "y"})):
        for what in ("labels", "annotations"):
            want = (f'unknown field "spec.podMetadata.{what}.a.x"' if kind == "map"
                    else f"spec.podMetadata.{what}.a {TYPE} string")  # fmt: skip
            b.sj(f"type {what} value {kind}", "rejected", want,
                 podMetadata={what: {"a": value}})  # fmt: skip
    b.sj("type slurm string", "rejected", f"spec.slurm {TYPE} object", slurm="x")
    b.sj_doc("type spec string", "rejected", f"spec {TYPE} object",
             {"apiVersion": API, "kind": "SimJob", "metadata": {}, "spec": "x"})  # fmt: skip
    b.sj_doc("type spec list", "rejected", f"spec {TYPE} object",
             {"apiVersion": API, "kind": "SimJob", "metadata": {}, "spec": []})  # fmt: skip
    for fld, value, want in (
        ("cpu", 1, "string"), ("memory", 1024, "string"), ("gpu", "1", "integer"),
        ("gpu", 1.5, "integer"), ("maxRuntimeSeconds", "60", "integer"),
        ("maxConcurrentPerOwner", "2", "integer"), ("ttlSecondsAfterFinished", "10", "integer"),
        ("maxPendingSeconds", "600", "integer"), ("nodeSelector", ["a"], "object"),
        ("slurm", "x", "object"),
        ("priorityClassName", 1, "string"),
    ):  # fmt: skip
        b.st(f"type {fld} {type(value).__name__}", "rejected", f"spec.{fld} {TYPE} {want}",
             **{fld: value})  # fmt: skip


def _sizes(b: Builder) -> None:
    big = 131071
    b.sj_doc("name too long", "rejected", "metadata.name must be at most 60 characters",
             simjob("n" * 61))  # fmt: skip
    b.sj("tier 64 chars", "rejected", f"spec.tier: {TOO_LONG} 63", tier="t" * 64)
    b.sj("owner 64 chars", "rejected", f"spec.owner: {TOO_LONG} 63", owner="o" * 64)
    b.sj("image 1025 chars", "rejected", f"spec.image: {TOO_LONG} 1024", image="i" * 1025)
    b.sj("command 257 items", "rejected", f"spec.command: Too many: 257: {TOO_MANY} 256",
         command=["x"] * 257)  # fmt: skip
    b.sj("args 4097 items", "rejected", f"spec.args: Too many: 4097: {TOO_MANY} 4096",
         args=["x"] * 4097)  # fmt: skip
    b.sj("env 1025 items", "rejected", f"spec.env: Too many: 1025: {TOO_MANY} 1024",
         env=[{"name": f"V{i}", "value": "1"} for i in range(1025)])  # fmt: skip
    b.sj("command item over 128k", "rejected", f"spec.command[0]: {TOO_LONG} {big}",
         command=["c" * (big + 1)])  # fmt: skip
    b.sj("args item over 128k", "rejected", f"spec.args[1]: {TOO_LONG} {big}",
         args=["a", "a" * (big + 1)])  # fmt: skip
    b.sj("args item 1 MiB", "rejected", f"spec.args[0]: {TOO_LONG} {big}", args=["a" * 2**20])
    b.sj("env value over 32k", "rejected", f"spec.env[0].value: {TOO_LONG} 32768",
         env=[{"name": "A", "value": "v" * 32769}])  # fmt: skip
    b.sj("env name 257", "rejected", f"spec.env[0].name: {TOO_LONG} 256",
         env=[{"name": "N" * 257}])  # fmt: skip
    b.sj("working dir 4097", "rejected", f"spec.workingDir: {TOO_LONG} 4096",
         workingDir="/" + "w" * 4096)  # fmt: skip
    total = "command, args and env (names and values) together must be at most 1048576"
    b.sj("total args over 1 MiB", "rejected", total, args=["a" * 120000] * 9)
    b.sj("total command over 1 MiB", "rejected", total, command=["c" * 110000] * 10)
    b.sj("total env over 1 MiB", "rejected", total,
         env=[{"name": f"E{i}", "value": "v" * 30000} for i in range(36)])  # fmt: skip
    b.sj("total mixed over 1 MiB", "rejected", total, command=["c" * 100000] * 3,
         args=["a" * 100000] * 6,
         env=[{"name": f"E{i}", "value": "v" * 30000} for i in range(8)])  # fmt: skip
    b.sj("labels 65", "rejected", f"spec.podMetadata.labels: Too many: 65: {TOO_MANY} 64",
         podMetadata={"labels": {f"k{i}": "v" for i in range(65)}})  # fmt: skip
    b.sj("annotations 65", "rejected",
         f"spec.podMetadata.annotations: Too many: 65: {TOO_MANY} 64",
         podMetadata={"annotations": {f"k{i}": "v" for i in range(65)}})  # fmt: skip
    b.sj("label value 64", "rejected", f"{TOO_LONG} 63", podMetadata={"labels": {"a": "v" * 64}})
    b.sj("label key name 64", "rejected", QUALIFIED, podMetadata={"labels": {"k" * 64: "v"}})
    b.sj("label key prefix 254", "rejected", QUALIFIED,
         podMetadata={"labels": {("a" * 63 + ".") * 3 + "a" * 62 + "/k": "v"}})  # fmt: skip
    annotations_total = "annotations must be at most 262144 bytes"
    b.sj("annotations over 256 KiB", "rejected", annotations_total,
         podMetadata={"annotations": {"a": "x" * 140000, "b": "y" * 140000}})  # fmt: skip
    b.sj("annotations multibyte over 256 KiB", "rejected", annotations_total,
         podMetadata={"annotations": {"a": "é" * 70000, "b": "ü" * 70000}})  # fmt: skip
    b.sj("slurm partition 65", "rejected", f"spec.slurm.partition: {TOO_LONG} 64",
         backend="slurm", slurm={"cluster": "c", "partition": "p" * 65})  # fmt: skip
    b.st("cpu 33 chars", "rejected", f"spec.cpu: {TOO_LONG} 32", cpu="1" * 33)
    b.st("node selector 33", "rejected", f"spec.nodeSelector: Too many: 33: {TOO_MANY} 32",
         nodeSelector={f"k{i}": "v" for i in range(33)})  # fmt: skip
    b.st("tolerations 33", "rejected", f"spec.tolerations: Too many: 33: {TOO_MANY} 32",
         tolerations=[{"operator": "Exists"}] * 33)  # fmt: skip
    b.cases.append(GenCase("corpus-gen-" + "n" * 53, "rejected",
                           (simtier("corpus-gen-" + "n" * 53),),
                           "metadata.name must be at most 63 characters"))  # fmt: skip
    # Boundaries that must pass.
    b.sj("ok arg 131071", "accepted", "", args=["a" * big])
    b.sj("ok label value 63", "accepted", "", podMetadata={"labels": {"a": "v" * 63}})
    b.sj("ok label key max", "accepted", "",
         podMetadata={"labels": {LONGEST_KEY: "v"}})  # fmt: skip
    b.sj("ok total just under 1 MiB", "accepted", "", args=["a" * 131000] * 8)
    b.sj("ok annotations 250 KiB", "accepted", "",
         podMetadata={"annotations": {"a": "x" * 128000, "b": "y" * 128000}})  # fmt: skip


def _characters(b: Builder) -> None:
    controls = {"nul": "\x00", "soh": "\x01", "bel": "\x07", "bs": "\x08", "vt": "\x0b",
                "ff": "\x0c", "cr": "\r", "esc": "\x1b", "del": "\x7f", "c1 nel": "\x85",
                "c1 csi": "\x9b"}  # fmt: skip
    for name, ch in controls.items():
        b.sj(f"args {name}", "rejected", f"spec.args[0] {CONTROL}", args=[f"a{ch}b"])
    for name in ("nul", "esc", "cr", "del"):
        ch = controls[name]
        b.sj(f"command {name}", "rejected", f"spec.command[1] {CONTROL}",
             command=["sh", f"x{ch}"])  # fmt: skip
        b.sj(f"env value {name}", "rejected", f"spec.env[0].value {CONTROL}",
             env=[{"name": "A", "value": f"v{ch}"}])  # fmt: skip
        b.sj(f"working dir {name}", "rejected", "workingDir must not contain control characters",
             workingDir=f"/work{ch}")  # fmt: skip
        b.sj(f"image {name}", "rejected", "image must not contain whitespace or control",
             image=f"busybox{ch}")  # fmt: skip
    for name, ch in (("newline", "\n"), ("tab", "\t")):
        b.sj(f"program {name}", "rejected", "spec.command[0], the program, must not contain",
             command=[f"true{ch}"])  # fmt: skip
        b.sj(f"working dir {name}", "rejected", "workingDir must not contain control characters",
             workingDir=f"/w{ch}x")  # fmt: skip
        b.sj(f"image {name}", "rejected", "image must not contain whitespace",
             image=f"busybox{ch}")  # fmt: skip
    for name, image in (("space", "busy box"), ("nbsp", "busybox\u00a0"),
                        ("line separator", "busybox\u2028"),
                        ("leading space", " busybox")):  # fmt: skip
        b.sj(f"image {name}", "rejected", "image must not contain whitespace", image=image)
    b.sj("tier nul", "rejected", "spec.tier in body should match", tier="corpus\x00tier")
    b.sj("tier unicode", "rejected", "spec.tier in body should match", tier="tïer")
    b.sj("owner unicode", "rejected", "spec.owner in body should match", owner="ålice")
    b.sj("env name unicode", "rejected", "spec.env[0].name in body should match",
         env=[{"name": "NAMÉ", "value": "1"}])  # fmt: skip
    b.sj("env name with equals", "rejected", "spec.env[0].name in body should match",
         env=[{"name": "A=B", "value": "1"}])  # fmt: skip
    b.sj("empty command item", "rejected", "spec.command[0] in body should be at least 1",
         command=[""])  # fmt: skip
    # Legitimate: multi-line scripts, tabs, non-ASCII text, a line separator in an argument.
    b.sj("ok multi line script", "accepted", "", command=["sh", "-c", "echo a\n\techo b\n"])
    b.sj("ok args newline tab", "accepted", "", args=["line 1\nline 2", "a\tb"])
    b.sj("ok env multi line", "accepted", "", env=[{"name": "SCRIPT", "value": "a\nb\tc"}])
    b.sj("ok unicode args", "accepted", "", args=["température", "温度", "🌡️", "one\u2028two"])
    b.sj("ok unicode annotation value", "accepted", "",
         podMetadata={"annotations": {"note": "données ✓"}})  # fmt: skip


def _labels(b: Builder) -> None:
    bad_keys = ["a b", "-a", "a-", "_a", "a/b/c", "/a", "a/", "Example.com/a", "a..b/c",
                "a:b", "", "ключ", "a/-b", "-a.com/b", "a" * 64]  # fmt: skip
    for i, key in enumerate(bad_keys):
        b.sj(f"label key bad {i}", "rejected", QUALIFIED, podMetadata={"labels": {key: "v"}})
    for i, key in enumerate(["a b", "/a", "a/b/c", "", "ключ", "-a", "a" * 64]):
        b.sj(f"annotation key bad {i}", "rejected", QUALIFIED,
             podMetadata={"annotations": {key: "v"}})  # fmt: skip
    bad_values = ["a b", "-a", "a-", "_a", "a/b", "a:b", "a\nb", "välue", "a.", "ü"]
    for i, value in enumerate(bad_values):
        b.sj(f"label value bad {i}", "rejected", LABEL_VALUE,
             podMetadata={"labels": {"k": value}})  # fmt: skip
    reserved_labels = ["controller-uid", "job-name", "batch.kubernetes.io/job-name",
                       "batch.kubernetes.io/controller-uid", "kubernetes.io/x", "k8s.io/x",
                       "app.kubernetes.io/managed-by"]  # fmt: skip
    for key in reserved_labels:
        b.sj(f"label reserved {key}", "rejected", f'label key "{key}" {RESERVED_KUBE}',
             podMetadata={"labels": {key: "v"}})  # fmt: skip
    reserved_annotations = ["batch.kubernetes.io/job-tracking", "kubernetes.io/x", "k8s.io/x",
                            "seccomp.security.alpha.kubernetes.io/pod",
                            "container.apparmor.security.beta.kubernetes.io/simulation",
                            ]  # fmt: skip
    for key in reserved_annotations:
        b.sj(f"annotation reserved {key}", "rejected", f'annotation key "{key}" {RESERVED_KUBE}',
             podMetadata={"annotations": {key: "v"}})  # fmt: skip
    b.sj("label simjob reserved", "rejected", "label keys under simjob.io/ are reserved",
         podMetadata={"labels": {"simjob.io/uid": "x"}})  # fmt: skip
    b.sj("annotation simjob reserved", "rejected", "annotation keys under simjob.io/ are reserved",
         podMetadata={"annotations": {"simjob.io/x": "x"}})  # fmt: skip
    for i, (labels, notes) in enumerate((
        ({"app.kubernetes.io/name": "heat", "team": ""}, {}),
        ({"pod-container-running-failed.stage.kwok.x-k8s.io": "true"}, {}),
        ({}, {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
              "Example.com/Note": "any text: spaces, /, é"}),
        ({"a.b-c.d/E_f.G-h": "X.y_z-1"}, {"kubectl.kubernetes.io/default-container": "simulation"}),
    )):  # fmt: skip
        b.sj(f"ok metadata {i}", "accepted", "",
             podMetadata={"labels": labels, "annotations": notes})  # fmt: skip


def _quantities(b: Builder) -> None:
    for value, want in (
        ("1e400", "cpu must be at most 1024"), ("1025", "cpu must be at most 1024"),
        ("1025000m", "cpu must be at most 1024"), ("2k", "cpu must be at most 1024"),
        ("1Mi", "cpu must be at most 1024"), ("1E", "cpu must be at most 1024"),
        ("99999999999999999999999999999999", "cpu must be at most 1024"),
        ("999999999999999999999999999999999", TOO_LONG),
        ("0.0001", "cpu must be at least 1m"), ("100u", "cpu must be at least 1m"),
        ("1n", "cpu must be at least 1m"), ("1e-400", "cpu must be"),
        ("0", "cpu must be above 0"), ("0m", "cpu must be above 0"),
        ("-1", QUANTITY), ("1 ", QUANTITY), (" 1", QUANTITY), ("1.2.3", QUANTITY),
        ("1x", QUANTITY), ("e3", QUANTITY), ("0x10", QUANTITY), ("Infinity", QUANTITY),
        ("NaN", QUANTITY), ("", QUANTITY), ("\uff11", QUANTITY), ("1\u200b", QUANTITY),
    ):  # fmt: skip
        b.st(f"cpu {value.encode('unicode_escape').decode()}", "rejected", want, cpu=value)
    for value, want in (
        ("1e400", "memory must be at most 64Ti"), ("65Ti", "memory must be at most 64Ti"),
        ("1Pi", "memory must be at most 64Ti"), ("1Ei", "memory must be at most 64Ti"),
        ("1e19", "memory must be at most 64Ti"), ("100", "memory must be at least 1Mi"),
        ("1Ki", "memory must be at least 1Mi"), ("0.5", "memory must be at least 1Mi"),
        ("-1Gi", QUANTITY), ("1GB", QUANTITY), ("1gi", QUANTITY), ("Infinity", QUANTITY),
    ):  # fmt: skip
        b.st(f"memory {value}", "rejected", want, memory=value)
    for value, want in (("1e400", "slurm.memory must be at most 64Ti"),
                        ("0", "slurm.memory must be above 0"),
                        ("1Ki", "slurm.memory must be at least 1Mi"),
                        ("4 Gi", QUANTITY)):  # fmt: skip
        b.st(f"slurm memory {value}", "rejected", want, slurm={"memory": value})
    ge, le = "should be greater than or equal to", "should be less than or equal to"
    for fld, value, want in (
        ("gpu", 65, f"{le} 64"), ("gpu", -1, f"{ge} 0"),
        ("maxRuntimeSeconds", 2678401, f"{le} 2678400"), ("maxRuntimeSeconds", 0, f"{ge} 1"),
        ("maxRuntimeSeconds", 2**63, "spec.maxRuntimeSeconds"),
        ("ttlSecondsAfterFinished", 31536001, f"{le} 31536000"),
        ("ttlSecondsAfterFinished", -1, f"{ge} 0"),
        ("maxConcurrentPerOwner", 100001, f"{le} 100000"),
        ("maxPendingSeconds", 0, f"{ge} 1"), ("maxPendingSeconds", 2678401, f"{le} 2678400"),
        ("maxPendingSeconds", -5, f"{ge} 1"),
    ):  # fmt: skip
        b.st(f"{fld} {value}", "rejected", f"spec.{fld}", **{fld: value})
        message = f"spec.{fld} in body {want}" if "should" in want else want
        b.cases[-1] = GenCase(b.cases[-1].id, "rejected", b.cases[-1].documents, message)
    b.st("toleration seconds -1", "rejected",
         f"spec.tolerations[0].tolerationSeconds in body {ge} 0",
         tolerations=[{"key": "k", "effect": "NoExecute", "tolerationSeconds": -1}])  # fmt: skip
    b.st("slurm cpus per task 4097", "rejected", f"spec.slurm.cpusPerTask in body {le} 4096",
         slurm={"cpusPerTask": 4097})  # fmt: skip
    b.sj("runtime above 31 days", "rejected", f"spec.maxRuntimeSeconds in body {le} 2678400",
         maxRuntimeSeconds=2678401)  # fmt: skip
    for value in ("1024", "1m", "1Ki", "0.5", "1e3"):
        b.st(f"ok cpu {value}", "accepted", "", cpu=value)
    for value in ("64Ti", "1Mi", "1e9", "1G"):
        b.st(f"ok memory {value}", "accepted", "", memory=value)
    b.st("ok max pending", "accepted", "", maxPendingSeconds=2678400)
    b.st("ok ttl year", "accepted", "", ttlSecondsAfterFinished=31536000)


def _updates(b: Builder) -> None:
    base: Doc = {"args": ["1"], "env": [{"name": "A", "value": "1"}], "workingDir": "/w",
                 "maxRuntimeSeconds": 30, "podMetadata": {"labels": {"a": "b"}}}  # fmt: skip
    changes: list[tuple[str, Doc, str]] = [
        ("image", {"image": "busybox:1.37"}, f"spec.image {IMMUTABLE}"),
        ("command", {"command": ["false"]}, f"spec.command {IMMUTABLE}"),
        ("args", {"args": ["2"]}, f"spec.args {IMMUTABLE}"),
        ("args cleared", {"args": []}, f"spec.args {IMMUTABLE}"),
        ("env value", {"env": [{"name": "A", "value": "2"}]}, f"spec.env {IMMUTABLE}"),
        ("env added", {"env": [{"name": "A", "value": "1"}, {"name": "B"}]},
         f"spec.env {IMMUTABLE}"),
        ("working dir", {"workingDir": "/x"}, f"spec.workingDir {IMMUTABLE}"),
        ("runtime", {"maxRuntimeSeconds": 31}, f"spec.maxRuntimeSeconds {IMMUTABLE}"),
        ("labels", {"podMetadata": {"labels": {"a": "c"}}}, f"spec.podMetadata {IMMUTABLE}"),
        ("tier", {"tier": "other"}, "spec.tier is immutable"),
        ("owner added", {"owner": "eve"}, "owner cannot be added or removed after creation"),
    ]  # fmt: skip
    for what, change, want in changes:
        b.update(what, want, base, {**base, **change})
    for what in ("workingDir", "maxRuntimeSeconds", "podMetadata"):
        removed = {k: v for k, v in base.items() if k != what}
        b.update(f"{what} removed", f"spec.{what} {ADDED_REMOVED}", base, removed)
    b.update("image removed", f"spec.image {ADDED_REMOVED}", base,
             {**base, "image": None})  # fmt: skip
    b.update("cancel back", "cancel cannot be set back to false", {**base, "cancel": True},
             {**base, "cancel": False})  # fmt: skip
    bare: Doc = {}
    b.update("args added", f"spec.args {IMMUTABLE}", bare, {"args": ["x"]})
    b.update("env added to none", f"spec.env {IMMUTABLE}", bare, {"env": [{"name": "A"}]})
    b.update(
        "args removed",
        f"spec.args {IMMUTABLE}",
        base,
        {k: v for k, v in base.items() if k != "args"},
    )
    b.update("ok cancel", "", base, {**base, "cancel": True})
    b.update("ok args empty list", "", bare, {"args": [], "env": []})


def _operator(b: Builder) -> None:
    for name in ("corpus-gen-nosuch", "corpus-gen-wid", "corpus-gen-wide-x", "a.corpus-gen-wide",
                 "x" * 63):  # fmt: skip
        b.sj(f"unknown tier {name[:20]}", "failed", "UnknownTier", tier=name)
    for runtime in (TIER_MAX_RUNTIME + 1, 3600, 2678400):
        b.sj(f"runtime above tier {runtime}", "failed", "RuntimeAboveTierLimit",
             maxRuntimeSeconds=runtime)  # fmt: skip
    for i, extra in enumerate(({}, {"backend": "kubernetes"}, {"workingDir": "/w"})):
        doc = simjob(f"gen-no-image-{i}", **extra)
        del doc["spec"]["image"]
        b.cases.append(GenCase(f"gen-no-image-{i}", "failed", (doc,), "InvalidSpec"))
    for i, slurm in enumerate(({"cluster": "corpus-gen-nosuch"},
                               {"cluster": "corpus-gen-nosuch", "partition": "p"})):  # fmt: skip
        b.sj(f"missing slurm cluster {i}", "failed", "UnknownSlurmCluster", backend="slurm",
             slurm=slurm)  # fmt: skip
    for what, spec in (
        ("multi line script", {"command": ["sh", "-c", "echo a\n\techo b\n"]}),
        ("longest argument", {"args": ["a" * 131071]}),
        ("label and annotation limits", {"podMetadata": {
            "labels": {LONGEST_KEY: "v" * 63},
            "annotations": {"a": "x" * 128000, "Example.com/B": "y" * 128000}}}),
        ("unicode args", {"args": ["température", "温度", "one\u2028two"]}),
    ):  # fmt: skip
        b.sj(f"ok run {what}", "succeeded", "Succeeded", **spec)
    running = {
        "command": ["sleep", "300"],
        "podMetadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "300s"}},
    }
    for what, patch, want in (
        ("command", {"command": ["false"]}, f"spec.command {IMMUTABLE}"),
        ("image", {"image": "busybox:1.37"}, f"spec.image {IMMUTABLE}"),
        ("args", {"args": ["x"]}, f"spec.args {IMMUTABLE}"),
        ("env", {"env": [{"name": "X", "value": "1"}]}, f"spec.env {IMMUTABLE}"),
        ("tier", {"tier": "corpus-tier"}, "spec.tier is immutable"),
        ("pod metadata", {"podMetadata": {"labels": {"x": "y"}}}, f"spec.podMetadata {IMMUTABLE}"),
        ("runtime added", {"maxRuntimeSeconds": 10}, f"spec.maxRuntimeSeconds {ADDED_REMOVED}"),
    ):  # fmt: skip
        name = f"gen-edit-{slug(what)}"
        b.cases.append(GenCase(name, "edit", (simjob(name, **running),), want, patch))


def all_cases() -> list[GenCase]:
    b = Builder()
    for part in (_types, _sizes, _characters, _labels, _quantities, _updates, _operator):
        part(b)
    return unique(b.cases)


def schema_cases() -> list[GenCase]:
    return [c for c in all_cases() if c.outcome in ("rejected", "accepted")]


def operator_cases() -> list[GenCase]:
    return [c for c in all_cases() if c.outcome in ("failed", "edit", "succeeded")]
