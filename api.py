"""The HTTP edge (``kgrec serve``): FastAPI routes, pydantic models, error mapping and metrics.

Like ``cli.py`` it only parses and calls workflows (:mod:`kgrec.recommender.serving`,
:func:`kgrec.recommender.explain.explain`). Every :class:`~kgrec.errors.KgrecError` becomes a JSON
error with a status code (404 unknown user/item/persona, 422 bad input, 503 store or model not
available); anything else is a JSON 500 without a traceback (the traceback goes to the log).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from kgrec.errors import (
    ConfigError,
    DataError,
    KgrecError,
    ModelError,
    NotFoundError,
    StoreError,
    StoreUnavailable,
)

log = logging.getLogger("kgrec.serve")

NO_NUL = r"^[^\x00]+$"  # ids never hold NUL (FalkorDB cannot take it in a parameter)
ItemId = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
IdQuery = Annotated[str, Query(min_length=1, max_length=200, pattern=NO_NUL)]
MAX_K = 100
MAX_SESSION = 200


# --- models -------------------------------------------------------------------------------------
class RecommendRequest(BaseModel):
    # the spec says what the handler enforces: a user or a non-empty session; write needs a user
    model_config = ConfigDict(json_schema_extra={
        "anyOf": [{"required": ["user"], "properties": {"user": {"type": "string"}}},
                  {"required": ["session"], "properties": {"session": {"minItems": 1}}}],
        "if": {"required": ["write"], "properties": {"write": {"const": True}}},
        "then": {"required": ["user"], "properties": {"user": {"type": "string"}}},
    })

    session: list[ItemId] = Field(default_factory=list, max_length=MAX_SESSION,
                                  description="Item ids of the current session, in order")
    user: ItemId | None = Field(default=None, description="A known user id; omit for an anonymous session")
    k: int = Field(default=10, ge=1, le=MAX_K)
    exclude_seen: bool = True
    write: bool = Field(default=False, description="Queue (:User)-[:RECOMMENDED]->(:Item) edges (known users)")


class Recommendation(BaseModel):
    rank: int
    item: str
    title: str | None
    score: float
    from_persona: bool


class RecommendResponse(BaseModel):
    user: str | None
    persona_source: str = Field(description="past (the persona of a known user's past) or none")
    items: list[Recommendation]
    notes: list[str] = []
    run: str | None = None
    write_queued: bool = False


class ExplanationOut(BaseModel):
    kind: str
    score: float
    reason: str
    path: dict[str, Any] = {}


class PersonaGroup(BaseModel):
    persona: str
    label: str | None = None
    size: int | None = None
    top_genres: list[str] | None = None
    top_people: list[str] | None = None
    top_items: list[str] | None = None


class Health(BaseModel):
    status: str
    store: str
    store_reachable: bool
    versions: dict[str, Any]
    write_back_pending: int


class ReloadResponse(BaseModel):
    reloaded: bool
    versions: dict[str, Any]


class ErrorOut(BaseModel):
    error: str
    message: str
    detail: list[Any] | None = None


ERRORS = {400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut},
          503: {"model": ErrorOut}}


def _status(e: KgrecError) -> int:
    if isinstance(e, NotFoundError):
        return 404
    if isinstance(e, (ConfigError, DataError)):
        return 422
    if isinstance(e, (StoreUnavailable, ModelError)):
        return 503
    return 500  # a rejected query (StoreError) or any other error: ours to fix


# --- metrics ------------------------------------------------------------------------------------
class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("kgrec_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("kgrec_http_request_duration_seconds", "Request latency", ["route"],
                                 buckets=(.001, .0025, .005, .01, .02, .03, .05, .1, .25, .5, 1, 2.5, 5, 10),
                                 registry=self.registry)
        self.errors = Counter("kgrec_http_errors_total", "Error responses by kind", ["route", "error"],
                              registry=self.registry)
        self.persona_source = Counter("kgrec_recommend_persona_total", "Recommendations by persona source",
                                      ["source"], registry=self.registry)
        self.writeback = Counter("kgrec_writeback_lists_total", "Recommendation lists written back",
                                 ["ok"], registry=self.registry)
        self.pending = Gauge("kgrec_writeback_pending", "Lists waiting for write-back", registry=self.registry)
        self.generation = Gauge("kgrec_snapshot_generation", "Reloads so far", registry=self.registry)


# --- app ----------------------------------------------------------------------------------------
class Measure:
    """Request count and latency per route (a plain ASGI middleware: Starlette's ``@app.middleware``
    wraps every response in a stream of its own, which cost more than the known-user answer)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, status = time.perf_counter(), 500

        async def sent(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:  # the router has put the matched route into the shared scope by now
            name = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(name).observe(time.perf_counter() - t0)
            self.metrics.requests.labels(scope["method"], name, str(status)).inc()


def usable_cores() -> int:
    """The cores this process may run on (``sched_getaffinity``; ``cpu_count`` where it is missing)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def create_app(settings: Any = None) -> FastAPI:
    """The app over ``settings`` (default: from the environment, as ``kgrec serve`` workers do)."""
    from kgrec.settings import Settings

    settings = settings or Settings()
    metrics = Metrics()
    state: dict[str, Any] = {}
    # model work is CPU-bound and holds the GIL for much of a request: it runs on one dedicated
    # thread per core this process may use (its CPU affinity: a server pinned with taskset or a
    # cpuset gets fewer; more threads only thrash, and each grows its own malloc arena)
    compute = ThreadPoolExecutor(max_workers=usable_cores(), thread_name_prefix="kgrec-model")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from kgrec.kg.store import open_store
        from kgrec.recommender.serving import Service, WriteBack
        from kgrec.settings import apply_torch_threads

        if settings.torch_threads is None:  # request threads share the cores: one torch thread each
            settings.torch_threads = 1
        apply_torch_threads(settings)
        store = open_store(settings)
        try:
            state["service"] = Service(store, settings)
        except BaseException:
            store.close()
            raise
        state["store"] = store
        state["writeback"] = WriteBack(store, on_done=lambda n, ok: metrics.writeback.labels(str(ok)).inc(n))
        metrics.generation.set(0)
        try:
            yield
        finally:
            compute.shutdown(wait=True)
            state["writeback"].close()
            state["service"].close()
            store.close()

    app = FastAPI(title="kgrec", version="0.1.0", lifespan=lifespan,
                  description="Persona-driven session recommendations over a knowledge graph.")

    app.add_middleware(Measure, metrics=metrics)

    def error(request: Request, status: int, kind: str, message: str, detail: list | None = None):
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.errors.labels(route, kind).inc()
        body = {"error": kind, "message": message} | ({"detail": detail} if detail is not None else {})
        return JSONResponse(body, status_code=status)

    @app.exception_handler(KgrecError)
    async def kgrec_error(request: Request, e: KgrecError):
        status = _status(e)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, e)
        return error(request, status, type(e).__name__, str(e).splitlines()[0] if str(e) else type(e).__name__)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, e: RequestValidationError):
        errs = [{"loc": list(x.get("loc", ())), "msg": x.get("msg", "")} for x in e.errors()]
        first = errs[0] if errs else {"loc": [], "msg": "invalid request"}
        return error(request, 422, "ValidationError",
                     f"invalid {'.'.join(map(str, first['loc']))}: {first['msg']}", errs)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):  # e.g. 400 for an unparsable body
        return error(request, e.status_code, "HTTPError", str(e.detail))

    @app.exception_handler(Exception)
    async def internal(request: Request, e: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return error(request, 500, "InternalError", "internal error; the server log has the details")

    def _recommend(req: RecommendRequest) -> RecommendResponse:
        from kgrec.recommender.serving import recommend

        if req.write and req.user is None:
            raise ConfigError("write needs a known user (anonymous sessions have no User node)")
        service = state["service"]
        recs = recommend(service.snapshot, state["store"], settings, user=req.user, session=req.session,
                         k=req.k, exclude_seen=req.exclude_seen)
        metrics.persona_source.labels(recs.persona_source).inc()
        queued = False
        if req.write:
            state["writeback"].submit(req.user, recs.run_id, list(recs))
            metrics.pending.set(state["writeback"].pending)
            queued = True
        return RecommendResponse(user=recs.user, persona_source=recs.persona_source, notes=recs.notes,
                                 items=[Recommendation(**vars(r)) for r in recs], run=recs.run_id,
                                 write_queued=queued)

    @app.get("/recommend", response_model=RecommendResponse, responses=ERRORS, tags=["recommend"])
    async def recommend_get(user: IdQuery,
                            k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
                            exclude_seen: bool = True) -> RecommendResponse:
        """Next items for a known user (their persona from the snapshot, a new empty session)."""
        req = RecommendRequest(user=user, k=k, exclude_seen=exclude_seen)
        return await asyncio.get_running_loop().run_in_executor(compute, _recommend, req)

    @app.post("/recommend", response_model=RecommendResponse, responses=ERRORS, tags=["recommend"])
    async def recommend_post(req: RecommendRequest) -> RecommendResponse:
        """Next items for a session; without ``user`` the session is anonymous (no past: no persona)."""
        if req.user is None and not req.session:
            raise ConfigError("give a user, a non-empty session, or both")
        return await asyncio.get_running_loop().run_in_executor(compute, _recommend, req)

    @app.get("/explain", response_model=list[ExplanationOut], responses=ERRORS, tags=["explain"])
    def explain(user: IdQuery, item: IdQuery,
                n: Annotated[int, Query(ge=1, le=50)] = 5) -> list[ExplanationOut]:
        """Why ITEM for USER: graph paths with a score and a sentence."""
        from kgrec.recommender.workflow import explain as run

        return [ExplanationOut(**e.to_dict()) for e in run(state["store"], settings, user=user, item=item, n=n)]

    @app.get("/personas", response_model=list[PersonaGroup], tags=["personas"])
    def personas() -> list[PersonaGroup]:
        """The persona groups (from the snapshot), biggest first."""
        return [PersonaGroup(**_group(g)) for g in state["service"].snapshot.groups]

    @app.get("/personas/{persona_id}", response_model=PersonaGroup, responses=ERRORS, tags=["personas"])
    def persona(persona_id: str) -> PersonaGroup:
        """One persona group."""
        return PersonaGroup(**_group(state["service"].snapshot.group(persona_id)))

    @app.get("/health", response_model=Health, responses={503: {"model": Health}}, tags=["ops"])
    def health() -> Any:
        """The store reachable, the loaded model versions and fingerprints."""
        store = state["store"]
        try:
            store.execute("RETURN 1 AS ok", read_only=True)
            reachable = True
        except StoreError:
            reachable = False
        body = Health(status="ok" if reachable else "store unavailable", store=store.uri,
                      store_reachable=reachable, versions=state["service"].snapshot.versions,
                      write_back_pending=state["writeback"].pending)
        return body if reachable else JSONResponse(body.model_dump(), status_code=503)

    @app.post("/reload", response_model=ReloadResponse, responses=ERRORS, tags=["ops"])
    def reload() -> ReloadResponse:
        """Load retrained models and fresh personas; requests keep being answered meanwhile."""
        snap = state["service"].reload()
        metrics.generation.set(snap.versions["generation"])
        return ReloadResponse(reloaded=True, versions=snap.versions)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def prometheus() -> Response:
        """Prometheus text format: request counts, latency histograms, errors."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        metrics.pending.set(state["writeback"].pending)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _group(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["persona"] = str(out.get("persona"))
    for key in ("top_genres", "top_people", "top_items"):
        if isinstance(out.get(key), str):
            out[key] = [out[key]]
    return out


def serve(settings: Any, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          log_level: str = "info", access_log: bool = False) -> None:
    """Run the app with uvicorn (``workers`` > 1: processes that read the settings from the env)."""
    import os

    import uvicorn

    if workers > 1:  # worker processes build their app from the environment
        os.environ["KGREC_HOME"] = str(settings.home)
        if settings.graph_uri:
            os.environ["KGREC_GRAPH_URI"] = settings.graph_uri
        uvicorn.run("kgrec.api:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, access_log=access_log)
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=access_log)
