"""Serve an ASGI app with uvicorn from a daemon thread (no signal handlers: the caller owns them)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import uvicorn


class ApiServerError(RuntimeError):
    """The server did not start (port taken, bad host) or did not stop in time."""


@dataclass
class ApiServerHandle:
    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def running(self) -> bool:
        return self.thread.is_alive() and self.server.started

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Ask the server to finish open requests and exit; True when the thread ended in time.
        Idempotent."""
        self.server.should_exit = True
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            self.server.force_exit = True  # open keep-alive connections: stop waiting for them
            self.thread.join(max(1.0, timeout_s / 2))
        return not self.thread.is_alive()


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # older uvicorn calls this; the owner handles signals
        pass


def start_api_thread(
    app, host: str, port: int, *, ready_timeout_s: float = 15.0, log_level: str = "warning"
) -> ApiServerHandle:
    """Start serving `app` on host:port and wait until it accepts connections.

    Raises ApiServerError naming host and port when it cannot bind or is not up in time.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = _ThreadServer(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # noqa: BLE001 - uvicorn exits with SystemExit on bind errors
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"api-{port}", daemon=True)
    thread.start()
    handle = ApiServerHandle(server, thread, host, port)
    deadline = time.monotonic() + ready_timeout_s
    while not server.started:
        if not thread.is_alive():
            detail = f": {errors[0]!r}" if errors else " (is the port already in use?)"
            raise ApiServerError(f"API server on {host}:{port} exited during start{detail}")
        if time.monotonic() > deadline:
            handle.stop(2.0)
            raise ApiServerError(f"API server on {host}:{port} was not up after {ready_timeout_s:g} s")
        time.sleep(0.02)
    return handle
