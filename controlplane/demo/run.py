"""The demo: a real fleet (3 Triton replicas in 2 zones), the router, `fleetpilot up` (collectors,
detectors, loop, API on the embedded store) and the dashboard, driven by the Azure conversation
trace, time-compressed, with a surge part-way (a second replay of the trace at twice the speed)
and one replica slowed on purpose. The controller should add replicas for the surge and drain the
slow replica; a live line per interval shows it, and the report says what happened.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import typer

from controlplane.config import Settings
from controlplane.demo import report as rep
from controlplane.loop.up_process import UpProcess
from serving.faults import Faults

DEMO_TRACE = Path(__file__).resolve().parents[2] / "serving" / "demo_data" / "AzureLLMInferenceTrace_conv.csv"
CHAT_MODEL = "chat-lm"


def command(*args: str, config: str | None = None) -> list[str]:
    """A `fleetpilot` child command with the same interpreter and config as this process."""
    return [sys.executable, "-m", "controlplane", *args, *(["--config", config] if config else [])]


def run_step(*args: str, config: str | None = None) -> None:
    # Progress of child steps goes to stderr: stdout carries only the report.
    if subprocess.run(command(*args, config=config), stdout=sys.stderr).returncode != 0:
        raise RuntimeError(f"`fleetpilot {' '.join(args)}` failed; see the error above")


def requests_within(trace: Path, window_s: float) -> int:
    """How many requests of a token trace arrive in its first window_s seconds."""
    from serving.replay.traces import open_trace  # noqa: PLC0415

    return sum(1 for r in open_trace(trace).requests if r.offset_s < window_s)


@dataclass
class DemoPlan:
    duration_s: float = 150.0
    speed: float = 10.0
    replicas: int = 3
    surge_at_ratio: float = 0.2  # the surge replay starts at this fraction of the duration ...
    surge_len_ratio: float = 0.35  # ... and lasts this fraction
    surge_speed_ratio: float = 2.0  # its speed relative to the base replay
    slow_at_ratio: float = 0.6  # one replica is slowed from this fraction of the duration on
    slow_added_ms: float = 150.0
    max_prompt_tokens: int = 64
    max_generated_tokens: int = 16
    slo_ms: float = 500.0


@dataclass
class Timeline:
    replicas_seen: list[int] = field(default_factory=list)
    slow_replica: str | None = None
    slow_injected_s: float | None = None
    lines: list[str] = field(default_factory=list)


def demo_env(settings: Settings, plan: DemoPlan) -> dict[str, str]:
    """Config the demo's `up` gets on top of the user's: a fast loop sized for one machine."""
    return {
        "FLEETPILOT_COLLECT__SCRAPE_INTERVAL_S": "2",
        "FLEETPILOT_COLLECT__BATCH_MAX_AGE_S": "2",
        "FLEETPILOT_CONTROL__INTERVAL_S": "2",
        "FLEETPILOT_CONTROL__MIN_REPLICAS": str(plan.replicas),
        "FLEETPILOT_CONTROL__MAX_REPLICAS": str(plan.replicas + 2),
        "FLEETPILOT_CONTROL__SLO_P99_MS_BY_MODEL": json.dumps({CHAT_MODEL: plan.slo_ms}),
        "FLEETPILOT_CONTROL__REPLACE_AFTER_S": str(int(plan.duration_s * 2)),  # drain, do not replace
        "FLEETPILOT_CONTROL__SCALE_DOWN_WINDOW_S": "60",
    }


def _replay(
    settings: Settings, plan: DemoPlan, speed: float, window_s: float, results: Path, config
) -> subprocess.Popen:
    limit = max(1, requests_within(DEMO_TRACE, window_s * speed))
    args = [
        "replay", str(DEMO_TRACE), "--speed", str(speed), "--limit", str(limit),
        "--priority-mix", "premium=0.2,standard=0.6,batch=0.2",
        "--max-prompt-tokens", str(plan.max_prompt_tokens),
        "--max-generated-tokens", str(plan.max_generated_tokens),
        "--results", str(results), "--json",
    ]  # fmt: skip
    return subprocess.Popen(
        command(*args, config=config), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def pick_victim(api_url: str, names: list[str]) -> str:
    """A replica in full rotation (slowing a drained one would show nothing)."""
    try:
        reps = httpx.get(f"{api_url}/v1/replicas", timeout=5).json()["replicas"]
        full = [
            r["replica"]
            for r in reps
            if r["replica"] in names and (r["weight"] is None or r["weight"] >= 100)
        ]
        if full:
            return sorted(full)[0]
    except (httpx.HTTPError, KeyError):
        pass
    return names[0]


def live_line(api_url: str, t_s: float) -> tuple[str, int]:
    """One terminal line: replicas and their weights, load, p99, incidents, actions so far."""
    models = httpx.get(f"{api_url}/v1/models", timeout=5).json()["models"]
    reps = httpx.get(f"{api_url}/v1/replicas", timeout=5).json()["replicas"]
    status = httpx.get(f"{api_url}/v1/status", timeout=5).json()
    chat = next((m for m in models if m["model"] == CHAT_MODEL), {})
    weights = " ".join(f"{r['replica']}={r['weight'] if r['weight'] is not None else '-'}" for r in reps)
    rate = chat.get("rate_rps")
    p99 = chat.get("p99_ms")
    line = (
        f"t={t_s:5.0f}s replicas={len(reps)} [{weights}] chat {rate or 0:.1f} rps"
        f" p99 {p99 or 0:.0f} ms desired={chat.get('desired_replicas')}"
        f" incidents={status['open_incidents']}"
    )
    return line, len(reps)


def run_demo(
    settings: Settings, plan: DemoPlan, config: str | None, keep: bool, dashboard: bool = True
) -> dict:
    from controlplane.cli.common import fleet_manager  # noqa: PLC0415

    api_url = f"http://{settings.bind_host}:{settings.api.port}"
    dash_url = f"http://{settings.bind_host}:{settings.dashboard.port}"
    work = settings.data_dir.resolve() / "demo"
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tl = Timeline()
    up = dash = None
    replays: list[tuple[str, subprocess.Popen, Path]] = []
    manager = fleet_manager(settings)
    try:
        run_step("fleet", "up", "--replicas", str(plan.replicas), config=config)
        run_step("router", "--background", config=config)
        up = UpProcess(demo_env(settings, plan), api_url, settings.logs_dir / "demo-up.log",
                       args=(*(["--config", config] if config else []),)).start(timeout_s=120)  # fmt: skip
        if dashboard:
            dash = subprocess.Popen(
                command("dashboard", "--api-url", api_url, config=config),
                stdout=open(settings.logs_dir / "demo-dashboard.log", "ab"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
        typer.secho(f"demo: API {api_url}/v1/status, dashboard {dash_url}", err=True)
        time.sleep(6)  # a baseline scrape before the first request
        t0 = time.time()
        replays.append(("base", _replay(settings, plan, plan.speed, plan.duration_s, work / "base.jsonl", config),
                        work / "base.jsonl"))  # fmt: skip
        surge_started = False
        while True:
            t = time.time() - t0
            if not surge_started and t >= plan.surge_at_ratio * plan.duration_s:
                surge_started = True
                speed = plan.speed * plan.surge_speed_ratio
                replays.append(("surge", _replay(settings, plan, speed, plan.surge_len_ratio * plan.duration_s,
                                                 work / "surge.jsonl", config), work / "surge.jsonl"))  # fmt: skip
                typer.secho(f"t={t:5.0f}s surge: a second replay at {speed:g}x", err=True)
            if tl.slow_replica is None and t >= plan.slow_at_ratio * plan.duration_s:
                victim = pick_victim(api_url, [r.name for r in manager.state().replicas])
                manager.set_faults(victim, Faults(added_latency_ms=plan.slow_added_ms))
                tl.slow_replica, tl.slow_injected_s = victim, time.time()
                typer.secho(f"t={t:5.0f}s fault: {victim} slowed by {plan.slow_added_ms:g} ms", err=True)
            try:
                line, n = live_line(api_url, t)
                tl.replicas_seen.append(n)
                tl.lines.append(line)
                typer.secho(line, err=True)
            except (httpx.HTTPError, KeyError) as exc:
                typer.secho(f"t={t:5.0f}s (API not answering: {exc})", err=True)
            if all(p.poll() is not None for _, p, _ in replays) and surge_started:
                break
            time.sleep(5)
        time.sleep(4)  # one more scrape and tick see the last requests
        report = _report(api_url, dash_url, plan, tl, replays, t0)
    finally:
        for _, p, _ in replays:
            if p.poll() is None:
                p.terminate()
        if tl.slow_replica is not None:
            try:
                manager.set_faults(tl.slow_replica, Faults())
            except Exception:  # noqa: BLE001 - the fleet may already be gone
                pass
        if up is not None and not keep:
            up.stop()
        if dash is not None and not keep:
            dash.terminate()
        if not keep:
            subprocess.run(command("router", "--stop", config=config), stdout=sys.stderr)
            subprocess.run(command("fleet", "down", config=config), stdout=sys.stderr)
    report["wall_s"] = round(time.monotonic() - started, 1)
    return report


def _report(api_url, dash_url, plan: DemoPlan, tl: Timeline, replays, t0: float) -> dict:
    since = time.time() - t0 + 30
    get = lambda path, **p: httpx.get(f"{api_url}{path}", params=p, timeout=30).json()  # noqa: E731
    actions = get("/v1/actions", since_s=since, limit=1000)["actions"]
    decisions = get("/v1/decisions", since_s=since, limit=5000)["decisions"]
    events = get("/v1/anomalies", since_s=since, limit=1000)["events"]
    incidents = rep.summarize_incidents(events)
    requests, within = 0, 0.0
    summaries = {}
    for name, proc, path in replays:
        out, _ = proc.communicate(timeout=60)
        try:
            summaries[name] = json.loads(out)
        except ValueError:
            summaries[name] = {"error": "no summary"}
        if path.exists():
            n, ratio = rep.slo_attainment(path, plan.slo_ms)
            requests += n
            within += (ratio or 0.0) * n
    return {
        "requests": requests,
        "slo_ms": plan.slo_ms,
        "slo_attainment": round(within / requests, 4) if requests else None,
        "replicas_min": min(tl.replicas_seen) if tl.replicas_seen else None,
        "replicas_max": max(tl.replicas_seen) if tl.replicas_seen else None,
        "actions": rep.summarize_actions(actions, decisions),
        "incidents": incidents,
        "slow_replica": tl.slow_replica,
        "fault_detected_s": rep.fault_detected_s(incidents, tl.slow_replica or "", tl.slow_injected_s),
        "dashboard_url": dash_url,
        "api_url": api_url,
        "replays": summaries,
    }
