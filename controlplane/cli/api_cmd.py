"""`fleetpilot api`: serve the control-plane API alone against the configured store.

With the embedded store (no store.dsn) this process owns the store, so it must not run beside
`fleetpilot up` (which serves the same API itself); with a server DSN any number may run.
"""

from __future__ import annotations

import signal
import threading

import typer
from pydantic import SecretStr

from controlplane.cli import app
from controlplane.cli.common import ConfigOption, fail, settings_or_exit


@app.command("api")
def api_cmd(
    port: int = typer.Option(None, "--port", help="Port (default: api.port)."),
    host: str = typer.Option(None, "--host", help="Address to bind (default: bind_host)."),
    config: str = ConfigOption,
) -> None:
    """Serve the HTTP API (status, models, audit trail, overrides, read-only SQL) until Ctrl-C / SIGTERM.

    The embedded store allows one process: do not run this beside `fleetpilot up`, which serves the
    API itself. The admin token is api_token / FLEETPILOT_API_TOKEN, else the one in <data_dir>/api_token.
    """
    from controlplane.api import ApiContext, create_app, start_api_thread  # noqa: PLC0415
    from controlplane.api.server import ApiServerError  # noqa: PLC0415
    from controlplane.store import StoreError, StoreLocked, open_store  # noqa: PLC0415

    settings = settings_or_exit(config)
    settings.api_token = SecretStr(settings.resolved_api_token())
    s = settings.store
    try:
        store = open_store(
            settings.store_dsn,
            cluster=s.cluster,
            raw_ttl_days=s.raw_ttl_days,
            rollup_ttl_days=s.rollup_ttl_days,
        )
    except StoreLocked:
        fail(
            "the embedded store is owned by another process (a running `fleetpilot up` serves the API already)"
        )
    except StoreError as exc:
        fail(str(exc))
    bind = host or settings.bind_host
    try:
        handle = start_api_thread(
            create_app(ApiContext(settings=settings, store=store)), bind, port or settings.api.port
        )
    except ApiServerError as exc:
        store.close()
        fail(str(exc))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"API on {handle.base_url} (store {'embedded' if store.embedded else 'server'}); Ctrl-C stops")
    try:
        while not stop.wait(0.5):
            if not handle.thread.is_alive():
                fail("the API server stopped unexpectedly", code=1)
    finally:
        handle.stop(10.0)
        store.close()
