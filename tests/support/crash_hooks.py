"""A kopf module the resilience tests add to the operator (``kopf run -m
simjob_operator.main -m tests.support.crash_hooks``): it dies like a kill -9 at the
worst moment, right after a backend object was submitted and before its reference
is recorded, for the SimJob named by ``$SIMJOB_TEST_CRASH_AFTER_SUBMIT``
("namespace/name"); or in the usage ledger's protocol, right after a step's write
(``folded``: the ledger counts it, no marker yet; ``marked``: the marker is written, the
uid still pending) for ``$SIMJOB_TEST_CRASH_ACCOUNTING`` ("step namespace/name").
Production code only offers the seams (``Reconciler.after_submit``,
``Accounting.after_step``); the hooks themselves live here.
"""

from __future__ import annotations

import os
from typing import Any

import kopf

from simjob_operator.api.simjob import BackendRef
from simjob_operator.controller.runtime import Runtime
from simjob_operator.core.view import SimJobRecord

ENV_CRASH_AFTER_SUBMIT = "SIMJOB_TEST_CRASH_AFTER_SUBMIT"
ENV_CRASH_ACCOUNTING = "SIMJOB_TEST_CRASH_ACCOUNTING"


def crash_after_submit(record: SimJobRecord, ref: BackendRef) -> None:
    who = f"{record.namespace}/{record.name}"
    if os.environ.get(ENV_CRASH_AFTER_SUBMIT) == who:
        line = f"{ENV_CRASH_AFTER_SUBMIT}={who}: exiting after submit ({ref.id or ref.name})\n"
        os.write(2, line.encode())
        os._exit(137)


def crash_after_step(step: str, record: SimJobRecord) -> None:
    wanted = f"{step} {record.namespace}/{record.name}"
    if os.environ.get(ENV_CRASH_ACCOUNTING) == wanted:
        os.write(2, f"{ENV_CRASH_ACCOUNTING}={wanted}: exiting after the write\n".encode())
        os._exit(137)


@kopf.on.startup()
async def install(memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.get("runtime")
    if not isinstance(runtime, Runtime):
        raise kopf.PermanentError("tests.support.crash_hooks must load after simjob_operator.main")
    runtime.reconciler.after_submit = crash_after_submit
    runtime.reconciler.accounting.after_step = crash_after_step
