"""`fleetpilot dashboard`: the Streamlit SRE dashboards, reading the control-plane API."""

from __future__ import annotations

import os
import sys

import typer

from controlplane.cli import app
from controlplane.cli.common import ConfigOption, fail, settings_or_exit
from controlplane.config import ConfigError


@app.command("dashboard")
def dashboard(
    port: int = typer.Option(None, "--port", min=1, max=65535, help="Port (default dashboard.port)."),
    api_url: str = typer.Option(
        None,
        "--api-url",
        help="Control-plane API base URL (default $FLEETPILOT_API_URL or dashboard.api_url).",
    ),
    print_command: bool = typer.Option(
        False, "--print-command", help="Print the streamlit command line instead of running it."
    ),
    config: str = ConfigOption,
) -> None:
    """Serve the dashboards (headless Streamlit) on dashboard.port; data comes only from the API."""
    from dashboards.settings import streamlit_command  # noqa: PLC0415 - keep CLI start fast

    settings = settings_or_exit(config)
    if api_url is not None and not api_url.startswith(("http://", "https://")):
        fail(f"--api-url {api_url!r} must start with http:// or https://")
    try:
        argv, env = streamlit_command(
            settings, os.environ, port=port, api_url_override=api_url, config_file=config
        )
    except ConfigError as exc:
        fail(str(exc))
        return
    if print_command:
        typer.echo(" ".join(argv))
        typer.echo(f"FLEETPILOT_API_URL={env['FLEETPILOT_API_URL']}")
        return
    port_used = argv[argv.index("--server.port") + 1]
    typer.secho(
        f"dashboard on http://{settings.bind_host}:{port_used} reading the API at {env['FLEETPILOT_API_URL']}",
        err=True,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process: Ctrl-C and SIGTERM go straight to Streamlit.
    os.execve(argv[0], argv, env)
