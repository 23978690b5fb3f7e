"""The open-loop runner and the `replay` command against a fake router (an aiohttp server in the test).

The fake router streams SSE tokens like Triton's generate_stream, answers the `classifier`
route like KServe v2 infer, and can shed (429), fail (500), delay, or break the stream.
"""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from typer.testing import CliRunner

from serving.replay.payloads import Caps
from serving.replay.results import summarize
from serving.replay.runner import ReplayOptions, RouterUnreachable, check_router, replay
from serving.replay.traces import TraceRequest
from tests.support.ports import free_port

PORTS = range(18300, 18350)  # this suite's share of the replay port range


@dataclass
class FakeRouter:
    mode: str = "ok"  # ok | shed | error | stream_error
    delay_s: float = 0.0  # before the response headers
    first_token_delay_s: float = 0.0  # after the headers, before the first token
    token_delay_s: float = 0.0  # between tokens
    received: list[dict] = field(default_factory=list)  # headers + body of every request

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_post("/v2/models/chat-lm/generate_stream", self.generate_stream)
        app.router.add_post("/v2/models/classifier/infer", self.infer)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _admit(self, request: web.Request) -> tuple[dict, web.Response | None]:
        body = await request.json()
        self.received.append({"headers": dict(request.headers), "body": body})
        await asyncio.sleep(self.delay_s)
        if self.mode == "shed":
            return body, web.json_response(
                {"error": "load 0.9 above standard threshold"}, status=429, headers={"Retry-After": "1"}
            )
        if self.mode == "sse_error":  # how Triton's generate_stream answers a model error
            return body, web.Response(
                status=400,
                body=b'data: {"error":"bad input"}\n\ndata: {"error":"bad input"}\n\n',
                content_type="text/event-stream",
            )
        if self.mode == "error":
            return body, web.json_response(
                {"error": "replica exploded"}, status=500, headers={"X-Fleetpilot-Replica": "replica-1"}
            )
        return body, None

    async def generate_stream(self, request: web.Request) -> web.StreamResponse:
        body, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Fleetpilot-Replica": "replica-0"}
        )
        await resp.prepare(request)
        await asyncio.sleep(self.first_token_delay_s)
        for i in range(body["max_tokens"]):
            if i:
                await asyncio.sleep(self.token_delay_s)
            if self.mode == "stream_error" and i == 1:
                await resp.write(b'data: {"error": "model failed mid-stream"}\n\n')
                break
            event = {"model_name": "chat-lm", "model_version": "1", "text_output": f"t{i}", "token_id": i}
            await resp.write(f"data: {json.dumps(event)}\n\n".encode())
        await resp.write_eof()
        return resp

    async def infer(self, request: web.Request) -> web.Response:
        _, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        tier = "classifier-large" if float(request.headers["X-Complexity"]) >= 0.5 else "classifier-small"
        return web.json_response(
            {
                "model_name": tier,
                "outputs": [{"name": "label", "shape": [1, 1], "datatype": "INT64", "data": [3]}],
            },
            headers={"X-Fleetpilot-Replica": "replica-0"},
        )


@asynccontextmanager
async def serving(fake: FakeRouter):
    runner = web.AppRunner(fake.app())
    await runner.setup()
    port = free_port(PORTS)
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _chat(
    n: int, spacing_s: float = 0.0, input_length: int = 40, output_length: int = 4
) -> list[TraceRequest]:
    return [TraceRequest(i * spacing_s, "chat", input_length, output_length, i + 2) for i in range(n)]


def _options(url: str, **kw) -> ReplayOptions:
    kw.setdefault("caps", Caps(32, 8))
    return ReplayOptions(router_url=url, **kw)


def _run(fake: FakeRouter, requests, tmp_path: Path, **kw):
    async def go():
        async with serving(fake) as url:
            return await replay(requests, _options(url, **kw), tmp_path / "results.jsonl")

    return asyncio.run(go())


# --- statuses ------------------------------------------------------------------------------


def test_chat_stream_ok_records_tokens_ttft_replica_and_file(tmp_path):
    fake = FakeRouter(first_token_delay_s=0.05, token_delay_s=0.02)
    run = _run(fake, _chat(5, 0.01), tmp_path)
    assert [r.status for r in run.results] == ["ok"] * 5
    for r in run.results:
        assert (r.tokens, r.max_tokens, r.prompt_tokens) == (4, 4, 32)
        assert r.clipped_prompt and not r.clipped_output
        assert (r.replica, r.model, r.http_status) == ("replica-0", "chat-lm", 200)
        assert 45 <= r.ttft_ms < r.latency_ms  # first token after ~50 ms, 3 more 20 ms apart
        assert r.latency_ms >= 100
    sent = [body["body"] for body in fake.received]
    assert all(len(b["input_ids"]) == 32 and b["max_tokens"] == 4 for b in sent)
    assert all(h["headers"]["X-Priority"] == "standard" for h in fake.received)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 5
    row = json.loads(lines[0])
    for key in (
        "scheduled_s",
        "sent_s",
        "status",
        "http_status",
        "latency_ms",
        "ttft_ms",
        "tokens",
        "prompt_tokens",
        "replica",
        "model",
        "priority",
        "error",
    ):
        assert key in row


@pytest.mark.parametrize(
    "mode, status, reason, error, http_status",
    [
        ("shed", "shed", "shed", "load 0.9 above standard threshold", 429),
        ("error", "error", "http_500", "replica exploded", 500),
        ("stream_error", "error", "stream_error", "model failed mid-stream", 200),
        ("sse_error", "error", "http_400", "bad input", 400),
    ],
)
def test_refusals_and_failures_are_classified(tmp_path, mode, status, reason, error, http_status):
    run = _run(FakeRouter(mode=mode), _chat(3), tmp_path)
    for r in run.results:
        assert (r.status, r.reason, r.error, r.http_status) == (status, reason, error, http_status)
    s = summarize(run.results, duration_s=run.duration_s, max_prompt_tokens=32, max_generated_tokens=8)
    assert s["errors_by_reason"] == {reason: 3}
    assert s["ok"] == 0 and s["p99_ms"] is None


def test_timeout_is_recorded_not_raised(tmp_path):
    run = _run(FakeRouter(delay_s=2.0), _chat(2), tmp_path, request_timeout_s=0.2)
    assert [(r.status, r.reason) for r in run.results] == [("timeout", "timeout")] * 2
    assert run.duration_s < 1.0


def test_connection_refused_is_an_error_per_request(tmp_path):
    port = free_port(PORTS)  # nothing listens there

    async def go():
        return await replay(_chat(3), _options(f"http://127.0.0.1:{port}"), tmp_path / "r.jsonl")

    run = asyncio.run(go())
    assert [(r.status, r.reason) for r in run.results] == [("error", "connection")] * 3
    assert "127.0.0.1" in run.results[0].error


def test_classifier_requests_carry_complexity_priority_and_record_tier(tmp_path):
    reqs = [TraceRequest(i * 0.001, "classifier") for i in range(40)]
    fake = FakeRouter()
    run = _run(fake, reqs, tmp_path, priority_mix={"premium": 0.5, "batch": 0.5})
    assert all(r.status == "ok" for r in run.results)
    assert {r.model for r in run.results} == {"classifier-small", "classifier-large"}
    assert {h["headers"]["X-Priority"] for h in fake.received} == {"premium", "batch"}
    body = fake.received[0]["body"]
    assert body["inputs"][0]["shape"] == [1, 64] and len(body["inputs"][0]["data"]) == 64
    assert all(r.ttft_ms is None and r.tokens == 0 for r in run.results)


# --- timing: open loop, compression, concurrency cap ---------------------------------------------


def test_open_loop_arrivals_do_not_wait_for_a_slow_server(tmp_path):
    # 20 requests scheduled over 0.2 s against a server that takes 0.5 s each: a closed loop
    # would need 10 s; open loop sends all within ~0.3 s and finishes in ~0.7 s.
    run = _run(FakeRouter(delay_s=0.5), _chat(20, 0.2 / 19), tmp_path)
    sent = [r.sent_s for r in run.results]
    assert len(sent) == 20 and all(r.status == "ok" for r in run.results)
    assert max(sent) < 0.3
    assert run.duration_s < 1.5


def test_speed_compresses_time(tmp_path):
    # trace spans 2 s; at 10x it is due over 0.2 s, and every send goes out close to its due time
    run = _run(FakeRouter(), _chat(11, 0.2), tmp_path, speed=10.0)
    by_index = sorted(run.results, key=lambda r: r.index)
    assert [round(r.scheduled_s, 6) for r in by_index] == [round(i * 0.02, 6) for i in range(11)]
    assert all(-0.001 <= r.sent_s - r.scheduled_s < 0.08 for r in by_index)
    assert 0.2 <= run.duration_s < 0.6


def test_beyond_max_concurrency_requests_are_dropped_not_delayed(tmp_path):
    run = _run(FakeRouter(delay_s=0.3), _chat(10), tmp_path, max_concurrency=4)
    statuses = sorted(r.status for r in run.results)
    assert statuses.count("ok") == 4 and statuses.count("dropped") == 6
    dropped = [r for r in run.results if r.status == "dropped"]
    assert all(r.sent_s is None and r.reason == "max_concurrency" for r in dropped)


# --- health check ----------------------------------------------------------------------------


def test_check_router_passes_on_healthy_and_names_url_when_down():
    async def go():
        async with serving(FakeRouter()) as url:
            await check_router(url)
        port = free_port(PORTS)
        with pytest.raises(RouterUnreachable, match=rf"router at http://127.0.0.1:{port} is unreachable"):
            await check_router(f"http://127.0.0.1:{port}", timeout_s=2.0)

    asyncio.run(go())


# --- the CLI -----------------------------------------------------------------------------------


@contextmanager
def fake_router_in_thread(fake: FakeRouter):
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    holder: dict = {}

    async def main():
        async with serving(fake) as url:
            holder["url"] = url
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield holder["url"]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@pytest.fixture()
def cli(tmp_path, monkeypatch):
    from controlplane.cli import app

    monkeypatch.chdir(tmp_path)  # no stray ./fleetpilot.yaml
    monkeypatch.setenv("FLEETPILOT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("FLEETPILOT_CONFIG", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["replay", *map(str, args)])


def _azure_trace(path: Path, rows: int) -> Path:
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    lines += [f"2023-11-16 18:15:{i // 10:02d}.{i % 10}000000,{100 + i},{2 + i % 3}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_json_prints_exactly_one_summary_object(cli, tmp_path):
    trace = _azure_trace(tmp_path / "t.csv", 12)
    with fake_router_in_thread(FakeRouter()) as url:
        result = cli(
            trace, "--speed", 100, "--router-url", url, "--json", "--max-prompt-tokens", 50, "--limit", 10
        )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # the whole of stdout is one JSON object
    assert (summary["requests"], summary["ok"], summary["errors"], summary["shed"]) == (10, 10, 0, 0)
    assert summary["clipped_prompt"] == 10 and summary["max_prompt_tokens"] == 50
    assert summary["tokens_generated"] == sum(2 + i % 3 for i in range(10))
    for key in (
        "p50_ms",
        "p99_ms",
        "ttft_p99_ms",
        "timeouts",
        "dropped",
        "duration_s",
        "achieved_rps",
        "clipped_output",
        "errors_by_reason",
    ):
        assert key in summary
    results_file = Path(summary["results_file"])
    assert results_file.parent == (tmp_path / "var" / "replay").resolve()
    assert len(results_file.read_text().splitlines()) == 10


def test_cli_table_output_and_explicit_results_file(cli, tmp_path):
    trace = _azure_trace(tmp_path / "t.csv", 3)
    with fake_router_in_thread(FakeRouter(mode="shed")) as url:
        result = cli(trace, "--speed", 100, "--router-url", url, "--results", tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    assert "shed" in result.stdout and "p99_ms" in result.stdout
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda tmp, port: [tmp / "missing.csv"], "trace file .*missing.csv does not exist"),
        (lambda tmp, port: [_bad_trace(tmp)], r"bad.csv line 3: ContextTokens 'abc' is not an integer"),
        (
            lambda tmp, port: [_azure_trace(tmp / "t.csv", 2), "--router-url", f"http://127.0.0.1:{port}"],
            r"router at http://127.0.0.1:\d+ is unreachable",
        ),
        (
            lambda tmp, port: [_azure_trace(tmp / "t.csv", 2), "--priority-mix", "gold=1"],
            "priority class 'gold' is unknown",
        ),
        (lambda tmp, port: [_azure_trace(tmp / "t.csv", 2), "--speed", 0], r"--speed 0.0 must be > 0"),
    ],
)
def test_cli_errors_are_clear_and_non_zero(cli, tmp_path, make_args, message):
    import re

    result = cli(*make_args(tmp_path, free_port(PORTS)))
    assert result.exit_code == 2
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def _bad_trace(tmp: Path) -> Path:
    path = tmp / "bad.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,1,1\n2023-11-16 18:15:47.0,abc,1\n"
    )
    return path
