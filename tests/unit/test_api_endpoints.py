"""Every endpoint against the real embedded engine, seeded by tests/support/api_seed.py.

Values are checked against what was seeded (rates, ratios, incidents, overrides), over HTTP
to a real uvicorn server on a port in 18600-18649.
"""

from __future__ import annotations

import math
import threading

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from controlplane.api import ApiContext, create_app
from controlplane.api.query import Limits, QueryRefused, execute_read_only
from controlplane.api.slo import within_slo_ratio
from controlplane.api.tracing import make_api_tracer
from controlplane.config import Settings
from controlplane.store import Store
from controlplane.store.schema import Layout
from tests.support.api_seed import running_api

SLOS = {"classifier-small": 50.0, "chat-lm": 500.0}
SEEDED_MODELS = tuple(SLOS)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with running_api(
        tmp_path_factory.mktemp("api"),
        freeze_clock=True,
        control={"slo_p99_ms_by_model": SLOS, "mode": "active", "model_modes": {"chat-lm": "advisory"}},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def http(api):
    with httpx.Client(base_url=api.base_url, timeout=30) as c:
        yield c


def whole(rows):
    """Rows of whole minutes: the newest bucket (the current minute) is still filling."""
    last = max((r["ts"] for r in rows), default=None)
    return [r for r in rows if r["ts"] != last]


def test_healthz_and_status(http, api):
    assert http.get("/healthz").json() == {"ok": True}
    s = http.get("/v1/status").json()
    assert s["store"] == {"ok": True, "kind": "embedded"}
    assert s["controller"]["running"] is False and s["controller"]["role"] == "none"
    assert s["models"] == 2 and s["replicas"] == 3 and s["replicas_ready"] == 3
    assert s["open_incidents"] == 1
    assert [o["override_id"] for o in s["overrides"]] == ["ov-pin"]
    assert s["now"].endswith("Z")


def test_request_rate_equals_the_seed(http, api):
    seed = api.seed
    body = http.get("/v1/series/request_rate", params={"since_s": 900, "step_s": 60}).json()
    assert body["name"] == "request_rate"
    assert body["columns"] == ["ts", "model", "requests_per_s", "failures_per_s"]
    full = whole(body["rows"])
    assert len(full) >= 20
    for r in full:
        assert r["requests_per_s"] == pytest.approx(seed["rate_rps"][r["model"]])
        assert r["failures_per_s"] == pytest.approx(seed["failure_rps"][r["model"]])


def test_series_by_zone_and_replica_filter(http, api):
    per_rep = api.seed["rate_rps_per_replica"]["classifier-small"]
    body = http.get(
        "/v1/series/request_rate", params={"since_s": 600, "by": "zone,model", "model": "classifier-small"}
    ).json()
    assert body["columns"][:3] == ["ts", "zone", "model"]
    for r in whole(body["rows"]):
        want = per_rep * (2 if r["zone"] == "zone-a" else 1)  # zone-a holds replicas 0 and 2
        assert r["requests_per_s"] == pytest.approx(want)
    body = http.get("/v1/series/request_rate", params={"since_s": 600, "replica": "replica-1"}).json()
    cls = [r for r in whole(body["rows"]) if r["model"] == "classifier-small"]
    assert cls and all(r["requests_per_s"] == pytest.approx(per_rep) for r in cls)


def test_derived_series_values(http, api):
    seed = api.seed
    get = lambda name, **p: whole(raw(name, **p))  # noqa: E731
    raw = lambda name, **p: http.get(f"/v1/series/{name}", params={"since_s": 600, **p}).json()["rows"]  # noqa: E731
    for r in get("cache_hit_ratio"):
        assert r["cache_hit_ratio"] == pytest.approx(seed["cache_hit_ratio"]["classifier-small"])
    for r in get("batch_size"):
        assert r["avg_batch_size"] == pytest.approx(seed["batch_size"][r["model"]])
    for r in get("request_times"):
        assert r["avg_request_ms"] == pytest.approx(seed["request_ms"][r["model"]])
        assert r["avg_queue_ms"] == pytest.approx(seed["queue_ms"][r["model"]])
    for r in get("token_rate"):
        assert r["generation_tokens_per_s"] == pytest.approx(seed["generation_tokens_per_s"])
        assert r["prompt_tokens_per_s"] == pytest.approx(seed["prompt_tokens_per_s"])
    p99 = {r["model"]: r["p99_latency_ms"] for r in get("latency_p99")}
    # classifier-small: 98% <= 50 ms, 99.5% <= 100 ms -> p99 = 50 + 50 * (0.99 - 0.98) / 0.015
    assert p99["classifier-small"] == pytest.approx(50 + 50 * 0.01 / 0.015)
    assert get("ttft_p99")[0]["ttft_p99_s"] == pytest.approx(0.5 + 0.5 * (0.99 - 0.9) / 0.1)
    assert 0.05 < get("itl_p99")[0]["itl_p99_s"] <= 0.1
    gpu = {r["target"]: r for r in get("gpu", by="target")}
    assert {t: r["gpu_utilization_ratio"] for t, r in gpu.items()} == pytest.approx(seed["gpu_util"])
    assert gpu["replica-0"]["gpu_power_w"] == pytest.approx(seed["gpu_power_w"])
    energy = get("energy")
    # 3 GPUs at 250 W; inferences/s = executed requests of both models.
    inferences_per_s = 3 * (20 * 0.8 + 2)
    assert energy[0]["power_w"] == pytest.approx(750.0)
    assert energy[0]["energy_j_per_1k_inferences"] == pytest.approx(750.0 * 1000 / inferences_per_s)


@pytest.mark.parametrize(
    ("path", "params", "status", "needle"),
    [
        ("/v1/series/nope", {}, 404, "request_rate"),
        ("/v1/series/gpu", {"by": "model"}, 400, "no model label"),
        ("/v1/series/energy", {"model": "chat-lm"}, 400, "no model label"),
        ("/v1/series/request_rate", {"by": "pod"}, 400, "allowed"),
        ("/v1/series/request_rate", {"step_s": 0}, 422, "step_s"),
        ("/v1/series/request_rate", {"since_s": 86400 * 30, "step_s": 1}, 400, "buckets"),
        ("/v1/series/request_rate", {"since_s": -5}, 422, "since_s"),
        ("/v1/anomalies", {"state": "maybe"}, 422, "state"),
    ],
)
def test_series_bad_params(http, path, params, status, needle):
    r = http.get(path, params=params)
    assert r.status_code == status, r.text
    assert needle in r.text


def test_models_from_the_store(http, api):
    models = {m["model"]: m for m in http.get("/v1/models").json()["models"]}
    assert set(models) == {"classifier-small", "chat-lm"}
    cls, chat = models["classifier-small"], models["chat-lm"]
    assert cls["rate_rps"] == pytest.approx(60.0) and chat["rate_rps"] == pytest.approx(6.0)
    assert cls["p99_ms"] == pytest.approx(50 + 50 * 0.01 / 0.015)
    assert cls["slo_p99_ms"] == 50.0 and chat["slo_p99_ms"] == 500.0
    assert cls["mode"] == "active" and chat["mode"] == "advisory"  # from control.model_modes
    assert chat["pinned_replicas"] == 3 and cls["pinned_replicas"] is None
    assert cls["paused"] is False  # the seeded pause expired
    assert cls["observed_replicas"] == 3 and cls["ready_replicas"] == 3
    assert cls["desired_replicas"] == 3  # the newest replicas decision's final
    assert cls["capacity_rps"] == 35.0
    assert cls["forecast_p90_rps"] == pytest.approx(75.0) and chat["forecast_p90_rps"] == pytest.approx(7.5)
    assert chat["open_incidents"] == 1 and cls["open_incidents"] == 0
    assert cls["last_decision"]["reason_codes"] == ["hold", "within_tolerance"]
    assert cls["last_decision"]["params"]["final"] == 3


def test_replicas_spec_vs_observed(http):
    reps = {r["replica"]: r for r in http.get("/v1/replicas").json()["replicas"]}
    assert set(reps) == {"replica-0", "replica-1", "replica-2"}
    r1 = reps["replica-1"]
    assert r1["zone"] == "zone-b" and r1["region"] == "local"
    assert r1["models"] == ["chat-lm", "classifier-small"]
    assert r1["spec"] == {"desired_state": "running", "weight": 75.0, "instance_count": 1}
    assert r1["observed"]["state"] == "ready" and r1["observed"]["ready"] is True
    assert r1["observed"]["pid"] == 4001
    assert r1["open_incidents"] == 1 and reps["replica-0"]["open_incidents"] == 0


def test_decisions_and_actions(http):
    rows = http.get("/v1/decisions").json()["decisions"]
    assert len(rows) == 4
    assert [r["ts"] for r in rows] == sorted((r["ts"] for r in rows), reverse=True)  # newest first
    assert isinstance(rows[0]["params"], dict) and isinstance(rows[0]["inputs"], dict)
    only = http.get("/v1/decisions", params={"model": "classifier-small", "policy": "replicas"}).json()
    assert [r["reason_codes"] for r in only["decisions"]] == [
        ["hold", "within_tolerance"],
        ["scale_up", "latency_over_slo"],
    ]
    assert http.get("/v1/decisions", params={"limit": 1}).json()["decisions"][0]["policy"] == "routing"
    assert http.get("/v1/decisions", params={"since_s": 60}).json()["decisions"] == []
    acts = http.get("/v1/actions").json()["actions"]
    assert [(a["action_id"], a["outcome"]) for a in acts] == [("a-2", "failed"), ("a-1", "ok")]
    assert acts[1]["params"] == {"to": 3}
    assert http.get("/v1/actions", params={"model": "chat-lm"}).json()["actions"][0]["error"]


def test_anomalies_open_and_closed(http, api):
    body = http.get("/v1/anomalies").json()
    assert len(body["events"]) == 4
    assert [e["incident_id"] for e in body["open"]] == [api.seed["open_incident_id"]]
    newest = body["open"][0]
    assert newest["kind"] == "updated" and newest["severity"] == "critical"
    assert newest["inputs"]["peak_score"] == 0.95
    only_open = http.get("/v1/anomalies", params={"state": "open"}).json()["events"]
    assert {e["incident_id"] for e in only_open} == {api.seed["open_incident_id"]} and len(only_open) == 2
    assert http.get("/v1/anomalies", params={"replica": "replica-2"}).json()["open"] == []
    assert len(http.get("/v1/anomalies", params={"replica": "replica-2"}).json()["events"]) == 2


def test_forecasts(http):
    rows = http.get("/v1/forecasts", params={"model": "chat-lm"}).json()["forecasts"]
    assert len(rows) == 20 and all(r["model"] == "chat-lm" for r in rows)
    assert rows == sorted(rows, key=lambda r: (r["ts"], r["target_ts"]))
    assert rows[0]["upper"] == pytest.approx(7.5) and rows[0]["metric"] == "request_rate_rps"
    assert len(http.get("/v1/forecasts", params={"limit": 5}).json()["forecasts"]) == 5


def test_slo_from_latency_buckets(http, api):
    body = http.get("/v1/slo", params={"since_s": 1200}).json()
    assert body["objective_ratio"] == 0.99
    by = {m["model"]: m for m in body["models"]}
    # classifier-small: 98% of requests within 50 ms -> burn (1 - 0.98) / (1 - 0.99) = 2.
    assert by["classifier-small"]["within_slo_ratio"] == pytest.approx(0.98)
    assert by["classifier-small"]["burn_rate"] == pytest.approx(2.0)
    assert by["chat-lm"]["within_slo_ratio"] == pytest.approx(0.9)
    assert by["chat-lm"]["burn_rate"] == pytest.approx(10.0)
    # About 20 minutes of 60 req/s (whole minutes around the window edges).
    assert 60 * 60 * 19 <= by["classifier-small"]["requests"] <= 60 * 60 * 21
    cdf = [(le, share * 100) for le, share in api.seed["latency_cdf"]["chat-lm"]] + [(math.inf, 100)]
    assert within_slo_ratio(cdf, 500)[1] == pytest.approx(by["chat-lm"]["within_slo_ratio"])


def test_cost(http, api):
    body = http.get("/v1/cost", params={"since_s": 600}).json()
    # 3 replicas, each with one GPU, seen in 10 or 11 whole minutes of the window.
    assert 3 * 10 / 60 <= body["gpu_hours"] <= 3 * 11 / 60
    assert body["gpu_hours"] == pytest.approx(body["replica_hours"])
    assert body["cost"] == pytest.approx(body["gpu_hours"] * 2.5)
    assert body["cost_per_hour"] == pytest.approx(body["cost"] / (600 / 3600))
    assert body["cost_per_1k_inferences"] == pytest.approx(body["cost"] * 1000 / body["inferences"])
    # Windows over two days count hours: the 30 seeded minutes touch one or two clock hours.
    long = http.get("/v1/cost", params={"since_s": 3 * 86400}).json()
    assert long["gpu_hours"] in (3.0, 6.0) and long["replica_hours"] == long["gpu_hours"]
    # Every increment of the seed: (scrapes - 1) per series, 3 replicas, 16 + 2 executed per second.
    increments = (api.seed["end_s"] - api.seed["start_s"]) // 10
    assert long["inferences"] == pytest.approx(increments * 3 * (20 * 0.8 + 2) * 10)
    per_minute_inferences = 60 * 3 * (20 * 0.8 + 2)
    assert body["energy_j_per_1k_inferences"] == pytest.approx(
        750 * 60 * 1000 / per_minute_inferences, rel=0.1
    )


# ---- overrides and auth -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 403), ({"Authorization": "Basic abc"}, 401)],
)
def test_post_overrides_needs_the_token(http, headers, status):
    r = http.post(
        "/v1/overrides", json={"model": "chat-lm", "action": "pause", "reason": "x"}, headers=headers
    )
    assert r.status_code == status and r.json()["detail"]


def test_post_override_without_a_configured_token_is_503(api, tmp_path):
    settings = api.ctx.settings.model_copy(update={"api_token": None, "data_dir": tmp_path})
    ctx = ApiContext(settings=settings, store=api.store, store_lock=api.ctx.store_lock)
    with TestClient(create_app(ctx)) as c:
        r = c.post("/v1/overrides", json={"model": "a", "action": "pause", "reason": "x"},
                   headers={"Authorization": "Bearer anything"})  # fmt: skip
    assert r.status_code == 503 and "FLEETPILOT_API_TOKEN" in r.json()["detail"]
    # A token generated into <data_dir>/api_token (what `fleetpilot up` does) counts as configured.
    (tmp_path / "api_token").write_text("generated-token\n")
    with TestClient(create_app(ctx)) as c:
        body = {"model": "a", "action": "pause", "reason": "x", "ttl_s": 1}
        assert (
            c.post("/v1/overrides", json=body, headers={"Authorization": "Bearer anything"}).status_code
            == 403
        )
        assert (
            c.post(
                "/v1/overrides", json=body, headers={"Authorization": "Bearer generated-token"}
            ).status_code
            == 200
        )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "classifier-small", "action": "pin", "reason": "r"}, "replicas"),
        ({"model": "classifier-small", "action": "mode", "mode": "fast", "reason": "r"}, "mode"),
        ({"model": "classifier-small", "action": "pause"}, "reason"),
        ({"model": "classifier-small", "action": "pause", "reason": "r", "ttl_s": 0}, "ttl_s"),
    ],
)
def test_post_override_validation(http, api, body, field):
    r = http.post("/v1/overrides", json=body, headers=api.headers)
    assert r.status_code == 422 and field in r.text


def test_post_overrides_change_models_and_overrides(http, api):
    h = api.headers
    r = http.post("/v1/overrides", headers=h,
                  json={"model": "classifier-small", "action": "pause", "reason": "test", "ttl_s": 3600})  # fmt: skip
    assert r.status_code == 200, r.text
    paused = r.json()["override"]
    assert paused["action"] == "pause" and paused["source"] == "api" and paused["expires_at"]
    r = http.post("/v1/overrides", headers=h,
                  json={"model": "classifier-small", "action": "mode", "mode": "off", "reason": "test"})  # fmt: skip
    assert r.status_code == 200
    models = {m["model"]: m for m in http.get("/v1/models").json()["models"]}
    assert models["classifier-small"]["paused"] is True and models["classifier-small"]["mode"] == "off"
    listed = [o for o in http.get("/v1/overrides").json()["overrides"] if o["model"] in SEEDED_MODELS]
    assert {(o["model"], o["action"]) for o in listed} == {
        ("chat-lm", "pin"), ("classifier-small", "pause"), ("classifier-small", "mode")
    }  # fmt: skip
    # resume + unpin clear; the mode stays until changed.
    http.post(
        "/v1/overrides", headers=h, json={"model": "classifier-small", "action": "resume", "reason": "done"}
    )
    http.post("/v1/overrides", headers=h, json={"model": "chat-lm", "action": "unpin", "reason": "done"})
    http.post("/v1/overrides", headers=h, json={"model": "classifier-small", "action": "mode", "mode": "active", "reason": "done"})  # fmt: skip
    models = {m["model"]: m for m in http.get("/v1/models").json()["models"]}
    assert models["classifier-small"]["paused"] is False and models["chat-lm"]["pinned_replicas"] is None
    listed = [o for o in http.get("/v1/overrides").json()["overrides"] if o["model"] in SEEDED_MODELS]
    assert {(o["model"], o["action"]) for o in listed} == {
        ("classifier-small", "mode")
    }  # fmt: skip


class FakeController:
    def __init__(self):
        self.seen = []

    def status(self):
        return {"running": True, "role": "leader", "tick_count": 7, "last_tick_at": 1e9, "interval_s": 2.0, "last_error": None}  # fmt: skip

    def models(self):
        return [{"model": "m", "rate_rps": float("nan")}]

    def replicas(self):
        return [{"replica": "r", "observed": {"ready": True}}]

    def on_override(self, ov):
        self.seen.append(ov)


def test_controller_view_answers_live_and_gets_overrides(api):
    ctl = FakeController()
    ctx = ApiContext(
        settings=api.ctx.settings, store=api.store, controller=ctl, store_lock=api.ctx.store_lock
    )
    with TestClient(create_app(ctx)) as c:
        s = c.get("/v1/status").json()
        assert s["controller"]["role"] == "leader" and s["models"] == 1 and s["replicas_ready"] == 1
        assert s["controller"]["last_tick_at"] == "2001-09-09T01:46:40.000Z"
        assert c.get("/v1/models").json() == {"models": [{"model": "m", "rate_rps": None}]}
        r = c.post("/v1/overrides", headers=api.headers, json={"model": "m", "action": "pin", "replicas": 2, "reason": "r"})  # fmt: skip
        assert r.status_code == 200
    assert [(o.model, o.replicas) for o in ctl.seen] == [("m", 2)]


# ---- read-only query ----------------------------------------------------------------------------


def count_samples(http):
    r = http.post("/v1/query", json={"sql": "SELECT count() AS n FROM samples"})
    assert r.status_code == 200, r.text
    return r.json()["rows"][0][0]


def test_query_returns_rows_and_types(http, api):
    r = http.post("/v1/query", json={"sql": "SELECT model, count() AS n FROM samples WHERE model != '' GROUP BY model ORDER BY model"})  # fmt: skip
    body = r.json()
    assert r.status_code == 200 and body["columns"] == ["model", "n"]
    assert body["types"] == ["LowCardinality(String)", "UInt64"]
    assert [row[0] for row in body["rows"]] == ["chat-lm", "classifier-small"]
    assert body["row_count"] == 2 and body["truncated"] is False and body["elapsed_ms"] >= 0
    assert count_samples(http) == api.seed["samples"]


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("DROP TABLE samples", "DROP is not allowed"),
        ("TRUNCATE TABLE samples", "TRUNCATE is not allowed"),
        ("ALTER TABLE samples DELETE WHERE 1", "ALTER is not allowed"),
        ("CREATE TABLE x (a Int8) ENGINE = Memory", "CREATE is not allowed"),
        ("INSERT INTO samples SELECT * FROM samples", "INSERT is not allowed"),
        ("OPTIMIZE TABLE samples FINAL", "OPTIMIZE is not allowed"),
        ("SYSTEM DROP MARK CACHE", "SYSTEM is not allowed"),
        ("KILL QUERY WHERE 1", "KILL is not allowed"),
        ("SET readonly = 0", "SET is not allowed"),
        ("SELECT 1; DROP TABLE samples", "only one SELECT/WITH/SHOW/DESCRIBE/EXPLAIN statement is allowed"),
        ("/* SELECT 1 */ DROP TABLE samples", "DROP is not allowed"),
        ("SELECT '--'; DROP TABLE samples", "only one"),
        ("SELECT 1 SETTINGS readonly = 0", "SETTINGS"),
        ("SELECT 1 INTO OUTFILE 'x.txt'", "OUTFILE"),
        ("SELECT * FROM file('/etc/hostname', 'LineAsString')", "read-only mode"),  # the engine's refusal
        ("SELECT nope FROM samples", "SQL error"),
    ],
)
def test_query_refusals_change_nothing(http, api, sql, needle):
    before = count_samples(http)
    r = http.post("/v1/query", json={"sql": sql})
    assert r.status_code == 400, r.text
    assert needle in r.json()["detail"]
    assert count_samples(http) == before
    tables = http.post("/v1/query", json={"sql": "SHOW TABLES"}).json()["rows"]
    assert ["samples"] in tables


def test_query_truncates_large_results(http, api):
    r = http.post("/v1/query", json={"sql": "SELECT number FROM system.numbers", "max_rows": 50})
    body = r.json()
    assert r.status_code == 200 and body["truncated"] is True and body["row_count"] == 50
    assert "truncated to 50 rows" in body["message"]
    exact = http.post("/v1/query", json={"sql": "SELECT number FROM numbers(50)", "max_rows": 50}).json()
    assert exact["truncated"] is False and exact["row_count"] == 50
    cap = api.ctx.settings.api.query_max_rows
    r = http.post("/v1/query", json={"sql": "SELECT 1", "max_rows": cap + 1})
    assert r.status_code == 400 and "query_max_rows" in r.json()["detail"]


def test_query_time_limit(api):
    settings = api.ctx.settings.model_copy(deep=True)
    settings.api.query_max_execution_s = 0.5
    ctx = ApiContext(settings=settings, store=api.store, store_lock=api.ctx.store_lock)
    with TestClient(create_app(ctx)) as c:
        r = c.post("/v1/query", json={"sql": "SELECT sum(number) FROM numbers(100000000000)"})
    assert r.status_code == 408 and "0.5 s limit" in r.json()["detail"]


def test_engine_read_only_setting_stops_writes_the_guard_would_miss(api):
    """Bypass the guard: the statement goes straight to execute_read_only, and the engine refuses."""
    limits = Limits(max_rows=10, max_execution_s=5, max_result_bytes=1 << 20)
    before = api.store.query("SELECT count() FROM samples").rows[0][0]
    for smuggled in (
        "INSERT INTO overrides (override_id, model, action) SELECT 'x', 'm', 'pause'",
        "INSERT INTO samples SELECT * FROM samples",
        "DROP TABLE samples",
        "CREATE TABLE evil (a Int8) ENGINE = Memory",
    ):
        with api.ctx.store_lock, pytest.raises(QueryRefused) as err:
            execute_read_only(api.store.client, smuggled, limits)
        assert err.value.reason == "engine_readonly", str(err.value)
    assert api.store.query("SELECT count() FROM samples").rows[0][0] == before
    assert api.store.query("SELECT count() FROM overrides WHERE override_id = 'x'").rows[0][0] == 0
    # ...and the session is not left read-only (settings are per query, not SET on the session).
    assert api.store.query("SELECT value FROM system.settings WHERE name = 'readonly'").rows[0][0] == "0"
    api.store.command("CREATE TABLE IF NOT EXISTS api_probe (a Int8) ENGINE = Memory")
    api.store.command("DROP TABLE api_probe")


# ---- store outage, metrics, spans ---------------------------------------------------------------


class DownClient:
    """A clickhouse-connect client whose server is gone (what the HTTP driver raises)."""

    def query(self, *a, **k):
        from clickhouse_connect.driver.exceptions import OperationalError

        raise OperationalError("Error HTTPConnectionPool(host='clickhouse', port=8123): Connection refused")

    command = query_df = insert = insert_arrow = query

    def close(self):
        pass


def test_store_unreachable_is_503_with_a_message():
    store = Store(DownClient(), "http://clickhouse:8123/fp", Layout())
    ctx = ApiContext(settings=Settings(api_token="t"), store=store)
    with TestClient(create_app(ctx)) as c:
        for path in ("/v1/models", "/v1/decisions", "/v1/series/request_rate", "/v1/slo", "/v1/overrides"):
            r = c.get(path)
            assert r.status_code == 503, (path, r.text)
            assert "store unavailable" in r.json()["detail"] and "Connection refused" in r.json()["detail"]
        r = c.post("/v1/query", json={"sql": "SELECT 1"})
        assert r.status_code == 503
        r = c.post("/v1/overrides", json={"model": "m", "action": "pause", "reason": "r"}, headers={"Authorization": "Bearer t"})  # fmt: skip
        assert r.status_code == 503
        s = c.get("/v1/status")
        assert s.status_code == 200 and s.json()["store"] == {"ok": False, "kind": "server"}
        assert c.get("/healthz").status_code == 200


def test_metrics_count_requests_and_refusals(http):
    http.get("/v1/decisions")
    http.post("/v1/query", json={"sql": "DROP TABLE samples"})
    text = http.get("/metrics").text
    assert 'fleetpilot_api_requests_total{method="GET",route="/v1/decisions",status="200"}' in text
    assert 'fleetpilot_api_query_refusals_total{reason="not_read_only"}' in text
    assert "fleetpilot_api_request_duration_seconds_bucket" in text


def test_spans_around_store_queries(api):
    exporter = InMemorySpanExporter()
    ctx = ApiContext(settings=api.ctx.settings, store=api.store, store_lock=api.ctx.store_lock,
                     tracer=make_api_tracer(exporter=exporter))  # fmt: skip
    with TestClient(create_app(ctx)) as c:
        c.get("/v1/decisions")
        c.post("/v1/query", json={"sql": "SELECT 1"})
    names = [s.name for s in exporter.get_finished_spans()]
    assert "store.decisions" in names and "store.user_query" in names
    span = next(s for s in exporter.get_finished_spans() if s.name == "store.decisions")
    assert "FROM decisions" in span.attributes["db.statement"] and span.attributes["db.rows"] == 4


def test_concurrent_requests_share_the_store(http):
    errors = []

    def hit():
        try:
            for _ in range(5):
                assert http.get("/v1/series/request_rate", params={"since_s": 300}).status_code == 200
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_closed_store_is_503_not_500():
    # What shutdown leaves behind: a Store whose client was closed while requests still arrive.
    closed = Store(None, "chdb:///closed", Layout())
    with TestClient(create_app(ApiContext(settings=Settings(api_token="t"), store=closed))) as c:
        r = c.get("/v1/decisions")
        assert r.status_code == 503 and "closed" in r.json()["detail"]
        assert c.post("/v1/query", json={"sql": "SELECT 1"}).status_code == 503
        assert c.get("/v1/status").json()["store"]["ok"] is False
