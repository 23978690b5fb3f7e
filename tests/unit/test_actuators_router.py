"""HttpRouterControl against a real in-process RouterApp (aiohttp, ephemeral port, own thread),
and FakeRouterControl."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest
from aiohttp import web

from controlplane.actuators.result import ActuationStatus
from controlplane.actuators.router import FakeRouterControl, HttpRouterControl
from serving.fleet_state import FleetState, ReplicaRecord, write_state
from serving.router.app import RouterApp
from serving.router.options import RouterOptions

S = ActuationStatus
TOKEN = "adm1n"


def _record(name: str, slot: int) -> ReplicaRecord:
    # Ports nobody listens on: health checks fail, which the admin endpoints do not care about.
    return ReplicaRecord(
        name=name, zone="zone-a", region="local", slot=slot, host="127.0.0.1", http_port=9,
        grpc_port=9, metrics_port=9, pid=None, models=["classifier-small"], workdir="/tmp",
    )  # fmt: skip


class RouterThread:
    """A real RouterApp served on 127.0.0.1:<ephemeral> from its own event loop thread."""

    def __init__(self, tmp_path: Path) -> None:
        state_path = tmp_path / "state.json"
        write_state(state_path, FleetState(replicas=[_record("replica-0", 0), _record("replica-1", 1)]))
        self.router = RouterApp(RouterOptions(state_path=state_path, api_token=TOKEN, port=0))
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self.router.build(), access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def router(tmp_path):
    rt = RouterThread(tmp_path)
    yield rt
    rt.close()


def _weights(rt: RouterThread) -> dict[str, float]:
    return {r.name: r.weight for r in rt.router.registry.replicas.values()}


def test_weights_applied_on_real_router(router):
    res = HttpRouterControl(router.url, TOKEN).set_weights({"replica-0": 3, "replica-1": 0})
    assert res.status is S.OK, res
    assert _weights(router) == {"replica-0": 3.0, "replica-1": 0.0}
    assert res.details["response"] == {"weights": {"replica-0": 3.0, "replica-1": 0.0}}
    assert res.duration_s > 0


def test_thresholds_applied_on_real_router(router):
    ctl = HttpRouterControl(router.url, TOKEN)
    res = ctl.set_thresholds(
        {"tier_complexity_threshold_ratio": 0.7, "admit_below_load_ratio": {"batch": 0.3}}
    )
    assert res.status is S.OK, res
    assert router.router.options.tier_complexity_threshold_ratio == 0.7
    assert router.router.options.admit_below_load_ratio["batch"] == 0.3
    assert res.details["response"]["thresholds"]["admit_below_load_ratio"]["premium"] == 1.0


@pytest.mark.parametrize(
    ("token", "call", "status", "in_message"),
    [
        ("", ("set_weights", {"replica-0": 1}), S.REJECTED, "no admin token accepted (401)"),
        ("wrong", ("set_weights", {"replica-0": 1}), S.REJECTED, "wrong admin token (403)"),
        ("wrong", ("set_thresholds", {"max_inflight_requests": 9}), S.REJECTED, "wrong admin token (403)"),
        (TOKEN, ("set_weights", {"replica-7": 1}), S.REJECTED, "unknown replica 'replica-7'"),
        (TOKEN, ("set_weights", {"replica-0": -1}), S.REJECTED, "allowed range"),
        (TOKEN, ("set_thresholds", {"bogus": 1}), S.REJECTED, "unknown field(s) ['bogus']"),
    ],
)
def test_refusals_are_rejected_and_change_nothing(router, token, call, status, in_message):
    before = (_weights(router), router.router.options.max_inflight_requests)
    method, arg = call
    res = getattr(HttpRouterControl(router.url, token), method)(arg)
    assert res.status is status, res
    assert in_message in res.message
    assert (_weights(router), router.router.options.max_inflight_requests) == before


def test_connection_refused_is_unavailable():
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = HttpRouterControl(f"http://127.0.0.1:{port}", TOKEN, timeout_s=2).set_weights({"replica-0": 1})
    assert res.status is S.UNAVAILABLE and res.retryable
    assert "unreachable" in res.message


def test_5xx_is_unavailable_and_other_codes_failed():
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        code = 503 if request.url.path == "/admin/weights" else 418
        return httpx.Response(code, json={"error": "busy"})

    ctl = HttpRouterControl("http://router", TOKEN, transport=httpx.MockTransport(handler))
    res = ctl.set_weights({"replica-0": 1})
    assert (res.status, res.details["http_status"]) == (S.UNAVAILABLE, 503)
    assert ctl.set_thresholds({"max_inflight_requests": 2}).status is S.FAILED


def test_fake_router_control():
    fake = FakeRouterControl(["replica-0", "replica-1"], thresholds={"max_inflight_requests": 64})
    assert fake.weights == {"replica-0": 1.0, "replica-1": 1.0}
    assert fake.set_weights({"replica-0": 1}).status is S.NOOP
    assert fake.set_weights({"replica-0": 0}).status is S.OK
    assert fake.set_weights({"replica-9": 1}).status is S.REJECTED
    assert fake.set_weights({"replica-1": -2}).status is S.REJECTED
    assert fake.set_thresholds({"max_inflight_requests": 64}).status is S.NOOP
    assert fake.set_thresholds({"max_inflight_requests": 32}).status is S.OK
    fake.fail_next(S.UNAVAILABLE)
    assert fake.set_weights({"replica-1": 5}).status is S.UNAVAILABLE
    assert fake.weights == {"replica-0": 0.0, "replica-1": 1.0}
    assert fake.thresholds == {"max_inflight_requests": 32}
    assert fake.calls[-1] == ("set_weights", {"weights": {"replica-1": 5}})
