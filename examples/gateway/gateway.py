"""A reference science-gateway API on the SimJob SDK (FastAPI): users -> owners, runs, SSE.

Each logged-in user (here: a bearer token looked up in a small table; a real gateway
plugs in its own login) is mapped to a SimJob owner and a namespace. The gateway
submits through ``simjob_sdk.AsyncSimJobClient`` (idempotent by the run's name, so a
browser retry never starts a second simulation), lists and shows only the user's own
runs, streams a run's status to the browser as server-sent events (one ``status`` event
per change of phase, queue position or progress, then ``end``), and cancels.

    GET  /runs                       the user's runs
    POST /runs                       {"name", "tier", "image", "command", "args", "env"}
    GET  /runs/{name}                one run (404 if it is not the user's)
    GET  /runs/{name}/events         text/event-stream until the run ends
    POST /runs/{name}/cancel         cancel

Run it: ``SIMJOB_GATEWAY_USERS=users.json uvicorn gateway:app`` (users.json:
``{"token": {"user": "alice", "owner": "alice", "namespace": "physics"}}``). The owner
policy (docs/helm.md) must let that namespace bill those owners: an administrator runs
``kubectl annotate namespace physics simjob.io/allowed-owners='*'`` (or lists them).
Tested in tests/sdk/test_gateway.py; walked through in docs/sdk.md.
"""

import json
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from simjob_sdk import (
    AsyncSimJobClient,
    BackendUnavailable,
    Conflict,
    EnvVar,
    NotFound,
    Rejected,
    SimJobError,
    SimJobObject,
    SimJobSpec,
)

OWNER_LABEL = "gateway.example.org/user"


@dataclass(frozen=True)
class User:
    user: str
    owner: str
    namespace: str


class RunRequest(BaseModel):
    name: str = Field(min_length=1, max_length=60)
    tier: str
    image: str
    command: list[str]
    args: list[str] = []
    env: dict[str, str] = {}
    annotations: dict[str, str] = {}  # pod annotations (e.g. KWOK's timing in the tests)


def run_view(job: SimJobObject, position: int | None = None) -> dict[str, Any]:
    """What the browser sees of a run."""
    progress = job.progress
    return {
        "name": job.name,
        "phase": job.phase or "Pending",
        "queuePosition": position if position is not None else job.status.queue_position,
        "reason": job.status.reason,
        "message": job.status.message,
        "exitCode": job.status.exit_code,
        "progress": None
        if progress is None
        else {"percent": progress.percent, "message": progress.message},
        "finished": job.finished,
    }


def load_users(path: str | None) -> dict[str, User]:
    if not path:
        return {}
    with open(path) as handle:
        return {token: User(**entry) for token, entry in json.load(handle).items()}


def create_app(
    users: Mapping[str, User],
    client_for: Callable[[User], AsyncSimJobClient],
) -> FastAPI:
    """The app; ``client_for(user)`` gives the SDK client for that user's namespace."""
    app = FastAPI(title="SimJob reference gateway")

    def current_user(authorization: Annotated[str, Header()] = "") -> User:
        token = authorization.removeprefix("Bearer ").strip()
        found = users.get(token)
        if found is None:
            raise HTTPException(status_code=401, detail="unknown or missing token")
        return found

    CurrentUser = Annotated[User, Depends(current_user)]

    async def own_run(user: User, name: str) -> SimJobObject:
        try:
            job = await client_for(user).get(name)
        except NotFound as exc:
            raise HTTPException(status_code=404, detail=f"no run {name}") from exc
        if job.owner != user.owner:
            raise HTTPException(status_code=404, detail=f"no run {name}")
        return job

    @app.exception_handler(SimJobError)
    async def sdk_error(_request: Any, exc: SimJobError) -> Any:
        from fastapi.responses import JSONResponse

        code = {NotFound: 404, Conflict: 409, Rejected: 422, BackendUnavailable: 503}.get(
            type(exc), 500
        )
        return JSONResponse(status_code=code, content={"detail": exc.message})

    @app.get("/runs")
    async def list_runs(user: CurrentUser) -> list[dict[str, Any]]:
        jobs = await client_for(user).list(owner=user.owner)
        return [run_view(job) for job in jobs]

    @app.post("/runs", status_code=201)
    async def submit(user: CurrentUser, run: RunRequest) -> dict[str, Any]:
        spec = SimJobSpec(
            tier=run.tier,
            owner=user.owner,
            image=run.image,
            command=run.command,
            args=run.args,
            env=[EnvVar(name=k, value=v) for k, v in run.env.items()],
            pod_metadata={"annotations": run.annotations} if run.annotations else None,
        )
        job = await client_for(user).submit(spec, name=run.name, labels={OWNER_LABEL: user.user})
        return run_view(job)

    @app.get("/runs/{name}")
    async def show(user: CurrentUser, name: str) -> dict[str, Any]:
        job = await own_run(user, name)
        client = client_for(user)
        position = await client.queue_position(name) if job.phase == "Queued" else None
        return run_view(job, position)

    @app.post("/runs/{name}/cancel")
    async def cancel(user: CurrentUser, name: str) -> dict[str, Any]:
        await own_run(user, name)
        return run_view(await client_for(user).cancel(name))

    @app.get("/runs/{name}/events")
    async def events(user: CurrentUser, name: str) -> StreamingResponse:
        await own_run(user, name)
        client = client_for(user)

        async def stream() -> AsyncIterator[str]:
            last: dict[str, Any] | None = None
            async for event in client.watch(name=name):
                if event.type == "DELETED":
                    yield 'event: end\ndata: {"deleted": true}\n\n'
                    return
                job = event.object
                position = await client.queue_position(name) if job.phase == "Queued" else None
                view = run_view(job, position)
                if view != last:
                    last = view
                    yield f"event: status\ndata: {json.dumps(view)}\n\n"
                if job.finished:
                    yield f"event: end\ndata: {json.dumps(view)}\n\n"
                    return

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


def _default_app() -> FastAPI:
    users = load_users(os.environ.get("SIMJOB_GATEWAY_USERS"))
    clients: dict[str, AsyncSimJobClient] = {}

    def client_for(user: User) -> AsyncSimJobClient:
        if user.namespace not in clients:
            clients[user.namespace] = AsyncSimJobClient(user.namespace)
        return clients[user.namespace]

    return create_app(users, client_for)


app = _default_app() if os.environ.get("SIMJOB_GATEWAY_USERS") else None
