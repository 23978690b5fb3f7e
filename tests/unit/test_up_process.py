"""`fleetpilot up` as a process, without a fleet: it starts, serves the API, keeps a second
controller passive, and stops cleanly on SIGTERM (exit 0), handing the lease over."""

from __future__ import annotations

import time

import httpx

from controlplane.loop.up_process import UpProcess
from tests.support.ports import free_port


def test_up_without_a_fleet_then_a_passive_second_one_takes_over(tmp_path):
    port = free_port()
    env = {
        "FLEETPILOT_DATA_DIR": str(tmp_path),
        "FLEETPILOT_API__PORT": str(port),
        "FLEETPILOT_API_TOKEN": "t",
        "FLEETPILOT_COLLECT__SCRAPE_INTERVAL_S": "0.5",
        "FLEETPILOT_CONTROL__FORECAST": "false",
    }
    url = f"http://127.0.0.1:{port}"
    first = UpProcess(env, url, tmp_path / "first.log").start(timeout_s=90)
    second = UpProcess(env, url, tmp_path / "second.log")
    try:
        st = first.status()
        assert st["controller"]["role"] == "leader" and st["controller"]["running"]
        deadline = time.monotonic() + 10
        while first.status()["controller"]["tick_count"] < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first.status()["controller"]["tick_count"] >= 2  # ticks with no replica at all
        metrics = httpx.get(f"{url}/metrics", timeout=5).text  # one registry: loop, collector, API
        for name in (
            "fleetpilot_loop_tick_seconds_count",
            "fleetpilot_collector_",
            "fleetpilot_api_requests_total",
        ):
            assert name in metrics, name
        # The second one waits passive (it cannot own the embedded store meanwhile).
        second.start_background()
        time.sleep(3)
        assert second.proc.poll() is None
        assert "waiting passive" in second.log_tail()
        assert first.stop() == 0  # SIGTERM: clean exit
        assert "stopped:" in first.log_tail()
        second.wait_ready(timeout_s=90)  # the lease is free: it takes over
        assert httpx.get(f"{url}/v1/status", timeout=5).json()["controller"]["role"] == "leader"
    finally:
        first.stop()
        assert second.stop() in (0, None)
