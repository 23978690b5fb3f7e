"""Helpers shared by the CLI modules: settings loading and clean error exits."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from controlplane.config import ConfigError, Settings, load_settings

ConfigOption = typer.Option(
    None, "--config", "-c", help="YAML config file (default: $FLEETPILOT_CONFIG or ./fleetpilot.yaml)."
)


def settings_or_exit(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        fail(str(exc))
        raise  # unreachable


def fail(message: str, code: int = 2) -> None:
    """Print a clear error (no traceback) and exit non-zero."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def fleet_manager(settings: Settings):
    """A FleetManager configured from settings (imported lazily: serving pulls in Triton helpers)."""
    from serving.fleet import FleetManager, FleetOptions  # noqa: PLC0415

    f = settings.fleet
    return FleetManager(
        FleetOptions(
            fleet_dir=settings.fleet_dir,
            state_path=settings.fleet_state_path,
            host=settings.bind_host,
            base_port=f.triton_base_port,
            zones=tuple(f.zones),
            region=f.region,
            models=tuple(f.models),
            instance_count=f.instance_count_default,
            device=f.device,
            response_cache_size_bytes=f.response_cache_size_bytes,
            ready_timeout_s=f.ready_timeout_s,
            stop_timeout_s=f.stop_timeout_s,
            tritonserver_path=f.tritonserver_path,
            chat_max_running=f.chat_max_running_requests,
            chat_kv_cache_tokens=f.chat_kv_cache_tokens,
        )
    )
