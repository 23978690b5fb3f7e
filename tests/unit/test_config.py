"""Configuration: the shipped example parses, overrides apply, bad values name key, value and range."""

from pathlib import Path

import pytest
import yaml

from controlplane.config import ConfigError, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "fleetpilot.example.yaml"


def _keys(model_cls, prefix=""):
    from pydantic import BaseModel

    for name, f in model_cls.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _keys(ann, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def _flatten(d, prefix=""):
    for k, v in d.items():
        # dict-valued fields (a map per class or per model) are one key, not a section
        if (
            isinstance(v, dict)
            and k not in ("admit_below_load_ratio", "model_modes")
            and not k.endswith("_by_model")
        ):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def test_shipped_example_parses_and_equals_defaults(monkeypatch):
    monkeypatch.delenv("FLEETPILOT_CONFIG", raising=False)
    loaded = load_settings(EXAMPLE)
    assert loaded.model_dump() == Settings().model_dump()


def test_example_documents_every_field():
    documented = set(_flatten(yaml.safe_load(EXAMPLE.read_text())))
    assert documented == set(_keys(Settings))
    for key in _keys(Settings):
        section, _, name = key.rpartition(".")
        cls = Settings.model_fields[section].annotation if section else Settings
        assert cls.model_fields[name].description, f"field {key} lacks a description"


def test_every_numeric_field_has_a_unit_in_its_name():
    units = (
        "_s",
        "_ms",
        "_bytes",
        "_ratio",
        "_port",
        "_tokens",
        "_days",
        "_requests",
        "_count",
        "_default",
        "port",
        "retries",
        "_concurrency",
        "_index",
        "_rows",
        "_per_target",
        "_per_replica",
        "_per_hour",
        "_replicas",
        "_weight",
    )
    numeric = []
    for key in _keys(Settings):
        section, _, name = key.rpartition(".")
        cls = Settings.model_fields[section].annotation if section else Settings
        ann = cls.model_fields[name].annotation
        if ann in (int, float):
            numeric.append(name)
            assert name.endswith(units), f"{key} has no unit suffix"
    assert numeric


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("FLEETPILOT_ROUTER__PORT", "70000", "router.port"),
        ("FLEETPILOT_FLEET__READY_TIMEOUT_S", "-1", "fleet.ready_timeout_s"),
        ("FLEETPILOT_FLEET__DEVICE", "tpu", "fleet.device"),
        ("FLEETPILOT_ROUTER__TIER_COMPLEXITY_THRESHOLD_RATIO", "1.5", "<= 1"),
    ],
)
def test_bad_env_value_names_key_value_and_range(monkeypatch, env, value, fragment):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    msg = str(err.value)
    assert fragment in msg and value in msg


def test_port_error_message_states_range(monkeypatch):
    monkeypatch.setenv("FLEETPILOT_ROUTER__PORT", "70000")
    with pytest.raises(ConfigError, match=r"router\.port' = '70000' .*<= 65535"):
        load_settings()


def test_env_overrides_yaml_and_yaml_overrides_defaults(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("router:\n  port: 7100\n  max_inflight_requests: 10\n")
    monkeypatch.setenv("FLEETPILOT_ROUTER__PORT", "7200")
    s = load_settings(cfg)
    assert s.router.port == 7200 and s.router.max_inflight_requests == 10 and s.api.port == 7070


def test_unknown_key_is_rejected_by_name(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("router:\n  portt: 7100\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'router.portt'"):
        load_settings(cfg)


def test_admission_ratio_out_of_range(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("router:\n  admit_below_load_ratio: {premium: 1.0, batch: 0}\n")
    with pytest.raises(ConfigError, match="batch"):
        load_settings(cfg)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_data_dir_from_env_and_generated_token(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEETPILOT_DATA_DIR", str(tmp_path / "d"))
    s = load_settings()
    assert s.fleet_state_path == (tmp_path / "d" / "fleet" / "state.json")
    assert s.store_dsn == f"chdb:///{tmp_path / 'd' / 'clickhouse'}"
    token = s.resolved_api_token()
    assert len(token) >= 24 and s.resolved_api_token() == token
    assert (tmp_path / "d" / "api_token").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("FLEETPILOT_API_TOKEN", "sekrit")
    assert load_settings().resolved_api_token() == "sekrit"
