"""Open-loop replay sender: arrivals go out on schedule and never wait for responses.

One asyncio task per request on one aiohttp session. The scheduler sleeps until each
request's due time (trace offset / speed) and starts its task; when `max_concurrency`
requests are already open, the request is recorded as a client-side drop instead of being
delayed (delaying it would turn the replay into a closed loop and hide overload).
Every result is appended to the results JSONL file as it completes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from serving.replay.payloads import Caps, PlannedRequest, RequestPlanner
from serving.replay.results import RequestResult
from serving.replay.traces import TraceRequest

REPLICA_HEADER = "X-Fleetpilot-Replica"
_ERROR_TEXT_MAX = 300


class RouterUnreachable(RuntimeError):
    """The router did not answer its health check; the message names the URL."""


@dataclass
class ReplayOptions:
    router_url: str  # base URL, e.g. http://127.0.0.1:7000
    caps: Caps
    speed: float = 1.0  # time compression: 10 -> the trace plays 10x faster
    request_timeout_s: float = 120.0
    max_concurrency: int = 512
    seed: int = 0
    priority_mix: dict[str, float] | None = None  # None -> all standard

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed {self.speed} must be > 0")
        self.router_url = self.router_url.rstrip("/")


@dataclass
class ReplayRun:
    results: list[RequestResult] = field(default_factory=list)
    duration_s: float = 0.0  # replay start -> last response (seconds)
    interrupted: bool = False


def due_s(offset_s: float, speed: float) -> float:
    """When a request at trace offset `offset_s` is due after compressing time by `speed`."""
    return offset_s / speed


async def check_router(router_url: str, health_path: str = "/health", timeout_s: float = 5.0) -> None:
    """Raise RouterUnreachable unless GET <router_url><health_path> answers 200."""
    url = router_url.rstrip("/") + health_path
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            async with session.get(url) as resp:
                if resp.status != 200:
                    text = (await resp.text())[:200]
                    raise RouterUnreachable(
                        f"router at {router_url} is not healthy: GET {url} answered HTTP {resp.status} {text}"
                    )
    except TimeoutError:
        raise RouterUnreachable(
            f"router at {router_url} did not answer GET {url} within {timeout_s:g} s"
        ) from None
    except aiohttp.ClientError as exc:
        raise RouterUnreachable(
            f"router at {router_url} is unreachable ({exc.__class__.__name__}: {exc})"
        ) from None


def _error_text(raw: bytes) -> str:
    """The `error` field of a JSON error body, else the raw text (trimmed). Triton's
    generate_stream answers errors as SSE (`data: {"error": ...}`), so that prefix is dropped."""
    text = raw.decode("utf-8", "replace").strip()
    if text.startswith("data:"):
        text = text[5:].split("\n", 1)[0]
    try:
        obj = json.loads(text)
        if isinstance(obj, dict) and "error" in obj:
            return str(obj["error"])[:_ERROR_TEXT_MAX]
    except ValueError:
        pass
    return text.strip()[:_ERROR_TEXT_MAX]


class _Sender:
    def __init__(
        self,
        options: ReplayOptions,
        session: aiohttp.ClientSession,
        start: float,
        record: Callable[[RequestResult], None],
    ):
        self.options = options
        self.session = session
        self.start = start
        self.record = record
        self.loop = asyncio.get_running_loop()
        # uvloop's loop.time() ticks in whole milliseconds, too coarse for ~1 ms requests: latencies
        # are read from perf_counter, aligned with the loop's start (both are monotonic seconds).
        self._perf_start = time.perf_counter() - (self.loop.time() - start)

    def _now_s(self) -> float:
        return time.perf_counter() - self._perf_start

    async def send(self, planned: PlannedRequest, request: TraceRequest, scheduled_s: float) -> None:
        sent_s = self._now_s()
        result = _result(planned, request, scheduled_s, sent_s, "error")
        try:
            async with self.session.post(
                self.options.router_url + planned.path, data=planned.body, headers=planned.headers
            ) as resp:
                result.http_status = resp.status
                result.replica = resp.headers.get(REPLICA_HEADER)
                if resp.status == 429:
                    result.status, result.reason, result.error = (
                        "shed",
                        "shed",
                        _error_text(await resp.read()),
                    )
                elif resp.status != 200:
                    result.reason, result.error = f"http_{resp.status}", _error_text(await resp.read())
                elif planned.stream:
                    await self._read_stream(resp, result, sent_s)
                else:
                    await self._read_infer(resp, result)
        except TimeoutError:
            result.status, result.reason = "timeout", "timeout"
            result.error = f"no complete response within {self.options.request_timeout_s:g} s"
        except aiohttp.ClientError as exc:
            result.status, result.reason = "error", "connection"
            result.error = f"{exc.__class__.__name__}: {exc}"[:_ERROR_TEXT_MAX]
        except Exception as exc:  # keep the count honest: every request ends in exactly one record
            result.status, result.reason = "error", "client_exception"
            result.error = f"{exc.__class__.__name__}: {exc}"[:_ERROR_TEXT_MAX]
        result.latency_ms = round((self._now_s() - sent_s) * 1000.0, 3)
        self.record(result)

    async def _read_stream(self, resp: aiohttp.ClientResponse, result: RequestResult, sent_s: float) -> None:
        """Read SSE `data: {...}` events; each event with a token counts one token."""
        async for raw_line in resp.content:
            line = raw_line.strip()
            if not line.startswith(b"data:"):
                continue
            try:
                event = json.loads(line[5:])
            except ValueError:
                result.reason, result.error = "bad_stream", f"undecodable event {line[:100]!r}"
                return
            if "error" in event:
                result.reason, result.error = "stream_error", str(event["error"])[:_ERROR_TEXT_MAX]
                return
            if "token_id" in event or "text_output" in event:
                if result.tokens == 0:
                    result.ttft_ms = round((self._now_s() - sent_s) * 1000.0, 3)
                result.tokens += 1
            if isinstance(event.get("model_name"), str):
                result.model = event["model_name"]
        if result.tokens == 0:
            result.reason, result.error = "empty_stream", "the stream ended without a token"
            return
        result.status = "ok"

    async def _read_infer(self, resp: aiohttp.ClientResponse, result: RequestResult) -> None:
        raw = await resp.read()
        try:
            body = json.loads(raw)
        except ValueError:
            result.reason, result.error = "bad_response", f"response is not JSON: {raw[:100]!r}"
            return
        if isinstance(body, dict) and isinstance(body.get("model_name"), str):
            result.model = body["model_name"]
        result.status = "ok"


async def replay(
    requests: Iterable[TraceRequest],
    options: ReplayOptions,
    results_path: Path,
    on_result: Callable[[RequestResult], None] | None = None,
) -> ReplayRun:
    """Send every request open-loop, write results to `results_path` (JSONL), return them all."""
    planner = RequestPlanner(options.caps, options.seed, options.priority_mix)
    run = ReplayRun()
    results_path.parent.mkdir(parents=True, exist_ok=True)
    open_count = 0
    tasks: set[asyncio.Task] = set()
    connector = aiohttp.TCPConnector(limit=options.max_concurrency, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=options.request_timeout_s)
    loop = asyncio.get_running_loop()
    with results_path.open("w", encoding="utf-8") as out:

        def record(result: RequestResult) -> None:
            run.results.append(result)
            out.write(json.dumps(result.to_json(), separators=(",", ":")) + "\n")
            if on_result is not None:
                on_result(result)

        def finished(task: asyncio.Task) -> None:
            nonlocal open_count
            open_count -= 1
            tasks.discard(task)

        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            start = loop.time()
            sender = _Sender(options, session, start, record)
            try:
                for index, request in enumerate(requests):
                    planned = planner.plan(index, request)  # before sleeping: keeps the send on time
                    scheduled_s = due_s(request.offset_s, options.speed)
                    delay_s = start + scheduled_s - loop.time()
                    # sleep(0) when late still yields, so started tasks get their sends out
                    await asyncio.sleep(max(0.0, delay_s))
                    if open_count >= options.max_concurrency:
                        record(_dropped(planned, request, scheduled_s, options.max_concurrency))
                        continue
                    open_count += 1
                    task = asyncio.create_task(sender.send(planned, request, scheduled_s))
                    tasks.add(task)
                    task.add_done_callback(finished)
                if tasks:
                    await asyncio.gather(*list(tasks))
            except asyncio.CancelledError:
                run.interrupted = True
                for task in list(tasks):
                    task.cancel()
                await asyncio.gather(*list(tasks), return_exceptions=True)
                raise
            finally:
                run.duration_s = loop.time() - start
    return run


def _result(
    planned: PlannedRequest,
    request: TraceRequest,
    scheduled_s: float,
    sent_s: float | None,
    status: str,
    **extra,
) -> RequestResult:
    """A result carrying what the plan and the trace say about the request."""
    return RequestResult(
        index=planned.index,
        trace_offset_s=request.offset_s,
        scheduled_s=scheduled_s,
        sent_s=sent_s,
        status=status,
        model=planned.model,
        priority=planned.priority,
        prompt_tokens=planned.prompt_tokens,
        max_tokens=planned.max_tokens,
        clipped_prompt=planned.clipped_prompt,
        clipped_output=planned.clipped_output,
        **extra,
    )


def _dropped(planned: PlannedRequest, request: TraceRequest, scheduled_s: float, limit: int) -> RequestResult:
    return _result(
        planned,
        request,
        scheduled_s,
        None,
        "dropped",
        reason="max_concurrency",
        error=f"{limit} requests already open (replay.max_concurrency)",
    )


def default_results_path(data_dir: Path) -> Path:
    return data_dir.resolve() / "replay" / f"results-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
