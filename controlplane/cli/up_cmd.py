"""`fleetpilot up`: the control plane in one process (collectors, detectors, forecasters, loop, API)."""

from __future__ import annotations

import logging

import typer

from controlplane.cli import app
from controlplane.cli.common import ConfigOption, fail, settings_or_exit


@app.command("up")
def up(
    advisory: bool = typer.Option(
        False, "--advisory", help="Decide and record everything, actuate nothing (control.mode=advisory)."
    ),
    api: bool = typer.Option(True, "--api/--no-api", help="Serve the HTTP API on api.port."),
    config: str = ConfigOption,
) -> None:
    """Run the control plane until SIGTERM / Ctrl-C. Works with or without a running fleet:
    replicas are picked up from the fleet state as they appear. A second `up` on the same data
    directory waits passive until the first one stops."""
    from controlplane.loop.runtime import UpRuntime, run_up  # noqa: PLC0415
    from controlplane.store import StoreError  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_or_exit(config)
    if advisory:
        settings.control.mode = "advisory"
    runtime = UpRuntime(settings, api=api)
    if not runtime.wait_for_lease():
        return
    try:
        runtime.start()
    except StoreError as exc:
        runtime.close()
        fail(f"cannot open the store {settings.store_dsn}: {exc}")
    except OSError as exc:
        runtime.close()
        fail(f"cannot start: {exc}")
    s = settings
    typer.secho(
        f"fleetpilot up: scraping every {s.collect.scrape_interval_s} s, deciding at most every "
        f"{s.control.interval_s} s, mode {s.control.mode}"
        + (f", API on http://{s.bind_host}:{s.api.port}/v1/status" if api else ""),
        err=True,
    )
    raise typer.Exit(run_up(runtime))
