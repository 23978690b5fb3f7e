"""Live-fault protocol (issue 4): real replicas under steady load, one fault at a time, and the
time from injection to the incident the loop's detectors open for the right replica and metric.

Used by `fleetpilot bench faults` (full protocol, clean period 5 min) and by the integration test
(short clean period). The load mixes repeated inputs (answered by the response cache) with fresh
ones (run by the model), so latency and error faults in the model and a cache collapse all show.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from controlplane.demo.report import ts_s as iso_s
from serving.faults import Faults
from serving.router.bench import classifier_body

MODEL = "classifier-small"


class SteadyLoad:
    """Requests to every replica at `rate_rps` each, from one thread per replica."""

    def __init__(self, urls: Callable[[], list[str]], rate_rps: float, repeat_ratio: float = 0.5) -> None:
        self.urls = urls
        self.rate_rps = rate_rps
        self.repeat_ratio = repeat_ratio
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self.sent = 0
        self.failed = 0
        rng = random.Random(7)
        self._repeated = [classifier_body(rng) for _ in range(4)]
        self._watch = threading.Thread(target=self._follow, daemon=True)

    def start(self) -> SteadyLoad:
        self._watch.start()
        return self

    def _follow(self) -> None:
        while not self._stop.is_set():  # new replicas (a replacement) get load too
            for url in self.urls():
                if url not in self._threads:
                    t = threading.Thread(target=self._drive, args=(url,), daemon=True)
                    self._threads[url] = t
                    t.start()
            self._stop.wait(1.0)

    def _drive(self, base_url: str) -> None:
        rng = random.Random(hash(base_url) & 0xFFFF)
        url = f"{base_url}/v2/models/{MODEL}/infer"
        gap = 1.0 / self.rate_rps
        next_at = time.monotonic()
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                body = (
                    rng.choice(self._repeated) if rng.random() < self.repeat_ratio else classifier_body(rng)
                )
                try:
                    r = client.post(url, content=body, headers={"Content-Type": "application/json"})
                    self.failed += r.status_code != 200
                except httpx.HTTPError:
                    self.failed += 1
                    if base_url not in self.urls():
                        return  # the replica is gone
                self.sent += 1
                next_at += gap
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_at = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads.values():
            t.join(timeout=6)


@dataclass(frozen=True)
class FaultCase:
    name: str
    faults: Faults
    metric: str  # the metric the incident must name
    model: str  # "" for replica-level metrics


# The cache collapse goes last: switching the cache off reloads the model, whose memory churn
# would otherwise overlap the memory case.
CASES = (
    FaultCase("slow_replica", Faults(added_latency_ms=50.0), "latency_ms", MODEL),
    FaultCase("error_burst", Faults(error_rate_ratio=0.5), "error_ratio", MODEL),
    FaultCase("memory_growth", Faults(memory_growth_mb_per_s=40.0), "memory_growth_bytes_per_s", ""),
    FaultCase("cache_collapse", Faults(cache_off=True), "cache_hit_ratio", MODEL),
)


def ts_s(row: dict) -> float:
    return iso_s(row["ts"])


def opened(rows: list[dict], since_s: float) -> list[dict]:
    """anomaly_events rows (as the API returns them) that open an incident at or after since_s."""
    return [r for r in rows if r["reason_codes"] and r["reason_codes"][0] == "opened" and ts_s(r) >= since_s]


class ApiEvents:
    """Reads the loop's anomaly events through the control-plane API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def since(self, t_s: float) -> list[dict]:
        window_s = max(1.0, time.time() - t_s + 5.0)
        r = httpx.get(
            f"{self.base_url}/v1/anomalies", params={"since_s": window_s, "limit": 1000}, timeout=10
        )
        r.raise_for_status()
        return r.json()["events"]


def open_incidents(rows: list[dict]) -> set[str]:
    """incident ids whose newest event is not a close."""
    last: dict[str, dict] = {}
    for r in sorted(rows, key=ts_s):
        last[r["incident_id"]] = r
    return {i for i, r in last.items() if r["reason_codes"][0] != "closed"}


def wait_quiet(events_since: Callable[[float], list[dict]], since_s: float, timeout_s: float) -> None:
    """Until every incident opened since since_s has closed (each case starts from a quiet fleet)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline and open_incidents(events_since(since_s)):
        time.sleep(1.0)


def run_cases(
    *,
    set_faults: Callable[[str, Faults], None],
    victim: str,
    events_since: Callable[[float], list[dict]],
    scrape_interval_s: float,
    clean_s: float,
    settle_s: float = 20.0,
    cases=CASES,
) -> dict:
    """Clean period (no event allowed), then each fault on `victim`, waiting up to 10 intervals."""
    out: dict = {"scrape_interval_s": scrape_interval_s, "clean_s": clean_s, "victim": victim}
    start = time.time()
    time.sleep(clean_s)
    out["clean_events"] = [
        {
            "replica": e["replica"],
            "model": e["model"],
            "metric": e["metric"],
            "score": e["score"],
            # why it opened: a failure in CI is only ever read from this report
            "detector": e["detector"],
            "observed_value": e["observed_value"],
            "expected_value": e["expected_value"],
            "after_start_s": round(ts_s(e) - start, 2),
        }
        for e in opened(events_since(start), start)
    ]
    results = {}
    for case in cases:
        wait_quiet(events_since, start, timeout_s=60.0)
        time.sleep(settle_s)  # past the cool-down of the incident that just closed
        t_call = time.time()
        set_faults(victim, case.faults)  # cache_off reloads models: the fault is on when it returns
        t0 = time.time()
        hit = None
        deadline = t0 + 10 * scrape_interval_s + 5
        while time.time() < deadline and hit is None:
            for e in opened(events_since(t_call), t_call):
                if e["replica"] == victim and e["metric"] == case.metric and e["model"] == case.model:
                    hit = e
                    break
            time.sleep(1.0)  # the event carries its own time; polling faster only loads the store
        flagged = opened(events_since(t_call), t_call)
        set_faults(victim, Faults())
        results[case.name] = {
            # Switching the cache off reloads the models: the fault takes effect during the call,
            # so detection is timed from the call and from its return (negative: before it returned).
            "inject_s": round(t0 - t_call, 2),
            "detected": hit is not None,
            "time_to_detect_s": None if hit is None else round(ts_s(hit) - t_call, 2),
            "after_injected_s": None if hit is None else round(ts_s(hit) - t0, 2),
            "metric": case.metric,
            "expected_value": None if hit is None else hit["expected_value"],
            "observed_value": None if hit is None else hit["observed_value"],
            "other_replicas_flagged": [
                {"replica": e["replica"], "metric": e["metric"]} for e in flagged if e["replica"] != victim
            ],
        }
    out["faults"] = results
    return out
