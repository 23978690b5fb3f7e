"""Small process and HTTP helpers shared by the fleet, the router launcher, benches and tests."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def pid_alive(pid: int | None) -> bool:
    """True for a running process (a zombie counts as dead)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """True when GET url answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_http_ok(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until url answers 200; raise RuntimeError if proc exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"process {proc.args!r} exited with code {proc.returncode} before {url} answered"
            )
        if http_ok(url):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def log_tail(path: Path, lines: int = 15, errors_first: bool = False) -> str:
    """The last lines of a log; with errors_first, only its error lines when it has any
    (Triton prints long model tables; its errors start with 'E' and are what people need)."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    if errors_first:
        errors = [line for line in text if line.startswith("E") or "error" in line.lower()]
        text = errors or text
    return "\n".join(text[-lines:])
