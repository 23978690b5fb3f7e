"""Run the router: in the foreground, or as a detached background process; and stop it.

Background mode writes `<run_dir>/router.pid`, `<run_dir>/router.log` and
`<run_dir>/options.json` (without the token: the child gets it through the environment)
and returns once `GET /health` answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from serving.procs import http_ok, log_tail, pid_alive
from serving.router.app import RouterApp
from serving.router.options import RouterOptions

log = logging.getLogger(__name__)

TOKEN_ENV = "FLEETPILOT_ROUTER_API_TOKEN"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class RouterStartError(RuntimeError):
    """The background router did not come up; the message carries its log tail."""


@dataclass(frozen=True)
class BackgroundRouter:
    pid: int
    url: str
    log_path: Path
    pid_path: Path


async def serve(options: RouterOptions, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT when stop is None)."""
    router = RouterApp(options)
    runner = web.AppRunner(router.build(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port, backlog=1024, reuse_address=True)
    await site.start()
    log.info("router listening on %s (state file %s)", options.url, options.state_path)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run_foreground(options: RouterOptions) -> None:
    import uvloop  # noqa: PLC0415 - only the serving process needs it

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvloop.run(serve(options))


def start_background(
    options: RouterOptions, run_dir: Path, ready_timeout_s: float = 30.0
) -> BackgroundRouter:
    """Start the router as a detached process; return once /health answers."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pid_path, log_path, opts_path = run_dir / "router.pid", run_dir / "router.log", run_dir / "options.json"
    if pid_path.exists():
        old = int(pid_path.read_text().strip() or 0)
        if old and pid_alive(old):
            raise RouterStartError(
                f"a router is already running (pid {old}, pid file {pid_path}); stop it first"
            )
    if http_ok(f"{options.url}/health", 0.5):
        raise RouterStartError(f"something already answers on {options.url}")
    opts_path.write_text(json.dumps(options.to_json(), indent=2))
    env = dict(os.environ)
    env[TOKEN_ENV] = options.api_token
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    with open(log_path, "ab") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "serving.router.server", "--options-file", str(opts_path)],
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(PROJECT_ROOT),
            start_new_session=True,  # detached: survives the CLI and its terminal
        )
    pid_path.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pid_path.unlink(missing_ok=True)
            raise RouterStartError(
                f"router exited with code {proc.returncode}; log {log_path}:\n{log_tail(log_path)}"
            )
        if http_ok(f"{options.url}/health", 0.5):
            return BackgroundRouter(proc.pid, options.url, log_path, pid_path)
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    pid_path.unlink(missing_ok=True)
    raise RouterStartError(
        f"router did not answer {options.url}/health within {ready_timeout_s} s; log {log_path}:\n{log_tail(log_path)}"
    )


def stop_background(run_dir: Path, timeout_s: float = 10.0) -> int | None:
    """Stop the background router; returns its pid, or None when none was running."""
    pid_path = Path(run_dir) / "router.pid"
    try:
        pid = int(pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        if not pid_alive(pid):
            return None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and pid_alive(pid):
            _reap(pid)
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        _reap(pid)  # a zombie counts as stopped; collect it if it is our child
        return pid
    finally:
        pid_path.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    """Collect the exit status when the router is our own child (else it lingers as a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fleetpilot router process (use `fleetpilot router`)")
    parser.add_argument("--options-file", required=True, type=Path)
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        sys.exit(f"error: {TOKEN_ENV} is not set; the admin endpoints need a token")
    options = RouterOptions.from_json(json.loads(args.options_file.read_text()), api_token=token)
    run_foreground(options)


if __name__ == "__main__":
    main()
