"""aiohttp handlers: the router's hot path and its admin endpoints.

Hot path rules (each one showed up in measured latency): request and response bodies pass
through as bytes (never parsed or re-encoded), one keep-alive client session pools
connections per replica, no middlewares, no access log, labelled metric children cached.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import aiohttp
from aiohttp import web

from serving.router.admin import THRESHOLD_FIELDS, AdminError, validate_thresholds, validate_weights
from serving.router.admission import PriorityError, parse_priority, shed_reason
from serving.router.auth import check_bearer
from serving.router.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.router.metrics import RouterMetrics
from serving.router.options import RouterOptions
from serving.router.registry import Registry, Replica
from serving.router.tiers import SMALL_MODEL, VIRTUAL_MODEL, TierError, resolve_model

log = logging.getLogger(__name__)

REPLICA_HEADER = "X-Fleetpilot-Replica"
MODEL_HEADER = "X-Fleetpilot-Model"
ZONE_HEADER = "X-Client-Zone"  # the client's zone; overrides the router's local_zone
OTHER_ZONE = "other"  # spill label of a zone no replica is in (client headers must not mint labels)
# KServe binary tensor extension: length of the JSON part of a mixed body.
BINARY_HEADER = "Inference-Header-Content-Length"
MAX_BODY_BYTES = 256 * 1024 * 1024
CONNECT_TIMEOUT_S = 2.0

ROUTER_KEY = web.AppKey("router", "RouterApp")


def _json(status: int, obj: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(obj), content_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json(status, {"error": message}, headers)


class _Failover(Exception):
    """A connection-level failure before anything reached the client: try another replica."""


class RouterApp:
    def __init__(self, options: RouterOptions, registry: Registry | None = None) -> None:
        # Own copy: admin updates change thresholds here, never the caller's object.
        self.options = dataclasses.replace(
            options, admit_below_load_ratio=dict(options.admit_below_load_ratio)
        )
        self.registry = registry or Registry(
            options.state_path,
            health_check_interval_s=options.health_check_interval_s,
            ejection_s=options.ejection_s,
            state_poll_interval_s=options.state_poll_interval_s,
        )
        self.inflight = 0
        self.metrics = RouterMetrics(self.registry, lambda: self.inflight)
        self.session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=options.upstream_timeout_s, sock_connect=CONNECT_TIMEOUT_S
        )
        # Streams may run long: bound the silence between chunks, not the total.
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=options.upstream_timeout_s
        )
        self._retry_counters = {
            r: self.metrics.retries.labels(r) for r in ("infer", "generate", "generate_stream")
        }
        self._shed_counters: dict[str, object] = {}
        self._error_counters: dict[tuple[str, str], object] = {}
        self._spill_counters: dict[tuple[str, str], object] = {}
        self.registry.on_spill = self._count_spill

    # --- lifecycle ---------------------------------------------------------------------
    def build(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app[ROUTER_KEY] = self
        app.router.add_post("/v2/models/{model}/infer", self.handle_infer)
        app.router.add_post("/v2/models/{model}/generate", self.handle_generate)
        app.router.add_post("/v2/models/{model}/generate_stream", self.handle_generate_stream)
        app.router.add_get("/health", self.handle_health)
        app.router.add_get("/metrics", self.handle_metrics)
        app.router.add_get("/admin/state", self.handle_admin_state)
        app.router.add_put("/admin/weights", self.handle_admin_weights)
        app.router.add_put("/admin/thresholds", self.handle_admin_thresholds)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, _app: web.Application) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30.0, enable_cleanup_closed=True),
            timeout=self._timeout,
            # Triton would gzip responses on Accept-Encoding: bytes must pass through as-is.
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            auto_decompress=False,
        )
        await self.registry.start()

    async def _on_cleanup(self, _app: web.Application) -> None:
        await self.registry.stop()
        if self.session is not None:
            await self.session.close()

    # --- hot path ------------------------------------------------------------------------
    async def handle_infer(self, request: web.Request) -> web.StreamResponse:
        return await self._proxy(request, "infer", stream=False)

    async def handle_generate(self, request: web.Request) -> web.StreamResponse:
        return await self._proxy(request, "generate", stream=False)

    async def handle_generate_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._proxy(request, "generate_stream", stream=True)

    async def _proxy(self, request: web.Request, route: str, stream: bool) -> web.StreamResponse:
        started = time.perf_counter()
        opts = self.options
        headers = request.headers
        try:
            priority = parse_priority(
                headers.get("X-Priority"), opts.default_priority, opts.admit_below_load_ratio
            )
            model = resolve_model(
                request.match_info["model"],
                headers.get("X-Complexity"),
                headers.get("X-Tier"),
                opts.tier_complexity_threshold_ratio,
                opts.large_tier_model,
            )
        except (PriorityError, TierError) as exc:
            return _error(400, str(exc))
        if not self.registry.has_model(model):
            return self._unknown_model(request.match_info["model"], model)
        reason = shed_reason(priority, self.inflight, opts.max_inflight_requests, opts.admit_below_load_ratio)
        if reason is not None:
            self._count_shed(priority)
            self.metrics.observe(route, model, priority, 429, time.perf_counter() - started)
            return _error(429, reason, {"Retry-After": "1"})

        zone = headers.get(ZONE_HEADER, "").strip() or opts.local_zone
        body = await request.read()
        fwd = {"Content-Type": headers.get("Content-Type", "application/json")}
        binary_len = headers.get(BINARY_HEADER)
        if binary_len is not None:
            fwd[BINARY_HEADER] = binary_len
        status = 500
        self.inflight += 1
        try:
            if stream:
                resp = await self._forward_stream(request, model, route, body, fwd, zone)
            else:
                resp = await self._forward(model, route, body, fwd, zone)
            status = resp.status
            return resp
        finally:
            self.inflight -= 1
            self.metrics.observe(route, model, priority, status, time.perf_counter() - started)

    def _pick(self, model: str, tried: tuple[Replica, ...], zone: str) -> Replica | None:
        # Read per pick: a live threshold update applies to the next request.
        return self.registry.pick(model, tried, zone, self.options.spill_inflight_per_replica)

    async def _forward(
        self, model: str, route: str, body: bytes, fwd: dict[str, str], zone: str = ""
    ) -> web.StreamResponse:
        tried: tuple[Replica, ...] = ()
        last_error = ""
        for attempt in range(self.options.retries + 1):
            rep = self._pick(model, tried, zone)
            if rep is None:
                break
            if attempt:
                self._retry_counters[route].inc()  # type: ignore[attr-defined]
            rep.inflight += 1
            try:
                async with self.session.post(rep.url(model, route), data=body, headers=fwd) as up:  # type: ignore[union-attr]
                    payload = await up.read()
                    out = {
                        "Content-Type": up.headers.get("Content-Type", "application/json"),
                        REPLICA_HEADER: rep.name,
                        MODEL_HEADER: model,
                    }
                    binary_len = up.headers.get(BINARY_HEADER)
                    if binary_len is not None:
                        out[BINARY_HEADER] = binary_len
                    status = up.status
            except _CONNECT_ERRORS as exc:
                last_error = self._connect_failed(rep, exc)
                tried += (rep,)
                continue
            except _DISCONNECT_ERRORS as exc:
                last_error = self._disconnected(rep, exc)
                tried += (rep,)
                continue
            except TimeoutError:
                self._count_error(rep.name, "timeout")
                return _error(
                    504,
                    f"replica {rep.name} did not answer within {self.options.upstream_timeout_s} s",
                    {REPLICA_HEADER: rep.name},
                )
            except aiohttp.ClientError as exc:
                self._count_error(rep.name, "protocol")
                return _error(
                    502, f"replica {rep.name}: {type(exc).__name__}: {exc}", {REPLICA_HEADER: rep.name}
                )
            finally:
                rep.inflight -= 1
            if status >= 500:
                self._count_error(rep.name, "status_5xx")
            return web.Response(status=status, body=payload, headers=out)
        return self._no_replica(model, last_error)

    async def _forward_stream(
        self,
        request: web.Request,
        model: str,
        route: str,
        body: bytes,
        fwd: dict[str, str],
        zone: str = "",
    ) -> web.StreamResponse:
        tried: tuple[Replica, ...] = ()
        last_error = ""
        for attempt in range(self.options.retries + 1):
            rep = self._pick(model, tried, zone)
            if rep is None:
                break
            if attempt:
                self._retry_counters[route].inc()  # type: ignore[attr-defined]
            rep.inflight += 1
            try:
                return await self._stream_from(request, rep, model, route, body, fwd)
            except _Failover as exc:
                last_error = str(exc)
                tried += (rep,)
            finally:
                rep.inflight -= 1
        return self._no_replica(model, last_error)

    async def _stream_from(
        self, request: web.Request, rep: Replica, model: str, route: str, body: bytes, fwd: dict[str, str]
    ) -> web.StreamResponse:
        """Stream one replica's response; raises _Failover only before the client saw a byte."""
        try:
            up = await self.session.post(
                rep.url(model, route), data=body, headers=fwd, timeout=self._stream_timeout
            )  # type: ignore[union-attr]
        except _CONNECT_ERRORS as exc:
            raise _Failover(self._connect_failed(rep, exc)) from None
        except _DISCONNECT_ERRORS as exc:
            raise _Failover(self._disconnected(rep, exc)) from None
        except TimeoutError:
            self._count_error(rep.name, "timeout")
            return _error(
                504,
                f"replica {rep.name} did not answer within {self.options.upstream_timeout_s} s",
                {REPLICA_HEADER: rep.name},
            )
        async with up:
            if up.status != 200:
                payload = await up.read()
                if up.status >= 500:
                    self._count_error(rep.name, "status_5xx")
                ctype = up.headers.get("Content-Type", "application/json")
                return web.Response(
                    status=up.status,
                    body=payload,
                    headers={"Content-Type": ctype, REPLICA_HEADER: rep.name, MODEL_HEADER: model},
                )
            # Wait for the first chunk before answering, so a replica that dies now can still
            # be failed over: nothing has reached the client yet.
            try:
                first = await up.content.readany()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _Failover(self._disconnected(rep, exc)) from None
            resp = web.StreamResponse(
                status=200,
                headers={
                    "Content-Type": up.headers.get("Content-Type", "text/event-stream"),
                    "Cache-Control": "no-cache",
                    REPLICA_HEADER: rep.name,
                    MODEL_HEADER: model,
                },
            )
            await resp.prepare(request)
            try:
                if first:
                    await resp.write(first)
                    async for chunk in up.content.iter_any():
                        await resp.write(chunk)
            except ConnectionResetError:
                return resp  # the client went away; leaving the block closes the upstream
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Too late to fail over: tell an SSE client in-band, then end the stream.
                self._count_error(rep.name, "stream_broken")
                msg = json.dumps({"error": f"replica {rep.name} broke the stream: {type(exc).__name__}"})
                try:
                    await resp.write(f"data: {msg}\n\n".encode())
                except ConnectionResetError:
                    return resp
            try:
                await resp.write_eof()
            except ConnectionResetError:
                pass
            return resp

    # --- failure bookkeeping ------------------------------------------------------------------
    def _connect_failed(self, rep: Replica, exc: BaseException) -> str:
        msg = f"cannot connect to replica {rep.name}: {type(exc).__name__}: {exc}"
        self._count_error(rep.name, "connect")
        self.registry.eject(rep, msg)
        return msg

    def _disconnected(self, rep: Replica, exc: BaseException) -> str:
        # Not ejected: a keep-alive connection closed by a healthy server looks the same. If
        # the replica is gone, the next attempt fails to connect and ejects it.
        self._count_error(rep.name, "disconnected")
        rep.last_error = f"disconnected: {type(exc).__name__}: {exc}"
        return f"replica {rep.name} closed the connection: {type(exc).__name__}: {exc}"

    def _count_error(self, replica: str, reason: str) -> None:
        key = (replica, reason)
        c = self._error_counters.get(key)
        if c is None:
            c = self._error_counters[key] = self.metrics.upstream_errors.labels(replica, reason)
        c.inc()  # type: ignore[attr-defined]

    def _count_shed(self, priority: str) -> None:
        c = self._shed_counters.get(priority)
        if c is None:
            c = self._shed_counters[priority] = self.metrics.shed.labels(priority)
        c.inc()  # type: ignore[attr-defined]

    def _count_spill(self, zone: str, reason: str) -> None:
        label = zone if zone in self.registry.zones else OTHER_ZONE
        key = (label, reason)
        c = self._spill_counters.get(key)
        if c is None:
            c = self._spill_counters[key] = self.metrics.zone_spills.labels(label, reason)
        c.inc()  # type: ignore[attr-defined]

    def _served(self) -> list[str]:
        served = set(self.registry.served_models)
        if SMALL_MODEL in served:
            served.add(VIRTUAL_MODEL)
        return sorted(served)

    def _unknown_model(self, requested: str, resolved: str) -> web.Response:
        what = (
            f"model {requested!r}" if requested == resolved else f"model {resolved!r} (tier of {requested!r})"
        )
        return _error(404, f"{what} is not served by any replica; served models: {self._served()}")

    def _no_replica(self, model: str, last_error: str) -> web.Response:
        if last_error:
            return _error(
                502, f"no replica could take the request for model {model!r}; last error: {last_error}"
            )
        return _error(503, f"no healthy replica serves model {model!r} right now", {"Retry-After": "1"})

    # --- plain endpoints ------------------------------------------------------------------
    async def handle_health(self, _request: web.Request) -> web.Response:
        snap = self.registry.snapshot()
        return _json(
            200,
            {
                "status": "ok",
                "replicas": len(snap),
                "healthy_replicas": sum(1 for r in snap if r["healthy"]),
                "replicas_in_rotation": sum(1 for r in snap if r["in_rotation"]),
                "inflight": self.inflight,
            },
        )

    async def handle_metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    # --- admin ------------------------------------------------------------------------------
    def _auth(self, request: web.Request) -> web.Response | None:
        code = check_bearer(request.headers.get("Authorization"), self.options.api_token)
        if code == 401:
            return _error(
                401, "missing bearer token (Authorization: Bearer <token>)", {"WWW-Authenticate": "Bearer"}
            )
        if code == 403:
            return _error(403, "wrong bearer token")
        return None

    def _thresholds(self) -> dict:
        return {f: getattr(self.options, f) for f in THRESHOLD_FIELDS}

    def _zones(self) -> dict[str, dict]:
        """Per zone: replicas in rotation and their mean in-flight (what spill-over compares)."""
        count: dict[str, int] = {}
        inflight: dict[str, int] = {}
        for r in self.registry.snapshot():
            count.setdefault(r["zone"], 0)
            inflight.setdefault(r["zone"], 0)
            if r["in_rotation"]:
                count[r["zone"]] += 1
                inflight[r["zone"]] += r["inflight"]
        return {
            z: {
                "replicas_in_rotation": n,
                "inflight": inflight[z],
                "inflight_per_replica": round(inflight[z] / n, 4) if n else None,
            }
            for z, n in count.items()
        }

    def state(self) -> dict:
        opts = self.options
        return {
            "replicas": self.registry.snapshot(),
            "inflight": self.inflight,
            "load_ratio": round(self.inflight / opts.max_inflight_requests, 4),
            "thresholds": self._thresholds(),
            "zones": self._zones(),
            "served_models": self._served(),
            "state_path": str(opts.state_path),
            "state_error": self.registry.state_error,
        }

    async def handle_admin_state(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        return denied or _json(200, self.state())

    async def _json_body(self, request: web.Request) -> object:
        try:
            return await request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise AdminError(f"body is not valid JSON: {exc}") from None

    async def handle_admin_weights(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied:
            return denied
        try:
            weights = validate_weights(await self._json_body(request), self.registry.replicas.keys())
        except AdminError as exc:
            return _error(400, str(exc))
        self.registry.set_weights(weights)
        log.info("weights set: %s", weights)
        return _json(200, {"weights": {r.name: r.weight for r in self.registry.replicas.values()}})

    async def handle_admin_thresholds(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied:
            return denied
        try:
            changes = validate_thresholds(await self._json_body(request), self._thresholds())
        except AdminError as exc:
            return _error(400, str(exc))
        for name, value in changes.items():
            setattr(self.options, name, value)
        log.info("thresholds set: %s", changes)
        return _json(200, {"thresholds": self._thresholds()})


# ClientConnectorError: refused / unreachable. ConnectionTimeoutError: connect timed out.
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
)
# Connection dropped (server died mid-request, or closed a pooled keep-alive connection).
_DISCONNECT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)

__all__ = ["RouterApp", "REPLICA_HEADER", "MODEL_HEADER", "ZONE_HEADER"]
