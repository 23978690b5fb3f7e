"""Pure parts of the API: the read-only SQL guard, override folding, SLO and cost arithmetic."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from controlplane.api.overrides import (
    EffectiveOverride,
    Override,
    OverrideRequest,
    active_overrides,
    effective_overrides,
    override_for,
)
from controlplane.api.query import Limits, QueryRefused, check_read_only, limits_clause
from controlplane.api.slo import burn_rate, cost_summary, within_slo_ratio

# ---- read-only guard ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("CREATE TABLE t (a Int8) ENGINE = Memory", "not_read_only"),
        ("DROP TABLE samples", "not_read_only"),
        ("ALTER TABLE samples DELETE WHERE 1", "not_read_only"),
        ("INSERT INTO samples SELECT * FROM samples", "not_read_only"),
        ("TRUNCATE TABLE samples", "not_read_only"),
        ("OPTIMIZE TABLE samples FINAL", "not_read_only"),
        ("SYSTEM STOP MERGES", "not_read_only"),
        ("KILL QUERY WHERE 1", "not_read_only"),
        ("SET readonly = 0", "not_read_only"),
        ("GRANT ALL ON *.* TO x", "not_read_only"),
        ("SELECT 1; DROP TABLE samples", "multiple_statements"),
        ("SELECT 1;DROP TABLE samples;", "multiple_statements"),
        # A comment that hides the start of a statement: the comment goes, DROP stays.
        ("/* SELECT */ DROP TABLE samples", "not_read_only"),
        ("-- SELECT\nDROP TABLE samples", "not_read_only"),
        # `--` inside a string does not start a comment, so the ';' after it is seen.
        ("SELECT '--'; DROP TABLE samples", "multiple_statements"),
        ("SELECT 'it''s'; DROP TABLE samples", "multiple_statements"),
        ("SELECT 1 SETTINGS readonly = 0", "settings"),
        ("SELECT * FROM (SELECT 1 SETTINGS max_result_rows = 0)", "settings"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "outfile"),
        ("SELECT 1 FORMAT JSON", "format"),
        ("SELECT 'unterminated", "syntax"),
        ("SELECT 1 /* unterminated", "syntax"),
        ("SELECT $$;DROP TABLE samples$$", "syntax"),
        ("", "empty"),
        ("  -- only a comment", "empty"),
        ("1 SELECT", "not_read_only"),
    ],
)
def test_guard_refuses(sql, reason):
    with pytest.raises(QueryRefused) as err:
        check_read_only(sql)
    assert err.value.reason == reason, str(err.value)
    assert str(err.value)  # a message for the user


def test_guard_messages_are_clear():
    with pytest.raises(QueryRefused, match="only one SELECT/WITH/SHOW/DESCRIBE/EXPLAIN statement is allowed"):
        check_read_only("SELECT 1; DROP TABLE samples")
    with pytest.raises(QueryRefused, match="DROP is not allowed"):
        check_read_only("DROP TABLE samples")


@pytest.mark.parametrize(
    ("sql", "sent"),
    [
        ("SELECT 1", "SELECT 1"),
        ("select 1;", "select 1"),
        ("  SELECT 1 ;  ", "SELECT 1"),
        ("SELECT 1 -- trailing comment", "SELECT 1"),
        ("SELECT 1 /* ; DROP TABLE samples */ + 1", "SELECT 1   + 1"),
        ("SELECT ';' AS semi, '--' AS dashes", "SELECT ';' AS semi, '--' AS dashes"),
        ("WITH x AS (SELECT 1 AS a) SELECT a FROM x", "WITH x AS (SELECT 1 AS a) SELECT a FROM x"),
        ("(SELECT 1) UNION ALL (SELECT 2)", "(SELECT 1) UNION ALL (SELECT 2)"),
        ("SHOW TABLES", "SHOW TABLES"),
        ("DESCRIBE TABLE samples", "DESCRIBE TABLE samples"),
        ("EXPLAIN SELECT 1", "EXPLAIN SELECT 1"),
        (
            "SELECT format('{}', 1), formatDateTime(now(), '%F')",
            "SELECT format('{}', 1), formatDateTime(now(), '%F')",
        ),
        ('SELECT "settings" FROM t', 'SELECT "settings" FROM t'),
        # \' is an escaped quote (as in ClickHouse): all of it is one string, one statement.
        ("SELECT 'a\\'; DROP TABLE samples --'", "SELECT 'a\\'; DROP TABLE samples --'"),
    ],
)
def test_guard_admits_reads_and_sends_what_it_checked(sql, sent):
    assert check_read_only(sql) == sent


def test_limits_clause_sets_readonly_last():
    clause = limits_clause(Limits(max_rows=100, max_execution_s=2.5, max_result_bytes=4096))
    assert clause.startswith("\nSETTINGS ")
    assert "max_execution_time = 2.5" in clause and "max_result_rows = 101" in clause
    assert "result_overflow_mode = 'break'" in clause
    assert clause.rstrip().endswith("readonly = 1")


# ---- overrides --------------------------------------------------------------------------------


def ov(i, model, action, ts, *, replicas=None, mode=None, expires=None):
    return Override(f"o{i}", ts, model, action, replicas, mode, "why", expires)


def test_effective_overrides_fold_in_time_order():
    rows = [
        ov(1, "a", "pause", 10),
        ov(2, "a", "pin", 20, replicas=4),
        ov(3, "b", "mode", 30, mode="advisory"),
        ov(4, "a", "resume", 40),
    ]
    eff = effective_overrides(rows, now_s=100)
    assert eff["a"] == EffectiveOverride(paused=False, pinned_replicas=4, mode=None)
    assert eff["b"] == EffectiveOverride(mode="advisory")
    assert override_for(eff, "zzz") == EffectiveOverride()
    # The fold follows ts, not the order rows come in.
    assert effective_overrides(list(reversed(rows)), now_s=100) == eff
    assert effective_overrides(rows[:3], now_s=100)["a"].paused


def test_expired_overrides_stop_applying():
    rows = [ov(1, "a", "pause", 10, expires=70), ov(2, "a", "pin", 20, replicas=2, expires=200)]
    assert effective_overrides(rows, 60)["a"] == EffectiveOverride(paused=True, pinned_replicas=2)
    assert effective_overrides(rows, 70)["a"] == EffectiveOverride(paused=False, pinned_replicas=2)
    assert effective_overrides(rows, 200) == {}


def test_all_models_rows_combine_with_a_models_own_in_time_order():
    rows = [ov(1, "*", "pause", 10), ov(2, "a", "resume", 20), ov(3, "*", "mode", 30, mode="off")]
    eff = effective_overrides(rows, 100)
    assert override_for(eff, "a") == EffectiveOverride(paused=False, mode="off")
    assert override_for(eff, "b") == EffectiveOverride(paused=True, mode="off")
    # A later `pause *` pauses a again.
    eff = effective_overrides([*rows, ov(4, "*", "pause", 40)], 100)
    assert override_for(eff, "a").paused


def test_active_overrides_lists_what_currently_sets_something():
    rows = [
        ov(1, "a", "pause", 10),
        ov(2, "a", "resume", 20),
        ov(3, "a", "pin", 30, replicas=3),
        ov(4, "b", "pause", 40, expires=50),
        ov(5, "b", "mode", 45, mode="advisory"),
    ]
    assert [o.override_id for o in active_overrides(rows, 100)] == ["o3", "o5"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "a", "action": "pin", "reason": "r"}, "replicas"),
        ({"model": "a", "action": "pause", "replicas": 2, "reason": "r"}, "replicas"),
        ({"model": "a", "action": "mode", "reason": "r"}, "mode"),
        ({"model": "a", "action": "mode", "mode": "turbo", "reason": "r"}, "mode"),
        ({"model": "a", "action": "explode", "reason": "r"}, "action"),
        ({"model": "a b", "action": "pause", "reason": "r"}, "model"),
        ({"model": "a", "action": "pause", "reason": ""}, "reason"),
        ({"model": "a", "action": "pause", "reason": "r", "ttl_s": -1}, "ttl_s"),
        ({"model": "a", "action": "pin", "replicas": 0, "reason": "r"}, "replicas"),
    ],
)
def test_override_request_validation_names_the_field(body, field):
    with pytest.raises(ValidationError) as err:
        OverrideRequest(**body)
    assert field in str(err.value)


def test_override_row_round_trip():
    req = OverrideRequest(model="chat-lm", action="pin", replicas=3, reason="launch", ttl_s=60)
    o = Override.from_request(req, now_s=1000.0)
    assert o.expires_at_s == 1060.0 and o.replicas == 3 and o.source == "api"
    back = Override.from_row(o.as_row())
    assert back == o
    j = o.as_json()
    assert j["ts"] == "1970-01-01T00:16:40.000Z" and j["expires_at"] == "1970-01-01T00:17:40.000Z"


# ---- SLO and cost -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("buckets", "slo_ms", "requests", "within"),
    [
        ([(10, 50), (50, 98), (100, 99.5), (math.inf, 100)], 50, 100, 0.98),  # on a bound
        ([(10, 50), (50, 98), (100, 99.5), (math.inf, 100)], 75, 100, 0.9875),  # interpolated
        ([(10, 50), (50, 98), (math.inf, 100)], 5, 100, 0.25),  # under the first bound
        ([(10, 50), (50, 98), (math.inf, 100)], 500, 100, 0.98),  # past the last finite bound
        ([(10, 0), (math.inf, 0)], 50, 0, None),  # no requests
        ([], 50, 0, None),
    ],
)
def test_within_slo_ratio(buckets, slo_ms, requests, within):
    got_requests, got_within = within_slo_ratio(buckets, slo_ms)
    assert got_requests == requests
    assert got_within == (None if within is None else pytest.approx(within))


def test_burn_rate():
    assert burn_rate(0.98, 0.99) == pytest.approx(2.0)
    assert burn_rate(1.0, 0.99) == 0.0
    assert burn_rate(None, 0.99) is None


def test_cost_summary_prices_gpu_hours_or_replica_hours():
    measured = cost_summary(
        window_s=7200, replica_hours=6, gpu_hours_observed=12, gpus_per_replica=1,
        price_per_gpu_hour=2.0, inferences=48_000, energy_j=96_000.0,
    )  # fmt: skip
    assert measured["gpu_hours"] == 12 and measured["cost"] == 24.0 and measured["cost_per_hour"] == 12.0
    assert measured["cost_per_1k_inferences"] == pytest.approx(0.5)
    assert measured["energy_j_per_1k_inferences"] == pytest.approx(2000.0)
    cpu = cost_summary(
        window_s=3600, replica_hours=3, gpu_hours_observed=0, gpus_per_replica=2,
        price_per_gpu_hour=1.0, inferences=0, energy_j=None,
    )  # fmt: skip
    assert cpu["gpu_hours"] == 6 and cpu["cost"] == 6.0
    assert cpu["cost_per_1k_inferences"] is None and cpu["energy_j_per_1k_inferences"] is None


def test_token_models_fall_back_to_their_end_to_end_histogram_for_the_slo(monkeypatch):
    from controlplane.api import reads

    rows = [
        {"model": "chat-lm", "metric": "vllm:e2e_request_latency_seconds_bucket", "le_f": 0.5, "n": 8.0},
        {
            "model": "chat-lm",
            "metric": "vllm:e2e_request_latency_seconds_bucket",
            "le_f": float("inf"),
            "n": 10.0,
        },
        {"model": "cls", "metric": "vllm:e2e_request_latency_seconds_bucket", "le_f": 1.0, "n": 1.0},
        {"model": "cls", "metric": "nv_inference_first_response_histogram_ms_bucket", "le_f": 20.0, "n": 5.0},
    ]
    monkeypatch.setattr(reads, "query", lambda ctx, name, sql: rows)
    out = reads.latency_buckets(None, now_s=3600.0, since_s=600.0)
    assert out["chat-lm"] == [(500.0, 8.0), (float("inf"), 10.0)]  # seconds -> ms
    assert out["cls"] == [(20.0, 5.0)]  # Triton's own histogram wins when present
