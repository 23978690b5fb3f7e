"""Rendered schema: conventions on one node, and the cluster variant (rendered SQL only; no cluster here)."""

from __future__ import annotations

import re

import pytest

from controlplane.store.schema import (
    EVENT_TABLES,
    ROLLUP_TABLES,
    Layout,
    migrations_table_ddl,
    render_migrations,
    ttl_alters,
)


def _all(lay: Layout) -> list[str]:
    return [s for m in render_migrations(lay) for s in m.statements]


def test_versions_are_increasing_and_named():
    migs = render_migrations(Layout())
    versions = [m.version for m in migs]
    assert versions == sorted(set(versions)) and versions[0] == 1
    assert all(m.name and m.statements for m in migs)


def test_every_create_is_idempotent():
    for stmt in _all(Layout()) + _all(Layout(cluster="c1")):
        assert re.match(r"CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS ", stmt), stmt[:80]


def test_samples_follow_the_conventions():
    ddl = _all(Layout(raw_ttl_days=3))[0]
    assert "ts DateTime64(3, 'UTC') CODEC(DoubleDelta" in ddl
    assert "value Float64 CODEC(Gorilla" in ddl
    for col in ("target", "zone", "region", "model", "metric", "kind"):
        assert f"{col} LowCardinality(String)" in ddl
    assert "PARTITION BY toDate(ts)" in ddl
    assert "ORDER BY (metric," in ddl
    assert "INTERVAL 3 DAY" in ddl
    assert "non_replicated_deduplication_window" in ddl


@pytest.mark.parametrize("table", ROLLUP_TABLES)
def test_rollups_are_aggregating_with_longer_ttl_and_a_dedup_window(table):
    stmts = _all(Layout(raw_ttl_days=7, rollup_ttl_days=90))
    ddl = next(s for s in stmts if s.startswith(f"CREATE TABLE IF NOT EXISTS {table} "))
    assert "ENGINE = AggregatingMergeTree()" in ddl
    assert "INTERVAL 90 DAY" in ddl
    # Without its own window a view target is fed twice by a replayed batch.
    assert "non_replicated_deduplication_window" in ddl
    assert any(
        s.startswith(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv") and f"TO {table} " in s
        for s in stmts
    )


def test_control_plane_tables_exist():
    stmts = _all(Layout())
    for table in EVENT_TABLES:
        assert any(s.startswith(f"CREATE TABLE IF NOT EXISTS {table} ") for s in stmts), table
    decisions = next(s for s in stmts if "EXISTS decisions " in s)
    assert "reason_codes Array(LowCardinality(String))" in decisions and "inputs String" in decisions
    assert "outcome LowCardinality(String)" in next(s for s in stmts if "EXISTS actions " in s)


def test_single_node_has_no_cluster_spelling():
    text = "\n".join(_all(Layout()) + [migrations_table_ddl(Layout())])
    assert (
        "ON CLUSTER" not in text
        and "Replicated" not in text
        and "Distributed" not in text
        and "_local" not in text
    )


def test_cluster_rendering():
    lay = Layout(database="fp", cluster="prod")
    stmts = _all(lay)
    for s in stmts:
        assert " ON CLUSTER 'prod'" in s.split("\n", 1)[0], s[:80]
    samples = stmts[0]
    assert samples.startswith("CREATE TABLE IF NOT EXISTS samples_local ON CLUSTER 'prod'")
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/fp/samples_local', '{replica}')" in samples
    assert "replicated_deduplication_window" in samples and "non_replicated" not in samples
    dist = [s for s in stmts if "ENGINE = Distributed" in s]
    names = {re.match(r"CREATE TABLE IF NOT EXISTS (\w+) ", s).group(1) for s in dist}
    assert names == {"samples", *ROLLUP_TABLES, *EVENT_TABLES}
    assert any(
        "AS samples_local ENGINE = Distributed('prod', 'fp', 'samples_local', cityHash64(target))" in s
        for s in dist
    )
    rollup = next(s for s in stmts if "EXISTS fleet_1m_local " in s)
    assert (
        "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/fp/fleet_1m_local', '{replica}')"
        in rollup
    )
    spec = next(s for s in stmts if "EXISTS replica_spec_local " in s)
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fp/replica_spec_local', '{replica}', ts)"
        in spec
    )
    mv = next(s for s in stmts if s.startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS samples_1m_mv"))
    assert "TO samples_1m_local AS" in mv and "FROM samples_local AS s" in mv
    # One migrations history for the whole cluster, not one per shard.
    assert "/clickhouse/tables/all/fp/schema_migrations" in migrations_table_ddl(lay)


def test_ttl_alters_target_local_tables():
    alters = ttl_alters(Layout(cluster="c", raw_ttl_days=2, rollup_ttl_days=30))
    assert (
        alters["samples"]
        == "ALTER TABLE samples_local ON CLUSTER 'c' MODIFY TTL toDateTime(ts) + INTERVAL 2 DAY"
    )
    assert alters["fleet_1h"].endswith("INTERVAL 30 DAY")
