"""Profiling sweep: stepped open-loop load on ONE real replica, like Triton's Model Analyzer.

Rates double from `start_rps` until a step misses the SLO or fails (errors, or the replica
answers clearly less than it is offered) or `max_rps` is reached; then the gap between the
last good and the first bad rate is bisected `bisect_steps` times. Each step sends requests
on a fixed schedule (constant spacing, perf_analyzer's default) for `step_s` seconds, whatever
the responses do, then waits for the stragglers. Every request carries fresh random inputs, so
Triton's response cache cannot answer it. Sending and SSE reading reuse the replay runner's
sender (`serving.replay.runner`); classifier bodies come from the router bench.

Decisions (`next_rate_rps`) are pure; the I/O is in `run_step` and `profile_replica`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import aiohttp
import numpy as np

from controlplane.capacity.model import CapacityEstimate, LoadPoint, Slo, capacity_at_slo
from serving.replay.payloads import VOCAB_SIZE, Caps, PlannedRequest
from serving.replay.results import RequestResult, percentile_ms
from serving.replay.runner import ReplayOptions, _Sender  # the replay sender, reused as is
from serving.replay.traces import TraceRequest
from serving.router.bench import classifier_body

CHAT_MODEL = "chat-lm"
WARMUP_REQUESTS = 10
CLIENT_LAG_LIMIT_MS = 100.0  # p99 send lag above this: the sender could not keep its schedule
ARRIVALS = ("constant", "poisson")  # SweepOptions.arrivals


@dataclass(frozen=True)
class SweepOptions:
    step_s: float = 5.0  # length of one load step (seconds)
    start_rps: float = 10.0
    max_rps: float = 2000.0
    bisect_steps: int = 2  # refinements between the last good and the first bad rate
    request_timeout_s: float = 30.0
    max_concurrency: int = 512  # open requests beyond this are dropped (counted as failures)
    prompt_tokens: int = 32  # chat-lm: fixed prompt length (tokens)
    output_tokens: int = 16  # chat-lm: fixed generated length (tokens)
    min_requests: int = 50  # a step lasts long enough for this many requests (p99 of fewer is the max)
    # Request spacing: "constant" (Model Analyzer's default) or "poisson" (perf_analyzer's
    # --request-distribution poisson): random gaps, so requests also wait for a batch in
    # progress, as live traffic does.
    arrivals: str = "constant"
    # None: fresh random inputs on every step. A replica's response cache keys on the input
    # bytes and outlives a sweep: a second sweep with the same seed measures the cache.
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("step_s", "start_rps", "max_rps", "request_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        if self.max_rps < self.start_rps:
            raise ValueError(f"max_rps={self.max_rps} must be >= start_rps={self.start_rps}")
        if self.bisect_steps < 0:
            raise ValueError(f"bisect_steps={self.bisect_steps} must be >= 0")
        if self.arrivals not in ARRIVALS:
            raise ValueError(f"arrivals={self.arrivals!r} must be one of {', '.join(ARRIVALS)}")


def step_meets(point: LoadPoint, slo: Slo) -> bool:
    """A step is good when nothing failed and every SLO bound held."""
    if point.failed():
        return False
    for metric, bound in slo.metrics().items():
        value = getattr(point, metric)
        if value is None or value > bound:
            return False
    return True


def next_rate_rps(history: list[tuple[float, bool]], opts: SweepOptions) -> float | None:
    """Next rate to try from the (rate, good) steps so far, in order; None when the sweep is done.

    Doubling runs until the first bad step; every step after it is a bisection between the
    highest good rate below the lowest bad one and that bad one.
    """
    if not history:
        return opts.start_rps
    first_bad = next((i for i, (_, ok) in enumerate(history) if not ok), None)
    if first_bad is None:
        last = history[-1][0]
        return None if last >= opts.max_rps else min(2 * last, opts.max_rps)
    hi = min(r for r, ok in history if not ok)
    lo = max((r for r, ok in history if ok and r < hi), default=0.0)
    if lo == 0.0:
        return None  # the first rate already failed: nothing to bisect towards
    if len(history) - 1 - first_bad >= opts.bisect_steps or hi - lo < 1.0:
        return None
    return round((lo + hi) / 2, 3)


# ---- one step ------------------------------------------------------------------------------


def step_rng(opts: SweepOptions, step_index: int) -> np.random.Generator:
    """The inputs' generator of one step: seeded per step, or fresh when opts.seed is None."""
    return np.random.default_rng(None if opts.seed is None else (opts.seed, step_index))


def _planned(model: str, index: int, rng: np.random.Generator, opts: SweepOptions) -> PlannedRequest:
    headers = {"Content-Type": "application/json"}
    if model == CHAT_MODEL:
        ids = rng.integers(0, VOCAB_SIZE, size=opts.prompt_tokens).tolist()
        body = json.dumps({"input_ids": ids, "max_tokens": opts.output_tokens}, separators=(",", ":"))
        path = f"/v2/models/{model}/generate_stream"
        return PlannedRequest(
            index,
            model,
            path,
            body.encode(),
            headers,
            True,
            "standard",
            opts.prompt_tokens,
            opts.output_tokens,
        )
    # Fresh features per request: the response cache keys on the input bytes, so it misses.
    body = classifier_body(_StdRandom(rng))
    return PlannedRequest(index, model, f"/v2/models/{model}/infer", body, headers, False, "standard")


class _StdRandom:
    """`random.Random`-like `.random()` over a numpy Generator (classifier_body wants one)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def random(self) -> float:
        return float(self.rng.random())


def _itl_ms(r: RequestResult) -> float | None:
    """Per-request mean gap between tokens after the first (what LLM benchmarks call TPOT)."""
    if r.ttft_ms is None or r.latency_ms is None or r.tokens < 2:
        return None
    return (r.latency_ms - r.ttft_ms) / (r.tokens - 1)


def point_from_results(results: list[RequestResult], rate_rps: float, wall_s: float) -> LoadPoint:
    """Summarise one step's results (pure). Latency percentiles are over ok requests only."""
    ok = [r for r in results if r.status == "ok"]
    lat = [r.latency_ms for r in ok if r.latency_ms is not None]
    ttft = [r.ttft_ms for r in ok if r.ttft_ms is not None]
    itl = [x for x in (_itl_ms(r) for r in ok) if x is not None]
    n = len(results)
    lags_ms = [max(0.0, (r.sent_s - r.scheduled_s) * 1000.0) for r in results if r.sent_s is not None]
    return LoadPoint(
        offered_rps=rate_rps,
        achieved_rps=round(len(ok) / wall_s, 3) if wall_s > 0 else 0.0,
        p99_ms=percentile_ms(lat, 99),
        error_ratio=round((n - len(ok)) / n, 4) if n else 1.0,
        requests=n,
        ttft_p99_ms=percentile_ms(ttft, 99),
        itl_p99_ms=percentile_ms(itl, 99),
        send_lag_p99_ms=percentile_ms(lags_ms, 99),
    )


async def run_step(
    url: str, model: str, rate_rps: float, opts: SweepOptions, step_index: int, warmup: bool = False
) -> LoadPoint:
    """Offer `rate_rps` for `opts.step_s` seconds on a fixed schedule; summarise the results."""
    n = max(1, opts.min_requests, round(rate_rps * opts.step_s))
    rng = step_rng(opts, step_index)
    plans = [_planned(model, i, rng, opts) for i in range(n)]  # built before the clock starts
    due_s = due_times_s(n, rate_rps, opts.arrivals, rng)
    kind = "chat" if model == CHAT_MODEL else "classifier"
    options = ReplayOptions(
        router_url=url,
        caps=Caps(opts.prompt_tokens, opts.output_tokens),
        request_timeout_s=opts.request_timeout_s,
        max_concurrency=opts.max_concurrency,
    )
    results: list[RequestResult] = []
    connector = aiohttp.TCPConnector(limit=opts.max_concurrency, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=opts.request_timeout_s)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if warmup:  # warm connections and the model; not measured
            for i in range(WARMUP_REQUESTS):
                sender = _Sender(options, session, loop.time(), lambda r: None)
                await sender.send(_planned(model, i, rng, opts), TraceRequest(0.0, kind), 0.0)
        start = loop.time()
        sender = _Sender(options, session, start, results.append)
        tasks: set[asyncio.Task] = set()
        for i, (planned, due) in enumerate(zip(plans, due_s, strict=True)):
            await asyncio.sleep(max(0.0, start + due - loop.time()))
            if len(tasks) >= opts.max_concurrency:
                results.append(
                    RequestResult(i, due, due, None, "dropped", model, "standard", reason="max_concurrency")
                )
                continue
            task = asyncio.create_task(sender.send(planned, TraceRequest(due, kind), due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*list(tasks))
        # Achieved rate over the offered window (or longer, when responses straggled).
        wall_s = max(n / rate_rps, loop.time() - start)
    return point_from_results(results, rate_rps, wall_s)


def due_times_s(n: int, rate_rps: float, arrivals: str, rng: np.random.Generator) -> list[float]:
    """Send times (seconds from the step's start) of n requests at rate_rps. Poisson gaps are
    rescaled to span the same n / rate_rps seconds, so the offered rate is exact per step."""
    if arrivals == "constant":
        return [i / rate_rps for i in range(n)]
    gaps = rng.exponential(1.0, size=n)
    starts = np.concatenate([[0.0], np.cumsum(gaps)[:-1]])
    return (starts * (n / rate_rps) / gaps.sum()).tolist()


# ---- the sweep -----------------------------------------------------------------------------


@dataclass
class ReplicaKind:
    device: str  # cpu | gpu | unknown
    instance_count: int

    @property
    def name(self) -> str:
        return f"{self.device}-x{self.instance_count}"


def replica_kind(url: str, model: str, timeout_s: float = 5.0) -> ReplicaKind:
    """Device and instance count of `model` on the replica, from Triton's model config."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/v2/models/{model}/config", timeout=timeout_s) as resp:
            cfg = json.loads(resp.read())
    except (OSError, ValueError):
        return ReplicaKind("unknown", 0)
    groups = cfg.get("instance_group") or []
    count = sum(int(g.get("count", 1)) for g in groups) or 1
    kinds = {str(g.get("kind", "")) for g in groups}
    device = "gpu" if "KIND_GPU" in kinds else "cpu" if kinds else "unknown"
    return ReplicaKind(device, count)


class ReplicaNotReady(RuntimeError):
    """The replica does not serve the model (the message names the URL and model)."""


def check_model_ready(url: str, model: str, timeout_s: float = 5.0) -> None:
    target = f"{url.rstrip('/')}/v2/models/{model}/ready"
    try:
        with urllib.request.urlopen(target, timeout=timeout_s) as resp:
            if resp.status == 200:
                return
    except OSError as exc:
        raise ReplicaNotReady(f"{model} is not ready on {url}: GET {target} failed ({exc})") from None
    raise ReplicaNotReady(f"{model} is not ready on {url}")


@dataclass
class ProfileResult:
    model: str
    replica: str
    kind: ReplicaKind
    options: SweepOptions
    steps: list[LoadPoint]
    estimate: CapacityEstimate
    started_s: float
    ended_s: float
    curve_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def client_limited(self) -> bool:
        """The first failing step was sent late: the load generator, not the replica, gave out."""
        bad = [p for p in self.steps if p.failed()]
        return bool(bad) and (bad[0].send_lag_p99_ms or 0.0) > CLIENT_LAG_LIMIT_MS

    def to_json(self) -> dict:
        return {
            "curve_id": self.curve_id,
            "client_limited": self.client_limited(),
            "model": self.model,
            "replica": self.replica,
            "replica_kind": self.kind.name,
            "device": self.kind.device,
            "instance_count": self.kind.instance_count,
            "started_s": round(self.started_s, 3),
            "ended_s": round(self.ended_s, 3),
            "options": asdict(self.options),
            "steps": [asdict(p) for p in self.steps],
            **self.estimate.to_json(),
        }


def profile_replica(
    url: str,
    model: str,
    slo: Slo,
    opts: SweepOptions,
    on_step: Callable[[LoadPoint], None] | None = None,
) -> ProfileResult:
    """Run the sweep against one replica and fit the capacity at `slo`."""
    check_model_ready(url, model)
    kind = replica_kind(url, model)
    started = time.time()
    steps: list[LoadPoint] = []
    history: list[tuple[float, bool]] = []
    while (rate := next_rate_rps(history, opts)) is not None:
        point = _run(run_step(url, model, rate, opts, len(steps), warmup=not steps))
        steps.append(point)
        history.append((rate, step_meets(point, slo)))
        if on_step is not None:
            on_step(point)
    return ProfileResult(model, url, kind, opts, steps, capacity_at_slo(steps, slo), started, time.time())


_EXTRA_STEPS = itertools.count(10_000)  # step indices of measure_at, past any sweep's


def measure_at(url: str, model: str, rate_rps: float, opts: SweepOptions) -> LoadPoint:
    """One extra step at a chosen rate (used to check a prediction). Every call sends fresh
    inputs: repeating a step's inputs would measure the response cache, not the model."""
    return _run(run_step(url, model, rate_rps, opts, next(_EXTRA_STEPS), warmup=True))


def _run(coro):
    # The standard loop on purpose: the sender times requests with loop.time(), which under
    # uvloop is libuv's millisecond clock (1 ms steps on a ~1 ms request); asyncio's is monotonic().
    return asyncio.run(coro)


def curve_row(result: ProfileResult) -> dict:
    """The `capacity_curves` row for a sweep."""
    est, slo = result.estimate, result.estimate.slo
    chat = slo.p99_ms is None
    body = result.to_json()
    return {
        "ts": result.ended_s,
        "curve_id": result.curve_id,
        "source": "profile",
        "model": result.model,
        "replica": result.replica,
        "replica_kind": result.kind.name,
        "device": result.kind.device,
        "instance_count": result.kind.instance_count,
        "slo_metric": "+".join(slo.metrics()),
        "slo_ms": float((slo.ttft_p99_ms if chat else slo.p99_ms) or 0.0),
        "slo_itl_ms": float(slo.itl_p99_ms or 0.0),
        "capacity_rps": float(est.capacity_rps),
        "lower_bound": int(est.lower_bound),
        "reason": est.reason,
        "points": json.dumps({k: body[k] for k in ("steps", "points", "failed_points", "fitted")}),
        "inputs": json.dumps(
            {
                **body["options"],
                "host": socket.gethostname(),
                "cpu_count": os.cpu_count(),
                "started_s": body["started_s"],
            }
        ),
    }
