"""docker-compose.yml: parses, every service is health-checked, no credential has a literal or
default value, and the fleetpilot configuration it passes through the environment is valid.

Docker itself does not run here; compose's `${VAR}` interpolation is reproduced below for the
forms the file uses (`${VAR}`, `${VAR:-default}`, `${VAR:?message}`, `$$`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from controlplane.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
_VAR_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "USER")
DUMMY = {
    "CLICKHOUSE_USER": "dummy-user",
    "CLICKHOUSE_PASSWORD": "dummy-password",
    "FLEETPILOT_API_TOKEN": "dummy-token",
}


class Unset(KeyError):
    pass


def interpolate(value: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        got = env.get(name)
        if op in (":-", "-"):
            return got if got else arg
        if op in (":?", "?") and not got:
            raise Unset(f"{name}: {arg}")
        return got or ""

    return _VAR_RE.sub(sub, value)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def fleetpilot_services() -> list[str]:
    return [name for name, s in SERVICES.items() if s.get("build")]


def test_the_expected_services_exist():
    assert {"clickhouse", "triton", "controlplane", "router", "dashboard"} <= set(SERVICES)
    assert SERVICES["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert SERVICES["triton"]["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert SERVICES["controlplane"]["command"] == ["up"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck(name):
    hc = SERVICES[name].get("healthcheck")
    assert hc and hc.get("test") and hc["test"][0] in ("CMD", "CMD-SHELL"), name
    assert not hc.get("disable")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_wait_for_health(name):
    deps = SERVICES[name].get("depends_on") or {}
    assert isinstance(deps, dict), f"{name}: depends_on must name a condition per service"
    for dep, cond in deps.items():
        assert dep in SERVICES and cond == {"condition": "service_healthy"}, (name, dep, cond)


def _secret_values():
    for name, s in SERVICES.items():
        for key, value in environment(s).items():
            yield name, key, value


@pytest.mark.parametrize(("service", "key", "value"), list(_secret_values()))
def test_no_literal_or_default_credentials(service, key, value):
    refs = [(m.group(1), m.group(2)) for m in _VAR_RE.finditer(value) if m.group(1)]
    # A credential variable never has a default (`${X:-...}`): it must be set, or compose stops.
    for var, op in refs:
        if any(w in var for w in SECRET_WORDS):
            assert op in (":?", "?"), f"{service}.{key}: ${{{var}}} must be required (${{{var}:?...}})"
    if any(w in key for w in ("PASSWORD", "TOKEN", "SECRET")):
        assert refs and _VAR_RE.sub("", value) == "", f"{service}.{key} must be only a ${{VAR}} reference"
    # Credentials inside a URL (user:pass@host) come from variables too.
    for userinfo in re.findall(r"://([^@/]+)@", value):
        assert _VAR_RE.sub("", userinfo).strip(":") == "", f"{service}.{key}: literal credentials in a URL"


def test_required_credentials_stop_compose_when_unset():
    env = environment(SERVICES["controlplane"])
    with pytest.raises(Unset, match="FLEETPILOT_API_TOKEN"):
        interpolate(env["FLEETPILOT_API_TOKEN"], {})
    with pytest.raises(Unset, match="CLICKHOUSE_"):
        interpolate(env["FLEETPILOT_STORE__DSN"], {"FLEETPILOT_API_TOKEN": "x"})
    with pytest.raises(Unset, match="CLICKHOUSE_PASSWORD"):
        interpolate(environment(SERVICES["clickhouse"])["CLICKHOUSE_PASSWORD"], {})


@pytest.mark.parametrize("name", fleetpilot_services())
def test_fleetpilot_environment_is_a_valid_config(name, monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("FLEETPILOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no ./fleetpilot.yaml
    env = {k: interpolate(v, DUMMY) for k, v in environment(SERVICES[name]).items()}
    assert env, name
    for key, value in env.items():
        assert key.startswith("FLEETPILOT_"), f"{name}: {key} is not fleetpilot configuration"
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert str(settings.data_dir) == "/data" and settings.bind_host == "0.0.0.0"
    if name == "controlplane":
        assert settings.store_dsn == "http://dummy-user:dummy-password@clickhouse:8123/fleetpilot"
        assert settings.api_token.get_secret_value() == "dummy-token"
        assert settings.collect.from_fleet_state is False
        [target] = settings.collect.static_targets
        assert target.metrics_url == "http://triton:8002/metrics" and target.stats_url == "http://triton:8000"
        assert settings.control.mode == "advisory"
    if name == "dashboard":
        assert settings.dashboard.api_url == "http://controlplane:7070"


def test_triton_is_gpu_capable_with_the_model_repository_mounted():
    t = SERVICES["triton"]
    devices = t["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d.get("capabilities", []) for d in devices)
    assert "./serving/model_repository:/models:ro" in t["volumes"]
    command = " ".join(t["command"])
    assert "--model-repository=/models" in command and "--metrics-config=histogram_latencies=true" in command
    # Every model the repository holds is loaded.
    for model in sorted(p.name for p in (ROOT / "serving" / "model_repository").iterdir() if p.is_dir()):
        assert f"--load-model={model}" in command


def test_router_lists_the_triton_service_in_its_fleet_state(monkeypatch, tmp_path):
    import os

    from serving.fleet_state import read_state

    r = SERVICES["router"]
    assert r["entrypoint"] == ["python", "-c"]
    code = r["command"][0].replace("/data/", f"{tmp_path}/")
    execs = []
    monkeypatch.setattr(os, "execvp", lambda prog, args: execs.append(args))
    exec(compile(code, "router-command", "exec"), {})
    assert execs == [["fleetpilot", "router"]]
    [rec] = read_state(tmp_path / "fleet" / "state.json").replicas
    assert (rec.host, rec.http_port, rec.metrics_port) == ("triton", 8000, 8002)
    assert set(rec.models) == {
        p.name for p in (ROOT / "serving" / "model_repository").iterdir() if p.is_dir()
    }
