"""Measure the latency the router adds over calling a Triton replica directly.

Open loop: each path (direct, via router) gets `rate_rps` requests per second on a fixed
schedule, whatever the responses do; the two schedules are interleaved half a period apart
so both paths see the same replica load at the same time. Every request carries a fresh
random feature vector (same shape and byte size on both paths), so Triton's response cache
misses on both paths and the comparison includes the model's real work.
"""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp

FEATURES = 64
WARMUP_REQUESTS = 20


def classifier_body(rng: random.Random) -> bytes:
    """KServe v2 JSON body for the classifier models; fixed-width floats keep sizes equal."""
    data = ",".join(f"{rng.random():.6f}" for _ in range(FEATURES))
    head = '{"inputs":[{"name":"features","shape":[1,' + str(FEATURES) + '],"datatype":"FP32","data":['
    return (head + data + "]}]}").encode()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, out: list[float], errors: list[int]
) -> None:
    start = time.perf_counter()
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            ok = resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        ok = False
    if ok:
        out.append(time.perf_counter() - start)
    else:
        errors.append(1)


async def _measure(direct_url: str, router_url: str, model: str, rate_rps: float, duration_s: float) -> dict:
    rng = random.Random(12345)
    n = max(1, int(rate_rps * duration_s))
    urls = {
        "direct": f"{direct_url.rstrip('/')}/v2/models/{model}/infer",
        "router": f"{router_url.rstrip('/')}/v2/models/{model}/infer",
    }
    # Bodies built before the clock starts: nothing but sending on the schedule.
    schedule = sorted(
        [(i / rate_rps, "direct", classifier_body(rng)) for i in range(n)]
        + [((i + 0.5) / rate_rps, "router", classifier_body(rng)) for i in range(n)],
        key=lambda x: x[0],
    )
    latencies: dict[str, list[float]] = {"direct": [], "router": []}
    errors: dict[str, list[int]] = {"direct": [], "router": []}
    timeout = aiohttp.ClientTimeout(total=30)
    sessions = {
        path: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=timeout,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        for path in urls
    }
    try:
        for path, url in urls.items():  # warm connections, router state, model
            for _ in range(WARMUP_REQUESTS):
                await _one(sessions[path], url, classifier_body(rng), [], [])
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task] = []
        max_lag_s = 0.0
        t0 = loop.time() + 0.05
        for offset_s, path, body in schedule:
            delay = t0 + offset_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                max_lag_s = max(max_lag_s, -delay)
            tasks.append(
                asyncio.create_task(_one(sessions[path], urls[path], body, latencies[path], errors[path]))
            )
        await asyncio.gather(*tasks)
        wall_s = loop.time() - t0
    finally:
        for s in sessions.values():
            await s.close()

    def summary(path: str) -> dict:
        lat = sorted(latencies[path])
        return {
            "requests": n,
            "errors": len(errors[path]),
            "rps": round(len(lat) / wall_s, 1),
            "p50_ms": round(_percentile(lat, 0.50) * 1000, 3),
            "p99_ms": round(_percentile(lat, 0.99) * 1000, 3),
        }

    direct, router = summary("direct"), summary("router")
    return {
        "model": model,
        "rate_rps": rate_rps,  # per path; the replica sees twice this
        "duration_s": duration_s,
        "bodies": "fresh random features per request, same size on both paths (response cache misses)",
        "direct": direct,
        "router": router,
        "added_p50_ms": round(router["p50_ms"] - direct["p50_ms"], 3),
        "added_p99_ms": round(router["p99_ms"] - direct["p99_ms"], 3),
        "max_send_lag_ms": round(max_lag_s * 1000, 3),  # how far the client fell behind its schedule
    }


def measure_router_overhead(
    direct_url: str, router_url: str, model: str, rate_rps: float, duration_s: float
) -> dict:
    """Open-loop latency of direct vs via-router infer requests (see module doc for the method)."""
    if rate_rps <= 0 or duration_s <= 0:
        raise ValueError(f"rate_rps and duration_s must be > 0 (got {rate_rps}, {duration_s})")
    try:
        import uvloop  # noqa: PLC0415

        return uvloop.run(_measure(direct_url, router_url, model, rate_rps, duration_s))
    except ImportError:  # pragma: no cover - uvloop is a project dependency
        return asyncio.run(_measure(direct_url, router_url, model, rate_rps, duration_s))
