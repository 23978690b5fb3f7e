"""`fleetpilot demo`: the main job. For now (issues 2 and 3): bring up the fleet, the router and the
collector, replay the Azure conversation trace through them, then report the client-side summary
next to the same traffic as seen in the telemetry store, and stop everything."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import typer

from controlplane.cli import app
from controlplane.cli.common import ConfigOption, fail, print_json, settings_or_exit

DEMO_TRACE = Path(__file__).resolve().parents[2] / "serving" / "demo_data" / "AzureLLMInferenceTrace_conv.csv"


def _command(*args: str, config: str | None = None) -> list[str]:
    """A `fleetpilot` child command with the same interpreter and config as this process."""
    return [sys.executable, "-m", "controlplane", *args, *(["--config", config] if config else [])]


def _fleetpilot(*args: str, capture: bool = False, config: str | None = None) -> subprocess.CompletedProcess:
    cmd = _command(*args, config=config)
    if capture:
        return subprocess.run(cmd, capture_output=True, text=True)
    # Progress of the steps goes to stderr: stdout carries only the report (one JSON object with --json).
    return subprocess.run(cmd, stdout=sys.stderr, text=True)


def requests_within(trace: Path, window_s: float) -> int:
    """How many requests of a token trace arrive in its first window_s seconds."""
    from serving.replay.traces import open_trace  # noqa: PLC0415

    return sum(1 for r in open_trace(trace).requests if r.offset_s < window_s)


def _start_collector(config: str | None) -> subprocess.Popen:
    return subprocess.Popen(_command("collect", config=config), stdout=sys.stderr, stderr=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen, timeout_s: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()


def telemetry_summary(settings, start_s: float, end_s: float) -> dict:
    """The replayed traffic as the store saw it: reset-safe derived series over the replay window,
    as totals per model (one bucket spans the whole window)."""
    from controlplane.store import StoreError, open_store  # noqa: PLC0415
    from controlplane.store import derived as d  # noqa: PLC0415

    start_s, end_s = start_s - 30, end_s + 30
    step_s = int(end_s - start_s) + 60
    try:
        store = open_store(settings.store_dsn)
    except StoreError as exc:
        return {"error": f"store unavailable: {exc}"}
    by_model: dict[str, dict] = {}
    try:
        for row in store.query(d.request_rate(start_s, end_s, step_s, source="raw")).to_dicts():
            if row["requests_per_s"]:
                m = by_model.setdefault(row["model"], {})
                m["requests"] = round(row["requests_per_s"] * step_s)
                m["failures"] = round((row["failures_per_s"] or 0) * step_s)
        for row in store.query(d.token_rate(start_s, end_s, step_s, source="raw")).to_dicts():
            if row["generation_tokens_per_s"]:
                m = by_model.setdefault(row["model"], {})
                m["generation_tokens"] = round(row["generation_tokens_per_s"] * step_s)
                m["prompt_tokens"] = round((row["prompt_tokens_per_s"] or 0) * step_s)
        for row in store.query(
            d.ttft_percentile(start_s, end_s, step_s, quantile=0.99, source="raw")
        ).to_dicts():
            if row["ttft_p99_s"] is not None:
                by_model.setdefault(row["model"], {})["ttft_p99_ms"] = round(row["ttft_p99_s"] * 1000, 1)
        rows = store.query("SELECT count() FROM samples").rows[0][0]
    finally:
        store.close()
    return {"samples_in_store": rows, "by_model": by_model}


@app.command("demo")
def demo(
    duration_s: float = typer.Option(
        60.0, "--duration", min=5, help="Wall-clock length of the replay (seconds)."
    ),
    speed: float = typer.Option(
        10.0, "--speed", min=0.1, help="Trace time compression (10 = ten times faster)."
    ),
    replicas: int = typer.Option(3, "--replicas", min=1),
    max_prompt_tokens: int = typer.Option(
        64, "--max-prompt-tokens", min=1, help="Cap on prompt tokens per request."
    ),
    max_generated_tokens: int = typer.Option(
        16, "--max-generated-tokens", min=1, help="Cap on generated tokens per request."
    ),
    keep: bool = typer.Option(False, "--keep", help="Leave the fleet and router running afterwards."),
    json_out: bool = typer.Option(False, "--json", help="Print the final report as one JSON object."),
    config: str = ConfigOption,
) -> None:
    """Fleet of Triton replicas in 2 zones + router + time-compressed replay of a real trace."""
    settings = settings_or_exit(config)
    limit = requests_within(DEMO_TRACE, duration_s * speed)
    typer.secho(
        f"demo: {replicas} replicas, router on :{settings.router.port}, "
        f"{limit} requests of the Azure conversation trace at {speed}x",
        err=True,
    )
    started = time.monotonic()
    collector = None
    try:
        if _fleetpilot("fleet", "up", "--replicas", str(replicas), config=config).returncode != 0:
            fail("the fleet did not start; see the error above")
        if _fleetpilot("router", "--background", config=config).returncode != 0:
            fail("the router did not start; see the error above")
        collector = _start_collector(config)
        # A baseline scrape before the first request, so that every request shows up as an increase.
        time.sleep(settings.collect.scrape_interval_s + 2)
        replay_started_s = time.time()
        out = _fleetpilot(
            "replay",
            str(DEMO_TRACE),
            "--speed",
            str(speed),
            "--limit",
            str(limit),
            "--priority-mix",
            "premium=0.2,standard=0.6,batch=0.2",
            # Small caps so that a 2-core machine keeps up with the trace's arrival rate.
            "--max-prompt-tokens",
            str(max_prompt_tokens),
            "--max-generated-tokens",
            str(max_generated_tokens),
            "--json",
            capture=True,
            config=config,
        )
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            fail("the replay failed")
        summary = json.loads(out.stdout)
        time.sleep(settings.collect.scrape_interval_s + 2)  # one more scrape sees the last requests
        _stop(collector)  # final flush into the store before it is read below
        telemetry = telemetry_summary(settings, replay_started_s, time.time())
    finally:
        if collector is not None:
            _stop(collector)
        if not keep:
            _fleetpilot("router", "--stop", config=config)
            _fleetpilot("fleet", "down", config=config)
    report = {
        "trace": DEMO_TRACE.name,
        "speed": speed,
        "replicas": replicas,
        "wall_s": round(time.monotonic() - started, 1),
        "replay": summary,
        "telemetry": telemetry,
    }
    if json_out:
        print_json(report)
    else:
        typer.echo(json.dumps(report, indent=2))
