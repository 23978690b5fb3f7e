"""`create_app(ctx)`: the FastAPI app of the control plane (contract: see README "API").

Every store call holds `ctx.store_lock` inside a span (reads.py); the store's outages become 503
with the store's message, never a stack trace.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, HTTPException, Path, Query, Request, Security
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from controlplane.api import reads
from controlplane.api.auth import require_token
from controlplane.api.context import ApiContext, store_span
from controlplane.api.jsonify import cell, iso
from controlplane.api.metrics import ApiMetrics
from controlplane.api.overrides import (
    Override,
    OverrideRequest,
    active_overrides,
    effective_overrides,
)
from controlplane.api.query import Limits, QueryRefused, check_read_only, execute_read_only
from controlplane.api.series import SERIES, SeriesParamError, series_sql
from controlplane.api.slo import burn_rate, cost_summary, within_slo_ratio
from controlplane.api.tracing import make_api_tracer
from controlplane.api.views import compose_models, compose_replicas
from controlplane.store.errors import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

MAX_SINCE_S = 400 * 86400.0
SinceS = Annotated[float, Query(gt=0, le=MAX_SINCE_S, description="Window back from now (seconds).")]
Limit = Annotated[int, Query(ge=1, le=10_000, description="Most rows returned.")]
Name = Annotated[str | None, Query(max_length=200)]
_ERR = {"content": {"application/json": {"example": {"detail": "message"}}}}
_STORE_DOWN = {503: {"description": "The store is unreachable", **_ERR}}
_bearer = HTTPBearer(auto_error=False, description="FLEETPILOT_API_TOKEN")


class QueryRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"sql": "SELECT model, count() AS n FROM decisions GROUP BY model", "max_rows": 100}]
        },
    )

    sql: str = Field(..., min_length=1, max_length=100_000, description="One read-only statement.")
    max_rows: int | None = Field(None, ge=1, description="Rows returned at most (<= api.query_max_rows).")


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def _now(ctx: ApiContext) -> float:
    return ctx.now_s()


def create_app(ctx: ApiContext, metrics: ApiMetrics | None = None) -> FastAPI:
    if ctx.tracer is None:
        ctx.tracer = make_api_tracer(ctx.settings.collect.otlp_endpoint)
    m = metrics or ApiMetrics()
    app = FastAPI(
        title="fleetpilot control plane",
        version="1",
        description="Status, fleet views, audit trail, overrides and read-only SQL over the telemetry history.",
    )
    app.state.ctx = ctx
    app.state.metrics = m

    # ---- plumbing ---------------------------------------------------------------------------
    @app.middleware("http")
    async def _count(request: Request, call_next):
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", None) or "<unmatched>"
            m.requests.labels(path, request.method, str(status)).inc()
            m.request_duration.labels(path, request.method).observe(time.perf_counter() - t0)

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable):
        m.store_errors.labels("unavailable").inc()
        return JSONResponse({"detail": f"store unavailable: {exc}"}, status_code=503)

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError):
        m.store_errors.labels("rejected").inc()
        log.error("store call failed on %s: %s", request.url.path, exc)
        return JSONResponse({"detail": f"store error: {exc}"}, status_code=500)

    # ---- health and metrics -----------------------------------------------------------------
    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/metrics", tags=["meta"], response_class=PlainTextResponse)
    def metrics_text():
        return PlainTextResponse(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    # ---- status, models, replicas -----------------------------------------------------------
    def _open_events(c: ApiContext, now_s: float) -> list[dict]:
        return reads.open_incidents(c, now_s=now_s)

    def _effective(c: ApiContext, now_s: float):
        rows = reads.override_rows(c)
        return rows, effective_overrides(rows, now_s)

    def _models_from_store(c: ApiContext, now_s: float, *, full: bool = True, shared=None) -> list[dict]:
        """`full=False` skips the telemetry reads (rates, p99, capacity, forecasts): enough to count."""
        x = shared or _fleet_reads(c, now_s)
        _, eff = _effective(c, now_s)
        return compose_models(
            settings=c.settings,
            spec=x["spec"],
            status=x["status"],
            targets=x["targets"],
            stats=reads.model_window_stats(c, now_s=now_s, window_s=c.settings.api.summary_window_s)
            if full
            else {},
            capacity=reads.capacity_by_model(c) if full else {},
            forecast_p90=reads.forecast_p90_by_model(
                c, now_s=now_s, ahead_s=c.settings.control.replica_startup_s
            )
            if full
            else {},
            last_decision=reads.last_decisions(c, now_s=now_s),
            open_events=x["open"],
            effective=eff,
        )

    def _fleet_reads(c: ApiContext, now_s: float) -> dict:
        return {
            "spec": reads.replica_spec(c),
            "status": reads.replica_status(c, now_s=now_s),
            "targets": reads.recent_targets(c, now_s=now_s),
            "open": _open_events(c, now_s),
        }

    def _replicas_from_store(c: ApiContext, now_s: float, shared=None) -> list[dict]:
        x = shared or _fleet_reads(c, now_s)
        return compose_replicas(x["spec"], x["status"], x["targets"], x["open"])

    @app.get("/v1/status", tags=["fleet"])
    def status(c: ApiContext = Depends(_ctx)) -> dict:
        now_s = _now(c)
        ok = reads.store_ok(c)
        shared = None
        if c.controller is not None:
            controller = dict(c.controller.status())
            if isinstance(controller.get("last_tick_at"), int | float):
                controller["last_tick_at"] = iso(controller["last_tick_at"])
            models = c.controller.models()
            replicas = c.controller.replicas()
        else:
            controller = {
                "running": False,
                "role": "none",
                "tick_count": 0,
                "last_tick_at": None,
                "interval_s": 0.0,
                "last_error": None,
            }
            shared = _fleet_reads(c, now_s) if ok else None
            models = _models_from_store(c, now_s, full=False, shared=shared) if ok else []
            replicas = _replicas_from_store(c, now_s, shared=shared) if ok else []
        ready = sum(1 for r in replicas if (r.get("observed") or {}).get("ready"))
        return {
            "now": iso(now_s),
            "controller": cell(controller),
            "store": {"ok": ok, "kind": "embedded" if c.store.embedded else "server"},
            "models": len(models),
            "replicas": len(replicas),
            "replicas_ready": ready,
            "open_incidents": (len(shared["open"]) if shared else len(_open_events(c, now_s))) if ok else 0,
            "overrides": [o.as_json() for o in active_overrides(reads.override_rows(c), now_s)] if ok else [],
        }

    @app.get("/v1/models", tags=["fleet"], responses=_STORE_DOWN)
    def models(c: ApiContext = Depends(_ctx)) -> dict:
        if c.controller is not None:
            return {"models": cell(c.controller.models())}
        return {"models": _models_from_store(c, _now(c))}

    @app.get("/v1/replicas", tags=["fleet"], responses=_STORE_DOWN)
    def replicas(c: ApiContext = Depends(_ctx)) -> dict:
        if c.controller is not None:
            return {"replicas": cell(c.controller.replicas())}
        return {"replicas": _replicas_from_store(c, _now(c))}

    # ---- audit trail ------------------------------------------------------------------------
    @app.get("/v1/decisions", tags=["audit"], responses=_STORE_DOWN)
    def decisions(
        model: Name = None,
        policy: Name = None,
        since_s: SinceS = 3600.0,
        limit: Limit = 200,
        c: ApiContext = Depends(_ctx),
    ) -> dict:
        rows = reads.decisions(c, now_s=_now(c), since_s=since_s, limit=limit, model=model, policy=policy)
        return {"decisions": rows}

    @app.get("/v1/actions", tags=["audit"], responses=_STORE_DOWN)
    def actions(
        model: Name = None, since_s: SinceS = 3600.0, limit: Limit = 200, c: ApiContext = Depends(_ctx)
    ) -> dict:
        return {"actions": reads.actions(c, now_s=_now(c), since_s=since_s, limit=limit, model=model)}

    @app.get("/v1/anomalies", tags=["audit"], responses=_STORE_DOWN)
    def anomalies(
        model: Name = None,
        replica: Name = None,
        state: Literal["open", "all"] = "all",
        since_s: SinceS = 3600.0,
        limit: Limit = 200,
        c: ApiContext = Depends(_ctx),
    ) -> dict:
        return reads.anomalies(
            c, now_s=_now(c), since_s=since_s, limit=limit, model=model, replica=replica, state=state
        )

    @app.get("/v1/forecasts", tags=["audit"], responses=_STORE_DOWN)
    def forecasts(
        model: Name = None,
        metric: Name = None,
        since_s: SinceS = 3600.0,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 2000,
        c: ApiContext = Depends(_ctx),
    ) -> dict:
        rows = reads.forecasts(c, now_s=_now(c), since_s=since_s, limit=limit, model=model, metric=metric)
        return {"forecasts": rows}

    # ---- series, SLO, cost ------------------------------------------------------------------
    @app.get(
        "/v1/series/{name}",
        tags=["telemetry"],
        responses={400: {"description": "Parameters do not fit the series", **_ERR},
                   404: {"description": "Unknown series name", **_ERR}, **_STORE_DOWN},
    )  # fmt: skip
    def series(
        name: Annotated[str, Path(description=f"One of: {', '.join(SERIES)}")],
        since_s: SinceS = 3600.0,
        step_s: Annotated[int, Query(ge=1, le=86400, description="Bucket width (seconds).")] = 60,
        model: Name = None,
        replica: Name = None,
        by: Annotated[
            str | None, Query(max_length=100, description="Comma list of model, target, zone.")
        ] = None,
        c: ApiContext = Depends(_ctx),
    ) -> dict:
        if name not in SERIES:
            raise HTTPException(404, f"unknown series {name!r}; valid names: {', '.join(SERIES)}")
        try:
            sql, by_cols = series_sql(
                name, now_s=_now(c), since_s=since_s, step_s=step_s, by=by, model=model, replica=replica
            )
        except SeriesParamError as exc:
            raise HTTPException(400, str(exc)) from None
        rows = reads.query(c, f"series.{name}", sql)
        columns = list(rows[0].keys()) if rows else ["ts", *by_cols]
        return {"name": name, "columns": columns, "rows": [{k: cell(v) for k, v in r.items()} for r in rows]}

    @app.get("/v1/slo", tags=["telemetry"], responses=_STORE_DOWN)
    def slo(since_s: SinceS = 3600.0, c: ApiContext = Depends(_ctx)) -> dict:
        objective = c.settings.api.slo_objective_ratio
        out = []
        for model, buckets in sorted(reads.latency_buckets(c, now_s=_now(c), since_s=since_s).items()):
            slo_ms = c.settings.control.slo_for(model)
            total, within = within_slo_ratio(buckets, slo_ms)
            out.append(
                {
                    "model": model,
                    "slo_p99_ms": slo_ms,
                    "requests": total,
                    "within_slo_ratio": within,
                    "burn_rate": burn_rate(within, objective),
                }
            )
        return {"objective_ratio": objective, "models": out}

    @app.get("/v1/cost", tags=["telemetry"], responses=_STORE_DOWN)
    def cost(since_s: SinceS = 3600.0, c: ApiContext = Depends(_ctx)) -> dict:
        x = reads.cost_inputs(c, now_s=_now(c), since_s=since_s)
        api = c.settings.api
        return cell(
            cost_summary(
                window_s=since_s,
                replica_hours=x["replica_hours"] or 0.0,
                gpu_hours_observed=x["gpu_hours"] or 0.0,
                gpus_per_replica=api.gpus_per_replica_count,
                price_per_gpu_hour=api.gpu_price_per_hour,
                inferences=x["inferences"] or 0.0,
                energy_j=x["energy_j"],
            )
        )

    # ---- overrides --------------------------------------------------------------------------
    ov_lock = threading.Lock()
    last_ov_ts = [0.0]

    @app.get("/v1/overrides", tags=["overrides"], responses=_STORE_DOWN)
    def list_overrides(c: ApiContext = Depends(_ctx)) -> dict:
        now_s = _now(c)
        return {"overrides": [o.as_json() for o in active_overrides(reads.override_rows(c), now_s)]}

    @app.post(
        "/v1/overrides",
        tags=["overrides"],
        dependencies=[Security(_bearer), Depends(require_token)],
        responses={401: {"description": "No bearer token", **_ERR}, 403: {"description": "Wrong token", **_ERR},
                   503: {"description": "No token configured, or the store is unreachable", **_ERR}},
    )  # fmt: skip
    def post_override(body: OverrideRequest, c: ApiContext = Depends(_ctx)) -> dict:
        with ov_lock:
            # Strictly increasing times: overrides fold in time order, and two posted in the same
            # millisecond must keep the order they arrived in.
            ts = max(_now(c), last_ov_ts[0] + 0.001)
            last_ov_ts[0] = ts
        ov = Override.from_request(body, ts)
        reads.insert_override(c, ov)
        m.overrides.labels(ov.action).inc()
        out: dict[str, Any] = {"override": ov.as_json()}
        if c.controller is not None:
            try:
                c.controller.on_override(ov)
            except Exception as exc:  # noqa: BLE001 - stored; the loop picks it up on its next load
                log.exception("controller.on_override failed")
                out["warning"] = f"stored, but the running controller did not take it: {exc}"
        return out

    # ---- read-only SQL ----------------------------------------------------------------------
    @app.post(
        "/v1/query",
        tags=["telemetry"],
        responses={400: {"description": "Refused or failed statement", **_ERR},
                   408: {"description": "Time limit reached", **_ERR}, **_STORE_DOWN},
    )  # fmt: skip
    def run_query(body: Annotated[QueryRequest, Body()], c: ApiContext = Depends(_ctx)) -> dict:
        api = c.settings.api
        if body.max_rows is not None and body.max_rows > api.query_max_rows:
            m.query_refusals.labels("max_rows").inc()
            raise HTTPException(
                400,
                f"max_rows {body.max_rows} is above the server's cap of {api.query_max_rows} (api.query_max_rows)",
            )
        try:
            statement = check_read_only(body.sql)
        except QueryRefused as exc:
            m.query_refusals.labels(exc.reason).inc()
            raise HTTPException(exc.status, str(exc)) from None
        limits = Limits(
            max_rows=body.max_rows or api.query_max_rows,
            max_execution_s=api.query_max_execution_s,
            max_result_bytes=api.query_max_result_bytes,
        )
        try:
            with store_span(c, "user_query", **{"db.system": "clickhouse", "db.statement": statement[:2000]}):
                if c.store.client is None:
                    raise StoreUnavailable("the store is closed (the process is shutting down)")
                answer = execute_read_only(c.store.client, statement, limits)
        except QueryRefused as exc:
            m.query_refusals.labels(exc.reason).inc()
            raise HTTPException(exc.status, str(exc)) from None
        if answer.truncated:
            m.query_truncated.inc()
        return answer.as_json()

    return app
