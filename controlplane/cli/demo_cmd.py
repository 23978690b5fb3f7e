"""`fleetpilot demo`: the main job. For now (issue 2): bring up the fleet and the router, replay
the Azure conversation trace through them, print the summary, stop everything."""

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


def _fleetpilot(*args: str, capture: bool = False, config: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "controlplane", *args]
    if config:
        cmd += ["--config", config]
    return subprocess.run(cmd, capture_output=capture, text=True)


def requests_within(trace: Path, window_s: float) -> int:
    """How many requests of a token trace arrive in its first window_s seconds."""
    from serving.replay.traces import open_trace  # noqa: PLC0415

    return sum(1 for r in open_trace(trace).requests if r.offset_s < window_s)


@app.command("demo")
def demo(
    duration_s: float = typer.Option(
        60.0, "--duration", min=5, help="Wall-clock length of the replay (seconds)."
    ),
    speed: float = typer.Option(
        10.0, "--speed", min=0.1, help="Trace time compression (10 = ten times faster)."
    ),
    replicas: int = typer.Option(3, "--replicas", min=1),
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
    try:
        if _fleetpilot("fleet", "up", "--replicas", str(replicas), config=config).returncode != 0:
            fail("the fleet did not start; see the error above")
        if _fleetpilot("router", "--background", config=config).returncode != 0:
            fail("the router did not start; see the error above")
        out = _fleetpilot(
            "replay",
            str(DEMO_TRACE),
            "--speed",
            str(speed),
            "--limit",
            str(limit),
            "--priority-mix",
            "premium=0.2,standard=0.6,batch=0.2",
            "--json",
            capture=True,
            config=config,
        )
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            fail("the replay failed")
        summary = json.loads(out.stdout)
    finally:
        if not keep:
            _fleetpilot("router", "--stop", config=config)
            _fleetpilot("fleet", "down", config=config)
    report = {
        "trace": DEMO_TRACE.name,
        "speed": speed,
        "replicas": replicas,
        "wall_s": round(time.monotonic() - started, 1),
        "replay": summary,
    }
    if json_out:
        print_json(report)
    else:
        typer.echo(json.dumps(report, indent=2))
