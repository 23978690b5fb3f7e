"""`fleetpilot router`: run the HTTP router in front of the fleet's Triton replicas."""

from __future__ import annotations

import typer

from controlplane.cli import app
from controlplane.cli.common import ConfigOption, fail, print_json, settings_or_exit
from controlplane.config import Settings
from serving.router.options import RouterOptions


def router_options(settings: Settings) -> RouterOptions:
    """RouterOptions from Settings (router section, fleet state file, bind host, API token)."""
    r = settings.router
    return RouterOptions(
        state_path=settings.fleet_state_path,
        api_token=settings.resolved_api_token(),
        host=settings.bind_host,
        port=r.port,
        max_inflight_requests=r.max_inflight_requests,
        admit_below_load_ratio=dict(r.admit_below_load_ratio),
        default_priority=r.default_priority,
        tier_complexity_threshold_ratio=r.tier_complexity_threshold_ratio,
        large_tier_model=r.large_tier_model,
        local_zone=r.local_zone,
        spill_inflight_per_replica=r.spill_inflight_per_replica,
        upstream_timeout_s=r.upstream_timeout_s,
        health_check_interval_s=r.health_check_interval_s,
        ejection_s=r.ejection_s,
        retries=r.retries,
        state_poll_interval_s=r.state_poll_interval_s,
    )


def router_run_dir(settings: Settings):
    """Where the background router keeps its pid file, log and options."""
    return settings.data_dir.resolve() / "router"


@app.command("router")
def router(
    background: bool = typer.Option(
        False, "--background", help="Run detached; returns once /health answers."
    ),
    stop: bool = typer.Option(False, "--stop", help="Stop the background router."),
    port: int = typer.Option(None, "--port", min=1, max=65535, help="Port (default router.port)."),
    config: str = ConfigOption,
) -> None:
    """HTTP router: weighted balancing, admission control, tier routing, failover, streaming."""
    from serving.router import server  # noqa: PLC0415 - keep CLI start fast

    settings = settings_or_exit(config)
    run_dir = router_run_dir(settings)
    if stop:
        pid = server.stop_background(run_dir)
        print_json({"stopped": pid is not None, "pid": pid})
        return
    try:
        options = router_options(settings)
    except ValueError as exc:
        fail(str(exc))
        raise
    if port is not None:
        options.port = port
    if background:
        try:
            bg = server.start_background(options, run_dir)
        except server.RouterStartError as exc:
            fail(str(exc))
            raise
        print_json({"url": bg.url, "pid": bg.pid, "log": str(bg.log_path), "pid_file": str(bg.pid_path)})
        return
    typer.secho(f"router on {options.url} (state file {options.state_path}); Ctrl-C stops it", err=True)
    server.run_foreground(options)
