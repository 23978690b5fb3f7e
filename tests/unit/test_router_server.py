"""Background start/stop of the router process, and RouterOptions built from Settings."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from controlplane.cli.router_cmd import router_options
from controlplane.config import load_settings
from serving.procs import pid_alive
from serving.router.options import RouterOptions
from serving.router.server import RouterStartError, start_background, stop_background
from tests.support.ports import free_port


def test_router_options_from_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEETPILOT_API_TOKEN", "tok")
    monkeypatch.setenv("FLEETPILOT_ROUTER__RETRIES", "3")
    settings = load_settings(None, data_dir=tmp_path, bind_host="0.0.0.0")
    opts = router_options(settings)
    assert opts.state_path == settings.fleet_state_path
    assert opts.api_token == "tok"
    assert opts.host == "0.0.0.0" and opts.url == f"http://127.0.0.1:{settings.router.port}"
    assert opts.retries == 3
    assert opts.admit_below_load_ratio == settings.router.admit_below_load_ratio
    assert "tok" not in repr(opts)  # the token never lands in logs


def test_default_priority_must_be_a_class(tmp_path):
    with pytest.raises(ValueError, match="default_priority 'gold'"):
        RouterOptions(state_path=tmp_path / "s.json", api_token="x", default_priority="gold")


def test_background_start_and_stop(tmp_path):
    opts = RouterOptions(state_path=tmp_path / "missing-state.json", api_token="s3cret", port=free_port())
    run_dir = tmp_path / "router"
    bg = start_background(opts, run_dir)
    try:
        assert (run_dir / "router.pid").read_text().strip() == str(bg.pid)
        assert "s3cret" not in (run_dir / "options.json").read_text()  # token goes through the environment
        with urllib.request.urlopen(f"{bg.url}/health", timeout=5) as resp:
            assert json.loads(resp.read())["replicas"] == 0  # missing state file = empty fleet
        req = urllib.request.Request(f"{bg.url}/admin/state", headers={"Authorization": "Bearer s3cret"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
        with pytest.raises(RouterStartError, match="already running"):
            start_background(opts, run_dir)
    finally:
        assert stop_background(run_dir) == bg.pid
    assert not pid_alive(bg.pid)
    assert not (run_dir / "router.pid").exists()
    assert stop_background(run_dir) is None


def test_background_start_reports_a_failing_child(tmp_path):
    # A port that is already taken: the child exits and its log tail is in the error.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        opts = RouterOptions(state_path=tmp_path / "s.json", api_token="x", port=port)
        with pytest.raises(RouterStartError, match="exited with code"):
            start_background(opts, tmp_path / "router", ready_timeout_s=20)
