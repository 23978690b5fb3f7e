"""`fleetpilot dashboard`: the Streamlit command it runs, and clear refusals of bad input."""

from __future__ import annotations

from typer.testing import CliRunner

from controlplane.cli import app

runner = CliRunner()


def test_print_command_uses_configured_port_and_api_url(monkeypatch, tmp_path):
    monkeypatch.delenv("FLEETPILOT_API_URL", raising=False)
    monkeypatch.delenv("FLEETPILOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./fleetpilot.yaml
    monkeypatch.setenv("FLEETPILOT_DASHBOARD__PORT", "18657")
    monkeypatch.setenv("FLEETPILOT_API__PORT", "18697")
    res = runner.invoke(app, ["dashboard", "--print-command"])
    assert res.exit_code == 0, res.output
    argv, url = res.output.strip().splitlines()
    assert "-m streamlit run" in argv and argv.split()[4].endswith("dashboards/app.py")
    assert "--server.port 18657" in argv and "--server.headless true" in argv
    assert url == "FLEETPILOT_API_URL=http://127.0.0.1:18697"


def test_api_url_option_wins_and_bad_values_are_refused(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLEETPILOT_API_URL", "http://from-env:1")
    res = runner.invoke(
        app, ["dashboard", "--print-command", "--api-url", "http://cp:7070", "--port", "18658"]
    )
    assert res.exit_code == 0 and "FLEETPILOT_API_URL=http://cp:7070" in res.output
    assert "--server.port 18658" in res.output
    bad = runner.invoke(app, ["dashboard", "--api-url", "cp:7070"])
    assert bad.exit_code == 2 and "--api-url 'cp:7070' must start with http://" in bad.output
    monkeypatch.setenv("FLEETPILOT_DASHBOARD__REFRESH_INTERVAL_S", "0")
    cfg = runner.invoke(app, ["dashboard", "--print-command"])
    assert cfg.exit_code == 2 and "dashboard.refresh_interval_s" in cfg.output
