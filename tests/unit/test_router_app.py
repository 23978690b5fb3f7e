"""The router's aiohttp app against fake upstream aiohttp servers (no Triton).

Each test runs its own event loop (asyncio.run); fake replicas and the router bind to
127.0.0.1 on ephemeral ports, so tests never collide with anything else running.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from serving.fleet_state import FleetState, ReplicaRecord, write_state
from serving.router.app import RouterApp
from serving.router.options import RouterOptions
from tests.support.ports import free_port

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
INFER_BODY = b'{"inputs":[{"name":"features","shape":[1,2],"datatype":"FP32","data":[0.5,0.25]}]}'


class FakeReplica:
    """An aiohttp server answering like a Triton replica; records what it received."""

    def __init__(self, name: str, delay_s: float = 0.0) -> None:
        self.name = name
        self.delay_s = delay_s
        self.bodies: list[bytes] = []
        self.headers: list[dict] = []
        self.gate: asyncio.Event | None = None  # when set, infer waits for it
        self.arrived = 0
        self.stream_release: asyncio.Event | None = None
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def infer(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        self.arrived += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        model = request.match_info["model"]
        # Deliberately odd formatting: a router that re-encoded JSON would change these bytes.
        payload = b'{"model_name" : "%s",  "from":"%s", "echo_len": %d}' % (
            model.encode(),
            self.name.encode(),
            len(body),
        )
        return web.Response(
            body=payload, headers={"Content-Type": "application/json", "Inference-Header-Content-Length": "7"}
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"token_id": 1}\n\n')
        if self.stream_release is not None:
            await self.stream_release.wait()  # proves the router forwarded token 1 before token 2 exists
        await resp.write(b'data: {"token_id": 2}\n\n')
        await resp.write_eof()
        return resp

    async def ready(self, _request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v2/models/{model}/infer", self.infer)
        app.router.add_post("/v2/models/{model}/generate_stream", self.stream)
        app.router.add_get("/v2/health/ready", self.ready)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port or 0, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def _record(name: str, port: int, models: list[str], zone: str = "zone-a") -> ReplicaRecord:
    return ReplicaRecord(
        name=name, zone=zone, region="local", slot=0, host="127.0.0.1",
        http_port=port, grpc_port=port, metrics_port=port, pid=None, models=models, workdir="/tmp",
    )  # fmt: skip


@asynccontextmanager
async def router_env(tmp_path: Path, replicas: list[tuple], **opts):
    """Router client over fakes; replicas = [(name, port or None for a fake, models[, zone])]."""
    fakes: dict[str, FakeReplica] = {}
    records = []
    for name, port, models, *zone in replicas:
        if port is None:
            fake = fakes[name] = FakeReplica(name)
            await fake.start()
            port = fake.port
        records.append(_record(name, port, models, *zone))
    state_path = tmp_path / "state.json"
    write_state(state_path, FleetState(replicas=records))
    options = RouterOptions(state_path=state_path, api_token=TOKEN, **opts)
    router = RouterApp(options)
    client = TestClient(TestServer(router.build()))
    await client.start_server()
    try:
        yield client, router, fakes
    finally:
        await client.close()
        for f in fakes.values():
            await f.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


CLS = ["classifier-small", "classifier-large"]


def test_proxies_bytes_both_ways(tmp_path):
    async def scenario():
        async with router_env(tmp_path, [("replica-0", None, CLS)]) as (client, _router, fakes):
            resp = await client.post(
                "/v2/models/classifier-small/infer",
                data=INFER_BODY,
                headers={"Content-Type": "application/json", "X-Priority": "premium"},
            )
            body = await resp.read()
            assert resp.status == 200
            assert fakes["replica-0"].bodies == [INFER_BODY]  # request bytes untouched
            assert body == b'{"model_name" : "classifier-small",  "from":"replica-0", "echo_len": %d}' % len(
                INFER_BODY
            )
            assert resp.headers["X-Fleetpilot-Replica"] == "replica-0"
            assert resp.headers["X-Fleetpilot-Model"] == "classifier-small"
            assert resp.headers["Inference-Header-Content-Length"] == "7"
            assert "Accept-Encoding" not in fakes["replica-0"].headers[0]  # no upstream compression

    run(scenario())


def test_tier_routing_picks_model(tmp_path):
    async def scenario():
        async with router_env(tmp_path, [("replica-0", None, CLS)]) as (client, _router, _fakes):
            for headers, expected in [
                ({"X-Complexity": "0.1"}, "classifier-small"),
                ({"X-Complexity": "0.9"}, "classifier-large"),
                ({"X-Complexity": "0.9", "X-Tier": "small"}, "classifier-small"),
            ]:
                resp = await client.post("/v2/models/classifier/infer", data=INFER_BODY, headers=headers)
                assert resp.status == 200
                assert resp.headers["X-Fleetpilot-Model"] == expected
                assert (await resp.json(content_type=None))["model_name"] == expected
            resp = await client.post(
                "/v2/models/classifier/infer", data=INFER_BODY, headers={"X-Tier": "large-int8"}
            )
            assert resp.status == 404  # tier model not served here
            assert "classifier-large-int8" in (await resp.json())["error"]

    run(scenario())


def test_streaming_is_passed_through_chunk_by_chunk(tmp_path):
    async def scenario():
        async with router_env(tmp_path, [("replica-0", None, ["chat-lm"])]) as (client, _router, fakes):
            fakes["replica-0"].stream_release = asyncio.Event()
            resp = await client.post(
                "/v2/models/chat-lm/generate_stream", data=b'{"input_ids":[1],"max_tokens":2}'
            )
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            # Token 1 must arrive while the upstream is still holding token 2: not buffered.
            first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
            assert first == b'data: {"token_id": 1}\n\n'
            fakes["replica-0"].stream_release.set()
            rest = await resp.content.read()
            assert rest == b'data: {"token_id": 2}\n\n'

    run(scenario())


def test_unknown_model_is_404_listing_served(tmp_path):
    async def scenario():
        async with router_env(tmp_path, [("replica-0", None, ["classifier-small", "chat-lm"])]) as (
            client,
            _r,
            _f,
        ):
            resp = await client.post("/v2/models/nope/infer", data=INFER_BODY)
            assert resp.status == 404
            err = (await resp.json())["error"]
            assert (
                "'nope'" in err and "chat-lm" in err and "classifier-small" in err and "'classifier'" in err
            )

    run(scenario())


def test_bad_priority_and_complexity_are_400(tmp_path):
    async def scenario():
        async with router_env(tmp_path, [("replica-0", None, CLS)]) as (client, _r, _f):
            resp = await client.post(
                "/v2/models/classifier-small/infer", data=INFER_BODY, headers={"X-Priority": "vip"}
            )
            assert resp.status == 400
            assert "premium, standard, batch" in (await resp.json())["error"]
            resp = await client.post(
                "/v2/models/classifier/infer", data=INFER_BODY, headers={"X-Complexity": "high"}
            )
            assert resp.status == 400

    run(scenario())


def test_no_healthy_replica_is_503(tmp_path):
    async def scenario():
        dead = free_port()  # nothing listens: health check fails, replica never in rotation
        async with router_env(tmp_path, [("replica-0", dead, CLS)]) as (client, router, _f):
            assert router.registry.replicas["replica-0"].healthy is False
            resp = await client.post("/v2/models/classifier-small/infer", data=INFER_BODY)
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "1"
            assert "no healthy replica" in (await resp.json())["error"]

    run(scenario())


def test_drained_replica_gets_nothing(tmp_path):
    async def scenario():
        async with router_env(tmp_path, [("replica-0", None, CLS), ("replica-1", None, CLS)]) as (
            client,
            router,
            fakes,
        ):
            router.registry.set_weights({"replica-0": 0})
            for _ in range(10):
                resp = await client.post("/v2/models/classifier-small/infer", data=INFER_BODY)
                assert resp.headers["X-Fleetpilot-Replica"] == "replica-1"
            assert fakes["replica-0"].bodies == []

    run(scenario())


def test_failover_on_refused_connection_ejects(tmp_path):
    async def scenario():
        async with router_env(
            tmp_path, [("replica-0", None, CLS), ("replica-1", None, CLS)], ejection_s=30.0
        ) as (
            client,
            router,
            fakes,
        ):
            await fakes["replica-0"].stop()  # was healthy at start; now refuses connections
            seen = []
            for _ in range(6):
                resp = await client.post("/v2/models/classifier-small/infer", data=INFER_BODY)
                assert resp.status == 200, await resp.text()
                seen.append(resp.headers["X-Fleetpilot-Replica"])
            assert seen == ["replica-1"] * 6
            rep = router.registry.replicas["replica-0"]
            assert rep.ejected(time.monotonic())
            assert "cannot connect" in rep.last_error
            metrics = await (await client.get("/metrics")).text()
            assert 'fleetpilot_router_retries_total{route="infer"} 1.0' in metrics
            assert (
                'fleetpilot_router_upstream_errors_total{reason="connect",replica="replica-0"} 1.0' in metrics
            )
            assert 'fleetpilot_router_replica_ejected{replica="replica-0"} 1.0' in metrics

    run(scenario())


def test_stream_fails_over_before_first_byte(tmp_path):
    async def scenario():
        async with router_env(
            tmp_path, [("replica-0", None, ["chat-lm"]), ("replica-1", None, ["chat-lm"])]
        ) as (
            client,
            router,
            fakes,
        ):
            await fakes["replica-0"].stop()
            for _ in range(2):  # whichever is picked first, both requests end on replica-1
                resp = await client.post("/v2/models/chat-lm/generate_stream", data=b"{}")
                assert resp.status == 200
                assert resp.headers["X-Fleetpilot-Replica"] == "replica-1"
                assert (await resp.read()).count(b"data:") == 2

    run(scenario())


def test_all_replicas_refusing_is_502_after_retries(tmp_path):
    async def scenario():
        async with router_env(tmp_path, [("replica-0", None, CLS)]) as (client, _router, fakes):
            await fakes["replica-0"].stop()
            resp = await client.post("/v2/models/classifier-small/infer", data=INFER_BODY)
            assert resp.status == 502
            assert "cannot connect to replica replica-0" in (await resp.json())["error"]
            resp = await client.post("/v2/models/classifier-small/infer", data=INFER_BODY)
            assert resp.status == 503  # now ejected: out of rotation

    run(scenario())


def test_shedding_order_under_concurrent_load(tmp_path):
    """max 10 in flight; batch admitted below 5, standard below 8, premium below 10."""

    async def scenario():
        async with router_env(tmp_path, [("replica-0", None, CLS)], max_inflight_requests=10) as (
            client,
            router,
            fakes,
        ):
            fake = fakes["replica-0"]
            fake.gate = asyncio.Event()  # hold every admitted request upstream
            held: list[asyncio.Task] = []
            statuses: dict[str, list[int]] = {"batch": [], "standard": [], "premium": []}

            async def send(priority: str) -> aiohttp.ClientResponse:
                return await client.post(
                    "/v2/models/classifier-small/infer", data=INFER_BODY, headers={"X-Priority": priority}
                )

            async def fill(priority: str, attempts: int) -> None:
                for _ in range(attempts):
                    before = fake.arrived
                    task = asyncio.create_task(send(priority))
                    # Either it reaches the upstream (admitted, held) or it comes back 429.
                    while fake.arrived == before and not task.done():
                        await asyncio.sleep(0.005)
                    if task.done():
                        resp = task.result()
                        statuses[priority].append(resp.status)
                        if resp.status == 429:
                            assert resp.headers["Retry-After"] == "1"
                            err = (await resp.json())["error"]
                            assert err.startswith(f"overloaded: shed priority '{priority}' at load ")
                    else:
                        statuses[priority].append(200)
                        held.append(task)

            await fill("batch", 7)  # 5 admitted (load 0.0..0.4), then shed at 0.5
            await fill("standard", 5)  # 3 more admitted (0.5..0.7), shed at 0.8
            await fill("premium", 4)  # 2 more (0.8, 0.9), shed at 1.0
            assert statuses == {
                "batch": [200] * 5 + [429] * 2,
                "standard": [200] * 3 + [429] * 2,
                "premium": [200] * 2 + [429] * 2,
            }
            assert router.inflight == 10
            fake.gate.set()
            results = await asyncio.gather(*held)
            assert [r.status for r in results] == [200] * 10
            assert router.inflight == 0
            metrics = await (await client.get("/metrics")).text()
            assert 'fleetpilot_router_shed_total{priority="batch"} 2.0' in metrics
            assert (
                'fleetpilot_router_request_duration_seconds_count{model="classifier-small",priority="batch",route="infer"} 7.0'
                in metrics
            )

    run(scenario())


def test_admin_auth_and_updates(tmp_path):
    async def scenario():
        async with router_env(tmp_path, [("replica-0", None, CLS), ("replica-1", None, CLS)]) as (
            client,
            router,
            _f,
        ):
            for method, path in [
                ("GET", "/admin/state"),
                ("PUT", "/admin/weights"),
                ("PUT", "/admin/thresholds"),
            ]:
                assert (await client.request(method, path)).status == 401
                resp = await client.request(method, path, headers={"Authorization": "Bearer nope"})
                assert resp.status == 403
            resp = await client.get("/admin/state", headers=AUTH)
            assert resp.status == 200
            state = await resp.json()
            assert [r["name"] for r in state["replicas"]] == ["replica-0", "replica-1"]
            assert all(r["healthy"] and r["weight"] == 1.0 for r in state["replicas"])
            assert state["thresholds"]["admit_below_load_ratio"] == {
                "premium": 1.0,
                "standard": 0.8,
                "batch": 0.5,
            }

            resp = await client.put("/admin/weights", json={"weights": {"replica-0": 3}}, headers=AUTH)
            assert resp.status == 200
            assert (await resp.json())["weights"] == {"replica-0": 3.0, "replica-1": 1.0}
            resp = await client.put("/admin/weights", json={"weights": {"replica-7": 3}}, headers=AUTH)
            assert resp.status == 400
            assert "replica-7" in (await resp.json())["error"]

            resp = await client.put(
                "/admin/thresholds",
                json={
                    "tier_complexity_threshold_ratio": 0.9,
                    "admit_below_load_ratio": {"batch": 0.3},
                    "max_inflight_requests": 5,
                },
                headers=AUTH,
            )
            assert resp.status == 200
            assert router.options.max_inflight_requests == 5
            assert router.options.admit_below_load_ratio["batch"] == 0.3
            resp = await client.post(
                "/v2/models/classifier/infer", data=INFER_BODY, headers={"X-Complexity": "0.8"}
            )
            assert resp.headers["X-Fleetpilot-Model"] == "classifier-small"  # new threshold 0.9 applies
            resp = await client.put(
                "/admin/thresholds", json={"admit_below_load_ratio": {"batch": 2}}, headers=AUTH
            )
            assert resp.status == 400
            assert "admit_below_load_ratio.batch" in (await resp.json())["error"]
            resp = await client.put("/admin/thresholds", data=b"{not json", headers=AUTH)
            assert resp.status == 400

    run(scenario())


def test_weighted_split_through_app(tmp_path):
    async def scenario():
        async with router_env(tmp_path, [("replica-0", None, CLS), ("replica-1", None, CLS)]) as (
            client,
            router,
            _f,
        ):
            router.registry.set_weights({"replica-0": 3, "replica-1": 1})
            names = []
            for _ in range(80):
                resp = await client.post("/v2/models/classifier-small/infer", data=INFER_BODY)
                names.append(resp.headers["X-Fleetpilot-Replica"])
            assert names.count("replica-0") == 60

    run(scenario())


def test_state_file_changes_are_picked_up(tmp_path):
    async def scenario():
        async with router_env(tmp_path, [("replica-0", None, CLS)], state_poll_interval_s=0.05) as (
            client,
            router,
            _f,
        ):
            extra = FakeReplica("replica-1")
            await extra.start()
            try:
                state_path = router.options.state_path
                records = [
                    router.registry.replicas["replica-0"].record,
                    _record("replica-1", extra.port, ["chat-lm"]),
                ]
                time.sleep(0.01)  # distinct mtime
                write_state(state_path, FleetState(replicas=records))
                for _ in range(100):
                    rep = router.registry.replicas.get("replica-1")
                    if rep is not None and rep.healthy:
                        break
                    await asyncio.sleep(0.02)
                resp = await client.post("/v2/models/chat-lm/generate_stream", data=b"{}")
                assert resp.status == 200
                assert resp.headers["X-Fleetpilot-Replica"] == "replica-1"
                write_state(state_path, FleetState(replicas=records[:1]))
                for _ in range(100):
                    if "replica-1" not in router.registry.replicas:
                        break
                    await asyncio.sleep(0.02)
                resp = await client.post("/v2/models/chat-lm/generate_stream", data=b"{}")
                assert resp.status == 404
            finally:
                await extra.stop()

    run(scenario())


def test_health_and_metrics_endpoints(tmp_path):
    async def scenario():
        async with router_env(tmp_path, [("replica-0", None, CLS)]) as (client, _router, _f):
            resp = await client.get("/health")
            assert resp.status == 200
            assert await resp.json() == {
                "status": "ok",
                "replicas": 1,
                "healthy_replicas": 1,
                "replicas_in_rotation": 1,
                "inflight": 0,
            }
            await client.post("/v2/models/classifier-small/infer", data=INFER_BODY)
            text = await (await client.get("/metrics")).text()
            assert 'fleetpilot_router_replica_healthy{replica="replica-0"} 1.0' in text
            assert 'fleetpilot_router_replica_inflight_requests{replica="replica-0"} 0.0' in text
            assert (
                'fleetpilot_router_requests_total{code="200",model="classifier-small",priority="standard",route="infer"} 1.0'
                in text
            )

    run(scenario())


def test_zone_preference_spills_when_saturated(tmp_path):
    two_zones = [("replica-a", None, CLS, "zone-a"), ("replica-b", None, CLS, "zone-b")]

    async def scenario():
        async with router_env(tmp_path, two_zones, local_zone="zone-a", spill_inflight_per_replica=4) as (
            client,
            router,
            fakes,
        ):
            url = "/v2/models/classifier-small/infer"

            async def served_by(n: int, headers: dict | None = None) -> list[str]:
                out = []
                for _ in range(n):
                    resp = await client.post(url, data=INFER_BODY, headers=headers or {})
                    assert resp.status == 200
                    out.append(resp.headers["X-Fleetpilot-Replica"])
                return out

            # local_zone applies without a header; X-Client-Zone overrides it.
            assert set(await served_by(10)) == {"replica-a"}
            assert set(await served_by(10, {"X-Client-Zone": "zone-b"})) == {"replica-b"}

            # Hold one request on replica-a: zone-a has 1 in flight per replica, below 4: it stays.
            fakes["replica-a"].gate = asyncio.Event()
            held = asyncio.create_task(client.post(url, data=INFER_BODY))
            while router.registry.replicas["replica-a"].inflight < 1:
                await asyncio.sleep(0.005)
            state = await (await client.get("/admin/state", headers=AUTH)).json()
            assert state["zones"]["zone-a"] == {
                "replicas_in_rotation": 1,
                "inflight": 1,
                "inflight_per_replica": 1.0,
            }
            # Lower the threshold live to 1: zone-a is saturated, its requests spill to zone-b.
            resp = await client.put("/admin/thresholds", json={"spill_inflight_per_replica": 1}, headers=AUTH)
            assert resp.status == 200
            assert (await resp.json())["thresholds"]["spill_inflight_per_replica"] == 1.0
            assert set(await served_by(6)) == {"replica-b"}
            fakes["replica-a"].gate.set()
            assert (await held).headers["X-Fleetpilot-Replica"] == "replica-a"
            assert set(await served_by(5)) == {"replica-a"}  # nothing in flight: back home

            # A zone no replica is in spills with a bounded label.
            assert len(await served_by(2, {"X-Client-Zone": "mars-1"})) == 2
            text = await (await client.get("/metrics")).text()
            assert 'fleetpilot_router_zone_spills_total{from_zone="zone-a",reason="saturated"} 6.0' in text
            assert 'fleetpilot_router_zone_spills_total{from_zone="other",reason="no_replica"} 2.0' in text
            assert "mars-1" not in text

            resp = await client.put(
                "/admin/thresholds", json={"spill_inflight_per_replica": -1}, headers=AUTH
            )
            assert resp.status == 400
            assert "spill_inflight_per_replica = -1" in (await resp.json())["error"]
            resp = await client.put("/admin/thresholds", json={"local_zone": "zone-b"}, headers=AUTH)
            assert (await resp.json())["thresholds"]["local_zone"] == "zone-b"
            assert set(await served_by(4)) == {"replica-b"}

    run(scenario())


def test_zone_failover_leaves_the_zone_when_its_replica_refuses(tmp_path):
    dead = free_port()  # nothing listens: connection refused

    async def scenario():
        replicas = [("replica-a", dead, CLS, "zone-a"), ("replica-b", None, CLS, "zone-b")]
        async with router_env(tmp_path, replicas, retries=1) as (client, router, _f):
            router.registry.replicas["replica-a"].healthy = True  # as if its health check had passed
            resp = await client.post(
                "/v2/models/classifier-small/infer", data=INFER_BODY, headers={"X-Client-Zone": "zone-a"}
            )
            assert resp.status == 200
            assert resp.headers["X-Fleetpilot-Replica"] == "replica-b"
            text = await (await client.get("/metrics")).text()
            assert 'fleetpilot_router_zone_spills_total{from_zone="zone-a",reason="no_replica"} 1.0' in text

    run(scenario())
