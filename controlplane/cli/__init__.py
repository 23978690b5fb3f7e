"""`fleetpilot` command line: one small module per command group, registered here."""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="fleetpilot: observability and autonomous control for Triton fleets.",
)

# Each module adds its commands to `app` on import.
from controlplane.cli import (  # noqa: E402,F401
    api_cmd,
    bench_autoscale_cmd,
    bench_cmd,
    bench_faults_cmd,
    collect_cmd,
    dashboard_cmd,
    demo_cmd,
    detect_cmd,
    fleet_cmd,
    forecast_cmd,
    profile_cmd,
    query_cmd,
    replay_cmd,
    router_cmd,
    sim_cmd,
    up_cmd,
)
