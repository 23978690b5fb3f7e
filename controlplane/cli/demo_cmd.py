"""`fleetpilot demo`: the main job. A real fleet, router, control plane and dashboard under a
replayed trace with a surge and a slowed replica; a live line per interval, then a report
(controlplane/demo/run.py does the work)."""

from __future__ import annotations

import json

import typer

from controlplane.cli import app
from controlplane.cli.common import ConfigOption, fail, print_json, settings_or_exit


@app.command("demo")
def demo(
    duration_s: float = typer.Option(
        150.0, "--duration", min=30, help="Wall-clock length of the replay (seconds)."
    ),
    speed: float = typer.Option(
        10.0, "--speed", min=0.1, help="Trace time compression (10 = ten times faster)."
    ),
    replicas: int = typer.Option(3, "--replicas", min=2, help="Replicas to start with (in 2 zones)."),
    slo_ms: float = typer.Option(500.0, "--slo-ms", min=1, help="End-to-end latency SLO of chat-lm (ms)."),
    dashboard: bool = typer.Option(True, "--dashboard/--no-dashboard", help="Serve the dashboard meanwhile."),
    keep: bool = typer.Option(False, "--keep", help="Leave everything running afterwards."),
    json_out: bool = typer.Option(False, "--json", help="Print the final report as one JSON object."),
    config: str = ConfigOption,
) -> None:
    """Triton replicas in 2 zones + router + control plane + dashboard under a time-compressed real
    trace with a surge and one replica slowed part-way; prints a report at the end."""
    from controlplane.demo.run import DemoPlan, run_demo  # noqa: PLC0415

    settings = settings_or_exit(config)
    plan = DemoPlan(duration_s=duration_s, speed=speed, replicas=replicas, slo_ms=slo_ms)
    typer.secho(
        f"demo: {replicas} replicas in zones {settings.fleet.zones}, router :{settings.router.port}, "
        f"API :{settings.api.port}, {duration_s:g} s of the Azure conversation trace at {speed:g}x",
        err=True,
    )
    try:
        report = run_demo(settings, plan, config, keep, dashboard=dashboard)
    except RuntimeError as exc:
        fail(str(exc))
        raise
    if json_out:
        print_json(report)
    else:
        typer.echo(json.dumps(report, indent=2))
