"""Versioned schema migrations, rendered for one node or for a cluster.

Each migration is a list of idempotent statements (IF NOT EXISTS), applied in version order
and recorded in `schema_migrations`; a half-applied migration is simply re-run.

With `cluster` set the same migrations render `ON CLUSTER '<c>'`, Replicated engines on
`<table>_local`, and a `Distributed` table named `<table>` over them, so every query in the
code base (derived.py, the API) reads `<table>` in both layouts.
"""

from __future__ import annotations

from dataclasses import dataclass

# Tables that get a Distributed front in cluster mode, with their sharding key.
# Samples and rollups shard by target so a replica's series live together.
_SHARD_KEYS = {
    "samples": "cityHash64(target)",
    "samples_1m": "cityHash64(target)",
    "samples_1h": "cityHash64(target)",
    "fleet_1m": "rand()",
    "fleet_1h": "rand()",
    "anomaly_events": "rand()",
    "forecasts": "rand()",
    "decisions": "rand()",
    "actions": "rand()",
    "replica_spec": "cityHash64(replica)",
    "replica_status": "cityHash64(replica)",
    "capacity_curves": "rand()",
    "overrides": "rand()",
}
RAW_TABLES = ("samples",)
ROLLUP_TABLES = ("samples_1m", "samples_1h", "fleet_1m", "fleet_1h")
_V3_EVENT_TABLES = ("anomaly_events", "forecasts", "decisions", "actions", "replica_spec", "replica_status")
# Low-volume control-plane tables (row inserts, JSON inputs), whatever migration created them.
EVENT_TABLES = (*_V3_EVENT_TABLES, "capacity_curves", "overrides")


@dataclass(frozen=True)
class Layout:
    """How to spell names and engines: single node (cluster None) or a cluster."""

    database: str = "default"
    cluster: str | None = None
    raw_ttl_days: int = 14
    rollup_ttl_days: int = 400

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER '{self.cluster}'" if self.cluster else ""

    def local(self, table: str) -> str:
        """The table that holds data: `<t>_local` in a cluster, `<t>` otherwise."""
        return f"{table}_local" if self.cluster else table

    def engine(self, kind: str, table: str, args: str = "", shared: bool = False) -> str:
        """`MergeTree`-family engine; Replicated with a ZooKeeper path per shard in a cluster."""
        if not self.cluster:
            return f"{kind}({args})"
        shard = "all" if shared else "{shard}"
        path = f"'/clickhouse/tables/{shard}/{self.database}/{self.local(table)}', '{{replica}}'"
        return f"Replicated{kind}({path}{', ' + args if args else ''})"

    def dedup_setting(self) -> str:
        # Insert-token dedup needs a window; the replicated engines keep theirs in Keeper.
        return (
            "replicated_deduplication_window = 1000"
            if self.cluster
            else "non_replicated_deduplication_window = 1000"
        )

    def ttl(self, days: int, column: str = "ts") -> str:
        return f"TTL toDateTime({column}) + INTERVAL {int(days)} DAY"

    def distributed(self, table: str) -> list[str]:
        if not self.cluster:
            return []
        return [
            f"CREATE TABLE IF NOT EXISTS {table}{self.on_cluster} AS {self.local(table)} "
            f"ENGINE = Distributed('{self.cluster}', '{self.database}', '{self.local(table)}', {_SHARD_KEYS[table]})"
        ]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


# ---- 1: raw samples -------------------------------------------------------------------------


def _samples(lay: Layout) -> list[str]:
    t = lay.local("samples")
    return [
        f"""CREATE TABLE IF NOT EXISTS {t}{lay.on_cluster} (
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    target LowCardinality(String),
    zone LowCardinality(String),
    region LowCardinality(String),
    model LowCardinality(String),
    metric LowCardinality(String),
    labels Map(LowCardinality(String), String),
    kind LowCardinality(String),
    value Float64 CODEC(Gorilla, ZSTD(1)),
    series_id UInt64,
    -- reset-safe increase since the previous sample of the series (0 for gauges), set at insert
    delta Float64 CODEC(Gorilla, ZSTD(1))
) ENGINE = {lay.engine("MergeTree", "samples")}
PARTITION BY toDate(ts)
ORDER BY (metric, model, target, series_id, ts)
{lay.ttl(lay.raw_ttl_days)}
SETTINGS {lay.dedup_setting()}""",
        *lay.distributed("samples"),
    ]


# ---- 2: rollups -----------------------------------------------------------------------------
# samples_1m / samples_1h: one row per series and bucket (per-target drill-down).
# fleet_1m / fleet_1h: summed across all targets per (metric, model, le, reason), so a fleet-wide
# panel reads a few rows per minute whatever the number of replicas (zone/region breakdowns read
# the per-series tables: keeping zones here made the 7-day p99 panel 8x larger and over 1 s).
# The per-series views are plain projections, one rollup row per raw sample, with no GROUP BY:
# a batch holds about one scrape per series (5 s scrapes, 5 s flushes), so grouping reduced
# nothing, yet the two grouped views cost 6-9 s per 1M samples on insert here, the projections
# ~0.7 s together. Every rollup column is a SimpleAggregateFunction, so background merges
# collapse rows of the same key, and readers, which always aggregate, are exact before and
# after merges. The fleet views do reduce (thousands of rows to a few), so they group.
# MV targets need their own dedup window: otherwise a replayed batch is dropped from samples
# but still fed to the views (seen on chDB 26.9; deduplicate_blocks_in_dependent_materialized_views
# only acts on targets that keep a window).

_STATE_COLS = """    min_value SimpleAggregateFunction(min, Float64),
    max_value SimpleAggregateFunction(max, Float64),
    sum_value SimpleAggregateFunction(sum, Float64),
    count SimpleAggregateFunction(sum, UInt64),
    increase SimpleAggregateFunction(sum, Float64)"""


def _series_rollup(lay: Layout, table: str, partition: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {lay.local(table)}{lay.on_cluster} (
    ts DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    metric LowCardinality(String),
    model LowCardinality(String),
    target LowCardinality(String),
    series_id UInt64,
    -- functionally dependent on series_id: `any` keeps them through merges
    zone SimpleAggregateFunction(any, LowCardinality(String)),
    region SimpleAggregateFunction(any, LowCardinality(String)),
    kind SimpleAggregateFunction(any, LowCardinality(String)),
    -- the two labels derived series group by; the full label map stays in raw samples (keeping
    -- it here tripled the cost of this view on insert)
    le SimpleAggregateFunction(any, LowCardinality(String)),
    reason SimpleAggregateFunction(any, LowCardinality(String)),
{_STATE_COLS},
    -- (ts, value): tuples compare by ts first, so min is the first sample and max the last;
    -- read the value as `min(first_value).2` / `max(last_value).2`
    first_value SimpleAggregateFunction(min, Tuple(DateTime64(3, 'UTC'), Float64)),
    last_value SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), Float64))
) ENGINE = {lay.engine("AggregatingMergeTree", table)}
PARTITION BY {partition}
ORDER BY (metric, model, target, series_id, ts)
{lay.ttl(lay.rollup_ttl_days)}
SETTINGS {lay.dedup_setting()}"""


def _fleet_rollup(lay: Layout, table: str, partition: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {lay.local(table)}{lay.on_cluster} (
    ts DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    metric LowCardinality(String),
    model LowCardinality(String),
    le LowCardinality(String),
    reason LowCardinality(String),
{_STATE_COLS}
) ENGINE = {lay.engine("AggregatingMergeTree", table)}
PARTITION BY {partition}
ORDER BY (metric, model, le, reason, ts)
{lay.ttl(lay.rollup_ttl_days)}
SETTINGS {lay.dedup_setting()}"""


def _rollups(lay: Layout) -> list[str]:
    src = lay.local("samples")
    oc = lay.on_cluster
    out = [
        # Daily partitions for minute data; hourly rows are small, so monthly partitions.
        _series_rollup(lay, "samples_1m", "toDate(ts)"),
        _series_rollup(lay, "samples_1h", "toStartOfMonth(ts)"),
        _fleet_rollup(lay, "fleet_1m", "toDate(ts)"),
        _fleet_rollup(lay, "fleet_1h", "toStartOfMonth(ts)"),
        # Raw -> 1m per series.
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS samples_1m_mv{oc} TO {lay.local("samples_1m")} AS
SELECT toStartOfMinute(s.ts) AS ts, s.metric AS metric, s.model AS model, s.target AS target,
    s.series_id AS series_id, s.zone AS zone, s.region AS region, s.kind AS kind,
    s.labels['le'] AS le, s.labels['reason'] AS reason, s.value AS min_value, s.value AS max_value,
    s.value AS sum_value, toUInt64(1) AS count, s.delta AS increase,
    tuple(s.ts, s.value) AS first_value, tuple(s.ts, s.value) AS last_value
FROM {src} AS s""",
        # 1m block -> 1h (chained: no map lookups again; as cheap as a projection of raw).
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS samples_1h_mv{oc} TO {lay.local("samples_1h")} AS
SELECT toStartOfHour(m.ts) AS ts, m.metric AS metric, m.model AS model, m.target AS target,
    m.series_id AS series_id, m.zone AS zone, m.region AS region, m.kind AS kind, m.le AS le,
    m.reason AS reason, m.min_value AS min_value, m.max_value AS max_value, m.sum_value AS sum_value,
    m.count AS count, m.increase AS increase, m.first_value AS first_value, m.last_value AS last_value
FROM {lay.local("samples_1m")} AS m""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS fleet_1m_mv{oc} TO {lay.local("fleet_1m")} AS
SELECT toStartOfMinute(s.ts) AS ts, s.metric AS metric, s.model AS model,
    s.labels['le'] AS le, s.labels['reason'] AS reason,
    min(s.value) AS min_value, max(s.value) AS max_value, sum(s.value) AS sum_value,
    count() AS count, sum(s.delta) AS increase
FROM {src} AS s
GROUP BY ts, metric, model, le, reason""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS fleet_1h_mv{oc} TO {lay.local("fleet_1h")} AS
SELECT toStartOfHour(m.ts) AS ts, m.metric AS metric, m.model AS model, m.le AS le, m.reason AS reason,
    min(m.min_value) AS min_value, max(m.max_value) AS max_value, sum(m.sum_value) AS sum_value,
    sum(m.count) AS count, sum(m.increase) AS increase
FROM {lay.local("fleet_1m")} AS m
GROUP BY ts, metric, model, le, reason""",
    ]
    for t in ROLLUP_TABLES:
        out += lay.distributed(t)
    return out


# ---- 3: control-plane tables (filled by later issues) ----------------------------------------


def _events(lay: Layout) -> list[str]:
    oc = lay.on_cluster
    ttl = lay.ttl(lay.rollup_ttl_days)
    out = [
        f"""CREATE TABLE IF NOT EXISTS {lay.local("anomaly_events")}{oc} (
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    event_id String,
    detector LowCardinality(String),
    model LowCardinality(String),
    replica LowCardinality(String),
    zone LowCardinality(String),
    metric LowCardinality(String),
    severity LowCardinality(String),
    score Float64,
    threshold Float64,
    observed_value Float64,
    expected_value Float64,
    reason_codes Array(LowCardinality(String)),
    inputs String,  -- JSON: the window and parameters the detector saw
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC')
) ENGINE = {lay.engine("MergeTree", "anomaly_events")}
PARTITION BY toDate(ts)
ORDER BY (model, replica, ts)
{ttl}""",
        f"""CREATE TABLE IF NOT EXISTS {lay.local("forecasts")}{oc} (
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),  -- when the forecast was made
    forecaster LowCardinality(String),
    model LowCardinality(String),
    metric LowCardinality(String),
    target_ts DateTime64(3, 'UTC'),  -- the time the value is forecast for
    horizon_s UInt32,
    value Float64 CODEC(Gorilla, ZSTD(1)),
    lower Float64,
    upper Float64,
    inputs String
) ENGINE = {lay.engine("MergeTree", "forecasts")}
PARTITION BY toDate(ts)
ORDER BY (metric, model, target_ts, ts)
{ttl}""",
        f"""CREATE TABLE IF NOT EXISTS {lay.local("decisions")}{oc} (
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    decision_id String,
    policy LowCardinality(String),
    mode LowCardinality(String),  -- active | advisory | off
    model LowCardinality(String),
    replica LowCardinality(String),
    action LowCardinality(String),  -- e.g. scale_up, drain, set_instances, none
    params String,  -- JSON arguments of the action
    reason_codes Array(LowCardinality(String)),
    inputs String,  -- JSON: the signals the decision was made from
    confidence_ratio Float64
) ENGINE = {lay.engine("MergeTree", "decisions")}
PARTITION BY toDate(ts)
ORDER BY (model, ts)
{ttl}""",
        f"""CREATE TABLE IF NOT EXISTS {lay.local("actions")}{oc} (
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    action_id String,
    decision_id String,
    actuator LowCardinality(String),
    action LowCardinality(String),
    mode LowCardinality(String),
    model LowCardinality(String),
    replica LowCardinality(String),
    params String,
    outcome LowCardinality(String),  -- ok | failed | skipped | rolled_back
    error String,
    duration_ms Float64
) ENGINE = {lay.engine("MergeTree", "actions")}
PARTITION BY toDate(ts)
ORDER BY (model, ts)
{ttl}""",
        # Desired state: the newest row per (replica, model) wins.
        f"""CREATE TABLE IF NOT EXISTS {lay.local("replica_spec")}{oc} (
    ts DateTime64(3, 'UTC'),
    replica LowCardinality(String),
    model LowCardinality(String),
    zone LowCardinality(String),
    region LowCardinality(String),
    desired_state LowCardinality(String),  -- running | drained | removed
    instance_count UInt16,
    weight Float64,
    source LowCardinality(String),  -- cli | policy | api
    decision_id String
) ENGINE = {lay.engine("ReplacingMergeTree", "replica_spec", "ts")}
ORDER BY (replica, model)""",
        # Observed state history, compared against replica_spec.
        f"""CREATE TABLE IF NOT EXISTS {lay.local("replica_status")}{oc} (
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    replica LowCardinality(String),
    model LowCardinality(String),
    zone LowCardinality(String),
    region LowCardinality(String),
    state LowCardinality(String),  -- starting | ready | unhealthy | stopped
    ready UInt8,
    instance_count UInt16,
    pid UInt32,
    detail String
) ENGINE = {lay.engine("MergeTree", "replica_status")}
PARTITION BY toDate(ts)
ORDER BY (replica, model, ts)
{ttl}""",
    ]
    for t in _V3_EVENT_TABLES:
        out += lay.distributed(t)
    return out


# ---- 4: capacity curves (controlplane/capacity) ----------------------------------------------
# One row per profiling sweep (or telemetry fit): the measured points and the fitted curve as
# JSON (a few dozen points; read whole), and the capacity at the SLO as columns to filter on.


def _capacity_curves(lay: Layout) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {lay.local("capacity_curves")}{lay.on_cluster} (
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),  -- when the sweep ended
    curve_id String,
    source LowCardinality(String),  -- profile | telemetry
    model LowCardinality(String),
    replica LowCardinality(String),  -- the replica's URL or name
    replica_kind LowCardinality(String),  -- device and instance count, e.g. cpu-x1
    device LowCardinality(String),  -- cpu | gpu
    instance_count UInt16,
    slo_metric LowCardinality(String),  -- p99_ms, or ttft_p99_ms+itl_p99_ms for chat-lm
    slo_ms Float64,  -- p99 (or TTFT p99) bound
    slo_itl_ms Float64,  -- inter-token p99 bound (chat-lm; 0 otherwise)
    capacity_rps Float64,  -- highest load whose fitted latency meets the SLO
    lower_bound UInt8,  -- 1: the SLO held at every load tried, the real capacity is higher
    reason LowCardinality(String),
    points String,  -- JSON: measured points and fitted latency per point
    inputs String  -- JSON: sweep parameters (step length, rates, host)
) ENGINE = {lay.engine("MergeTree", "capacity_curves")}
PARTITION BY toStartOfMonth(ts)
ORDER BY (model, replica_kind, ts)
{lay.ttl(lay.rollup_ttl_days)}""",
        *lay.distributed("capacity_curves"),
    ]


# ---- 5: operator overrides (controlplane/api/overrides.py) ------------------------------------
# One row per POST /v1/overrides (pause, resume, pin, unpin, mode), never updated: the effective
# state is folded from the rows in ts order. No TTL: an override without expiry must not vanish.


def _overrides(lay: Layout) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {lay.local("overrides")}{lay.on_cluster} (
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    override_id String,
    model LowCardinality(String),  -- a model name, or * for all models
    action LowCardinality(String),  -- pause | resume | pin | unpin | mode
    replicas Nullable(UInt32),  -- pin only
    mode LowCardinality(String),  -- mode only: active | advisory | off ('' otherwise)
    reason String,
    expires_at Nullable(DateTime64(3, 'UTC')),  -- NULL: until changed
    source LowCardinality(String)  -- api | cli | loop
) ENGINE = {lay.engine("MergeTree", "overrides")}
ORDER BY (model, ts)""",
        *lay.distributed("overrides"),
    ]


MIGRATIONS_TABLE = "schema_migrations"


def migrations_table_ddl(lay: Layout) -> str:
    # One Keeper path for the whole cluster (not per shard): every node sees the same history.
    return f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}{lay.on_cluster} (
    version UInt32,
    name String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = {lay.engine("ReplacingMergeTree", MIGRATIONS_TABLE, shared=True)}
ORDER BY version"""


def render_migrations(lay: Layout) -> list[Migration]:
    return [
        Migration(1, "raw_samples", tuple(_samples(lay))),
        Migration(2, "rollups_1m_1h", tuple(_rollups(lay))),
        Migration(3, "control_plane_tables", tuple(_events(lay))),
        Migration(4, "capacity_curves", tuple(_capacity_curves(lay))),
        Migration(5, "overrides", tuple(_overrides(lay))),
    ]


def ttl_alters(lay: Layout) -> dict[str, str]:
    """`ALTER ... MODIFY TTL` per table, to apply a changed retention to an existing store."""
    days = {t: lay.raw_ttl_days for t in RAW_TABLES}
    days |= {t: lay.rollup_ttl_days for t in ROLLUP_TABLES}
    return {t: f"ALTER TABLE {lay.local(t)}{lay.on_cluster} MODIFY {lay.ttl(d)}" for t, d in days.items()}
