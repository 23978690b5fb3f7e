"""`fleetpilot up` as a child process (the demo, `bench faults` and integration tests use it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


class UpProcess:
    def __init__(self, env: dict[str, str], api_url: str, log_path: Path, args: tuple[str, ...] = ()) -> None:
        self.env = env
        self.api_url = api_url.rstrip("/")
        self.log_path = Path(log_path)
        self.args = args
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60.0) -> UpProcess:
        self.start_background()
        return self.wait_ready(timeout_s)

    def start_background(self) -> UpProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controlplane", "up", *self.args],
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> UpProcess:
        """Until the API answers (a passive controller answers only once it leads)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"fleetpilot up exited with {self.proc.returncode}; log: {self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.api_url}/v1/status", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(
            f"fleetpilot up did not answer on {self.api_url} in {timeout_s} s; log: {self.log_tail()}"
        )

    def status(self) -> dict:
        return httpx.get(f"{self.api_url}/v1/status", timeout=5).json()

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM, then wait for the clean shutdown (final flush); SIGKILL past the deadline."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> UpProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
