"""What the dashboard needs from the fleetpilot settings, without Streamlit (the CLI uses it too)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controlplane.config import ConfigError, Settings

APP_PATH = Path(__file__).resolve().parent / "app.py"
API_URL_ENV = "FLEETPILOT_API_URL"


@dataclass(frozen=True)
class DashboardSettings:
    api_url: str
    refresh_interval_s: float
    request_timeout_s: float
    default_window_s: int
    query_max_rows: int


def connect_host(bind_host: str) -> str:
    """An address to connect to for a server bound to `bind_host` (a wildcard is not one)."""
    host = bind_host if bind_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def api_url(settings: Settings, env: Mapping[str, str]) -> str:
    """FLEETPILOT_API_URL, else dashboard.api_url, else http://<bind_host>:<api.port>."""
    url = env.get(API_URL_ENV) or settings.dashboard.api_url
    if not url:
        url = f"http://{connect_host(settings.bind_host)}:{settings.api.port}"
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{API_URL_ENV} = {url!r} is invalid: it must start with http:// or https://")
    return url.rstrip("/")


def resolve(settings: Settings, env: Mapping[str, str]) -> DashboardSettings:
    d = settings.dashboard
    return DashboardSettings(
        api_url=api_url(settings, env),
        refresh_interval_s=d.refresh_interval_s,
        request_timeout_s=d.request_timeout_s,
        default_window_s=d.default_window_s,
        query_max_rows=d.query_max_rows,
    )


def streamlit_command(
    settings: Settings,
    env: Mapping[str, str],
    *,
    port: int | None = None,
    api_url_override: str | None = None,
    config_file: str | Path | None = None,
) -> tuple[list[str], dict[str, str]]:
    """argv and environment of `streamlit run dashboards/app.py`, headless, on dashboard.port.

    The environment keeps everything the caller has (FLEETPILOT_API_TOKEN included) and adds
    FLEETPILOT_API_URL, plus FLEETPILOT_CONFIG when a config file was named, so the app reads
    the same settings as the command that started it.
    """
    child_env = dict(env)
    if config_file is not None:
        child_env["FLEETPILOT_CONFIG"] = str(Path(config_file).resolve())
    if api_url_override is not None:
        child_env[API_URL_ENV] = api_url_override
    child_env[API_URL_ENV] = api_url(settings, child_env)
    argv = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.port",
        str(port or settings.dashboard.port),
        "--server.address",
        settings.bind_host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--theme.base",
        "light",
    ]
    return argv, child_env
