"""Shared real-Triton fixtures: ONE fleet of 2 tritonserver replicas and ONE router per test session.

Ports are taken from 18400 upward (replicas) and 18470 (router) so that a developer's own
fleet on the default ports is left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from controlplane.cli.common import fleet_manager
from controlplane.config import Settings, load_settings_with_env
from serving.fleet import FleetManager
from serving.fleet_state import ReplicaRecord
from serving.procs import wait_http_ok

TEST_TOKEN = "test-admin-token"
TRITON_BASE_PORT = int(os.environ.get("FLEETPILOT_TEST_TRITON_BASE_PORT", "18400"))
ROUTER_PORT = int(os.environ.get("FLEETPILOT_TEST_ROUTER_PORT", "18470"))
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@dataclass
class RunningFleet:
    settings: Settings
    manager: FleetManager
    env: dict[str, str]  # environment that points a `fleetpilot` child process at this fleet

    @property
    def replicas(self) -> list[ReplicaRecord]:
        return self.manager.state().replicas


def _test_env(data_dir: Path) -> dict[str, str]:
    return {
        "FLEETPILOT_DATA_DIR": str(data_dir),
        "FLEETPILOT_API_TOKEN": TEST_TOKEN,
        "FLEETPILOT_FLEET__TRITON_BASE_PORT": str(TRITON_BASE_PORT),
        "FLEETPILOT_ROUTER__PORT": str(ROUTER_PORT),
        "FLEETPILOT_FLEET__READY_TIMEOUT_S": "240",
        "FLEETPILOT_FLEET__STOP_TIMEOUT_S": "5",
    }


@pytest.fixture(scope="session")
def fleet(tmp_path_factory) -> RunningFleet:
    data_dir = tmp_path_factory.mktemp("fleet-data")
    env = _test_env(data_dir)
    settings = load_settings_with_env(env)
    manager = fleet_manager(settings)
    manager.up(2)
    running = RunningFleet(settings, manager, {**os.environ, **env})
    try:
        yield running
    finally:
        manager.down()


@pytest.fixture(scope="session")
def router_url(fleet: RunningFleet) -> str:
    """A real router process (`fleetpilot router`) in front of the shared fleet."""
    fleet.settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log = open(fleet.settings.logs_dir / "test-router.log", "ab")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", "controlplane", "router"],
        env=fleet.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    url = f"http://127.0.0.1:{ROUTER_PORT}"
    try:
        wait_http_ok(f"{url}/health", 30, proc)
        # The router needs one health round to see the replicas as healthy.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if json.loads(resp.read()).get("healthy_replicas", 0) >= len(fleet.replicas):
                    break
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"public data folder {SHARED_DATA} is absent")
    return SHARED_DATA
