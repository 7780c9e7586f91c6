"""Depict's jobs served by Ray Serve replicas, each holding one `Engine`, behind Ray Serve's HTTP proxy.

    python -m models serve [--replicas N | --min-replicas A --max-replicas B] [--port 8000] [--num-cpus 1]

An ingress deployment (FastAPI) takes `POST /<job>` (JSON of the job's arguments, pictures as base64, or a multipart
form with the pictures as files), hands it to an `EngineReplica` through a deployment handle and answers with the
PNG carrying its parameters (describe: JSON), the header `X-Depict-Replica` naming the replica that made it. A
replica that dies mid-request is replaced by Ray Serve, and the ingress sends the request again to a live one. Bad
input is answered 400 with the job's sentence; it never takes a replica down. `/-/healthz` is Ray Serve's own.
Ray starts here, or joins the cluster `RAY_ADDRESS` names.
"""


import asyncio
import json
import logging
import os
from pathlib import Path

import psutil
import ray
from fastapi import FastAPI, Request
from fastapi.responses import Response
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import ReplicaUnavailableError

from .engine import Engine
from .requests import JOBS, PICTURES, REPLICA_HEADER, Answer, run_job

log = logging.getLogger(__name__)
APP_NAME = "depict"
ATTEMPTS = 3  # a request is sent again when the replica running it dies (ActorDiedError) or is gone
RETRY_WAIT_S = 0.5  # between attempts, while Ray Serve replaces the dead replica
REPO_ROOT = Path(__file__).resolve().parent.parent


@serve.deployment(name="EngineReplica")
class EngineReplica:
    """One `Engine` (its own pipelines) in one replica process; runs the ingress's requests one at a time."""

    def __init__(self, preset: str):
        self.engine = Engine(preset=preset)
        self.name = serve.get_replica_context().replica_id.unique_id

    def run(self, job: str, options: dict) -> tuple[Answer, str]:
        return run_job(self.engine, job, options), self.name


api = FastAPI(title="Depict")


async def read_options(request: Request) -> dict:
    """A request's job arguments: a JSON object, or a multipart form (pictures as files, other fields as text,
    JSON-decoded where they parse: `seed=3` is 3, `adapters={"outline": 0.8}` a dict)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        options = {}
        for name, value in form.multi_items():
            if name in PICTURES and hasattr(value, "read"):
                options[name] = await value.read()
            else:
                try:
                    options[name] = json.loads(value)
                except (TypeError, ValueError):
                    options[name] = value
        return options
    try:
        return json.loads(await request.body() or b"{}")
    except ValueError as error:
        raise ValueError(f"the request body is not JSON ({error}).") from error


@serve.deployment(name="Ingress", ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class Ingress:
    """Routes `POST /<job>` to the engine replicas, sending a request again when its replica dies."""

    def __init__(self, engines):
        self.engines = engines

    @staticmethod
    def respond(answer: Answer, replica: str | None = None) -> Response:
        headers = {REPLICA_HEADER: replica} if replica else None
        return Response(answer.body, status_code=answer.status, media_type=answer.media_type, headers=headers)

    @api.post("/{job}")
    async def job(self, job: str, request: Request) -> Response:
        if job not in JOBS:
            return self.respond(Answer.error(404, f"no job {job!r}: POST to one of /{', /'.join(JOBS)}."))
        try:
            options = await read_options(request)
        except ValueError as error:
            return self.respond(Answer.error(400, str(error)))
        for attempt in range(1, ATTEMPTS + 1):
            try:
                answer, replica = await self.engines.run.remote(job, options)
                return self.respond(answer, replica)
            except (RayActorError, ReplicaUnavailableError) as error:
                log.warning("%s: replica lost (%s), attempt %d of %d", job, type(error).__name__, attempt, ATTEMPTS)
                await asyncio.sleep(RETRY_WAIT_S)
        return self.respond(Answer.error(503, f"{job}: every attempt lost its replica; try again."))


def build_app(preset: str, replicas: int = 1, num_cpus: float = 1.0, num_gpus: float = 0.0,
              min_replicas: int | None = None, max_replicas: int | None = None):  # fmt: skip
    """The Serve application: the ingress in front of `replicas` engine replicas (or between `min_replicas` and
    `max_replicas`, scaled by Ray Serve on requests in flight), each reserving `num_cpus` and `num_gpus`."""
    if min_replicas is not None or max_replicas is not None:
        low = 1 if min_replicas is None else min_replicas
        high = max(low, replicas if max_replicas is None else max_replicas)
        scaling = {"autoscaling_config": {"min_replicas": low, "max_replicas": high, "target_ongoing_requests": 1}}
    else:
        scaling = {"num_replicas": replicas}
    engines = EngineReplica.options(**scaling, max_ongoing_requests=1,
                                    ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus})  # fmt: skip
    return Ingress.bind(engines.bind(preset))


def start(preset: str, host: str = "127.0.0.1", port: int = 8000, **scale) -> str:
    """Start (or join, with `RAY_ADDRESS`) Ray, deploy the application and return its URL once every replica is
    up. Workers find this code through `PYTHONPATH` (on a cluster, Depict sits at the same path on every machine)."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    ray.init(runtime_env={"env_vars": {"PYTHONPATH": path}}, include_dashboard=False, ignore_reinit_error=True,
             logging_level=logging.WARNING)  # fmt: skip
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(preset, **scale), name=APP_NAME, route_prefix="/")
    return f"http://{host}:{port}"


def stop() -> None:
    """Delete the application, stop Serve and leave Ray (stopping it when this process started it)."""
    serve.shutdown()
    ray.shutdown()


def replica_processes() -> list[psutil.Process]:
    """This machine's engine replica processes (Ray names them `ray::ServeReplica:depict:EngineReplica`)."""
    marker = f"ServeReplica:{APP_NAME}:EngineReplica"
    return [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
