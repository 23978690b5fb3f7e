"""Typed configuration for every fleetpilot process.

Precedence (highest first): explicit arguments, environment (`FLEETPILOT_...`, nested keys
joined by `__`, e.g. `FLEETPILOT_ROUTER__PORT=7001`), the YAML file (`--config`,
`FLEETPILOT_CONFIG`, or `./fleetpilot.yaml` when present), then the defaults below.
Every field carries its unit in its name and a description; `fleetpilot.example.yaml`
documents them all and is parsed by a test.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

DEFAULT_MODELS = ["classifier-small", "classifier-large", "classifier-large-int8", "chat-lm"]
Port = Field(ge=1, le=65535)


class ConfigError(ValueError):
    """A configuration value was rejected; the message names key, value and allowed range."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FleetConfig(_Section):
    replicas_default: int = Field(
        3, ge=1, le=64, description="Replicas `fleet up` starts when --replicas is not given (count)."
    )
    zones: list[str] = Field(
        ["zone-a", "zone-b"],
        min_length=1,
        description="Zones replicas are spread over; a new replica goes to the emptiest (names).",
    )
    region: str = Field("local", min_length=1, description="Region label put on every local replica (name).")
    triton_base_port: int = Field(
        8100,
        ge=1024,
        le=65000,
        description="First port for Triton replicas; each replica takes 3 (http, grpc, metrics).",
    )
    tritonserver_path: Path | None = Field(
        None,
        description="Path to a tritonserver binary; empty means the one bundled in the nvidia-pytriton wheel.",
    )
    models: list[str] = Field(
        DEFAULT_MODELS,
        min_length=1,
        description="Models every replica loads (names from serving/model_repository).",
    )
    instance_count_default: int = Field(
        1, ge=1, le=32, description="Model instances per model per replica at start (count)."
    )
    device: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="Where models run: auto picks the GPU when CUDA is available."
    )
    response_cache_size_bytes: int = Field(
        16 * 1024 * 1024,
        ge=0,
        le=1 << 34,
        description="Triton local response cache size per replica (bytes).",
    )
    ready_timeout_s: float = Field(
        180.0, gt=0, le=3600, description="How long `fleet up` waits for a replica to become ready (seconds)."
    )
    stop_timeout_s: float = Field(
        15.0, gt=0, le=600, description="Grace period after SIGTERM before a replica is killed (seconds)."
    )
    chat_max_running_requests: int = Field(
        8,
        ge=1,
        le=256,
        description="chat-lm: sequences decoded together per instance (continuous batching slots).",
    )
    chat_kv_cache_tokens: int = Field(
        4096, ge=64, le=1 << 20, description="chat-lm: KV-cache capacity per instance (tokens)."
    )


class RouterConfig(_Section):
    port: int = Field(7000, ge=1, le=65535, description="Router HTTP port.")
    max_inflight_requests: int = Field(
        64,
        ge=1,
        le=100000,
        description="In-flight requests across all replicas at which the router is fully loaded (count).",
    )
    admit_below_load_ratio: dict[str, float] = Field(
        {"premium": 1.0, "standard": 0.8, "batch": 0.5},
        description="Per priority class, the load ratio (in-flight / max_inflight_requests) below which it is admitted; lowest classes shed first.",
    )
    default_priority: str = Field(
        "standard", description="Priority class of a request without the X-Priority header."
    )
    tier_complexity_threshold_ratio: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Requests to the `classifier` route with complexity >= this go to the large tier (ratio 0-1).",
    )
    large_tier_model: str = Field(
        "classifier-large",
        description="Model behind the large tier (classifier-large or classifier-large-int8).",
    )
    local_zone: str = Field(
        "",
        max_length=64,
        description="Zone this router's clients are in; requests prefer its replicas until it is saturated (empty: no preference; the X-Client-Zone header overrides it per request).",
    )
    spill_inflight_per_replica: float = Field(
        8.0,
        ge=0,
        le=1_000_000,
        description="A zone whose in-rotation replicas average this many in-flight router requests is saturated and its requests spill to every zone (requests per replica; 0 always spills).",
    )
    upstream_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="Timeout of one upstream request (seconds)."
    )
    health_check_interval_s: float = Field(
        1.0, gt=0, le=60, description="Active health check period per replica (seconds)."
    )
    ejection_s: float = Field(
        5.0,
        ge=0,
        le=600,
        description="How long a replica that failed a request stays out of rotation (seconds).",
    )
    retries: int = Field(
        1, ge=0, le=5, description="Retries on another replica after a connection failure (count)."
    )
    state_poll_interval_s: float = Field(
        0.5, gt=0, le=60, description="How often the router re-reads the fleet state file (seconds)."
    )

    @field_validator("admit_below_load_ratio")
    @classmethod
    def _ratios_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        for name, ratio in v.items():
            if not 0.0 < ratio <= 1.0:
                raise ValueError(f"class {name!r} has {ratio}; allowed range is (0, 1]")
        return v


class ReplayConfig(_Section):
    max_prompt_tokens: int = Field(
        256,
        ge=1,
        le=1 << 20,
        description="Cap on prompt length sent to chat-lm; traces above it are clipped and counted (tokens).",
    )
    max_generated_tokens: int = Field(
        64, ge=1, le=1 << 16, description="Cap on tokens generated per request (tokens)."
    )
    request_timeout_s: float = Field(
        120.0, gt=0, le=3600, description="Client timeout of one replayed request (seconds)."
    )
    max_concurrency: int = Field(
        512,
        ge=1,
        le=100000,
        description="Open requests at once before the replayer records a client-side drop (count).",
    )


class ApiConfig(_Section):
    port: int = Field(7070, ge=1, le=65535, description="Control-plane API port.")
    query_max_rows: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="POST /v1/query: most rows returned; a larger result is cut here and flagged truncated (rows).",
    )
    query_max_execution_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="POST /v1/query: the engine stops a query after this long and the API answers 408 (seconds).",
    )
    query_max_result_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        le=1 << 34,
        description="POST /v1/query: the engine stops reading once the result holds about this much (bytes).",
    )
    summary_window_s: float = Field(
        60.0,
        ge=60,
        le=3600,
        description="Window of the rate and p99 shown per model in /v1/models when no controller runs: the last complete one (seconds, a multiple of 60).",
    )
    slo_objective_ratio: float = Field(
        0.99,
        gt=0,
        lt=1,
        description="Share of requests that must meet the p99 latency SLO; burn rate = (1 - within) / (1 - objective) (ratio).",
    )
    gpu_price_per_hour: float = Field(
        2.5, ge=0, le=10_000, description="Price of one GPU for one hour, in your currency (/v1/cost)."
    )
    gpus_per_replica_count: int = Field(
        1,
        ge=0,
        le=64,
        description="GPUs billed per replica-hour when no GPU telemetry is stored (a CPU-only fleet is priced as if each replica held this many).",
    )

    @field_validator("summary_window_s")
    @classmethod
    def _whole_minutes(cls, v: float) -> float:
        if v % 60:
            raise ValueError(f"{v} is not a multiple of 60 (the minute rollups)")
        return v


class DashboardConfig(_Section):
    port: int = Field(8501, ge=1, le=65535, description="Streamlit dashboard port.")
    api_url: str | None = Field(
        None,
        description="Control-plane API base URL the dashboard reads (env FLEETPILOT_API_URL wins); empty means http://<bind_host>:<api.port>.",
    )
    refresh_interval_s: float = Field(
        10.0, ge=1, le=3600, description="Auto-refresh period of the live panels (seconds)."
    )
    request_timeout_s: float = Field(
        10.0, gt=0, le=600, description="Timeout of one dashboard request to the API (seconds)."
    )
    default_window_s: int = Field(
        3600,
        ge=60,
        le=30 * 86400,
        description="Time window the pages open with (seconds); the sidebar changes it.",
    )
    query_max_rows: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Rows the history page asks the API for at most (rows; the API's own cap still applies).",
    )

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {v!r})")
        return v.rstrip("/") if v else v


class StoreConfig(_Section):
    dsn: str | None = Field(
        None,
        description="ClickHouse DSN; empty means the embedded engine at chdb:///<data_dir>/clickhouse. http(s)://user:pass@host:8123/db for a server.",
    )
    cluster: str | None = Field(
        None,
        description="ClickHouse cluster name; when set, DDL is rendered ON CLUSTER with Replicated engines.",
    )
    raw_ttl_days: int = Field(14, ge=1, le=3650, description="Retention of raw samples (days).")
    rollup_ttl_days: int = Field(
        400, ge=1, le=36500, description="Retention of 1-minute and 1-hour rollups (days)."
    )


# --- collect: what to scrape, how often, how to batch and spool (collectors/) ---------------
class StaticTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="Target name written in the `target` column (unique).")
    metrics_url: str | None = Field(
        None, description="Prometheus exposition URL, e.g. http://gpu-host:9400/metrics for dcgm-exporter."
    )
    stats_url: str | None = Field(
        None,
        description="Triton HTTP base URL whose /v2/models/stats is read, e.g. http://host:8000; empty skips the statistics API.",
    )
    kind: Literal["triton", "dcgm", "exposition"] = Field(
        "exposition", description="What the target is; only changes span/metric labels, parsing is the same."
    )
    zone: str = Field("", description="Zone label written with every sample of this target.")
    region: str = Field("", description="Region label written with every sample of this target.")

    @model_validator(mode="after")
    def _has_an_endpoint(self) -> StaticTarget:
        if not self.metrics_url and not self.stats_url:
            raise ValueError(f"static target {self.name!r} needs metrics_url or stats_url")
        return self


class CollectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    scrape_interval_s: float = Field(
        5.0, gt=0, le=3600, description="Period between scrapes of every target (seconds)."
    )
    scrape_timeout_s: float = Field(
        3.0,
        gt=0,
        le=600,
        description="Timeout of one HTTP scrape; a target slower than this is recorded up=0 (seconds).",
    )
    shard_index: int = Field(
        0,
        ge=0,
        le=1023,
        description="This collector's shard (0-based); it scrapes the targets that rendezvous hashing assigns to it.",
    )
    shard_count: int = Field(
        1, ge=1, le=1024, description="Number of collector processes splitting the targets (count)."
    )
    from_fleet_state: bool = Field(
        True,
        description="Scrape every replica listed in the fleet state file (metrics port and statistics API).",
    )
    static_targets: list[StaticTarget] = Field(
        [], description="Extra targets, e.g. dcgm-exporter on :9400 or a remote Triton."
    )
    stats_api: bool = Field(
        True, description="Read Triton's /v2/models/stats for fleet replicas (per-model cumulative counters)."
    )
    access_token: SecretStr | None = Field(
        None,
        description="Sent as the `triton-access-token` header to the statistics API when set (PyTriton restricts it).",
    )
    nvml: bool = Field(
        True,
        description="Sample local GPUs through NVML when nvidia-ml-py and a GPU are present; skipped otherwise.",
    )
    series_limit_per_target: int = Field(
        20000,
        ge=1,
        le=10_000_000,
        description="Distinct series kept per target; new series beyond it are dropped and counted (label-explosion guard).",
    )
    max_label_length_bytes: int = Field(
        1024,
        ge=16,
        le=1 << 20,
        description="A sample whose label value is longer than this is rejected and counted (bytes, UTF-8).",
    )
    batch_max_rows: int = Field(
        200_000,
        ge=1,
        le=50_000_000,
        description="The sink flushes a batch once it holds this many samples (rows).",
    )
    batch_max_age_s: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="The sink flushes a batch at the latest this long after its first sample (seconds).",
    )
    spool_max_bytes: int = Field(
        1 << 30,
        ge=1 << 16,
        le=1 << 42,
        description="Disk spool bound (<data_dir>/spool) for batches the store could not take; a batch beyond it is dropped and counted (bytes).",
    )
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces endpoint, e.g. http://localhost:4318/v1/traces; empty keeps spans in-process.",
    )

    @model_validator(mode="after")
    def _shard_in_range(self) -> CollectConfig:
        if self.shard_index >= self.shard_count:
            raise ValueError(
                f"shard_index {self.shard_index} is out of range for shard_count {self.shard_count} (allowed: 0..{self.shard_count - 1})"
            )
        names = [t.name for t in self.static_targets]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"static target names must be unique; repeated: {sorted(dup)}")
        return self


Mode = Literal["active", "advisory", "off"]


class ControlConfig(_Section):
    """The control loop of `fleetpilot up`: what it may change and how fast."""

    interval_s: float = Field(5.0, gt=0, le=3600, description="Period between control decisions (seconds).")
    mode: Mode = Field(
        "active",
        description="Default mode of every model: active (actuate), advisory (decide and record, change nothing) or off.",
    )
    model_modes: dict[str, Mode] = Field(
        default_factory=dict, description="Per-model mode, overriding `mode`, e.g. {chat-lm: advisory}."
    )
    manage_replicas: bool = Field(
        True, description="Add, remove and replace local replica processes (serving.fleet) when active."
    )
    manage_routing: bool = Field(True, description="Set router weights per replica when active.")
    min_replicas: int = Field(1, ge=1, le=10_000, description="Fewest replicas the loop keeps (replicas).")
    max_replicas: int = Field(6, ge=1, le=10_000, description="Most replicas the loop starts (replicas).")
    max_up_step_replicas: int = Field(
        2, ge=1, le=1000, description="Replicas added per step interval at most (replicas)."
    )
    max_down_step_replicas: int = Field(
        1, ge=1, le=1000, description="Replicas removed per step interval at most (replicas)."
    )
    step_interval_s: float = Field(
        30.0, ge=0, le=86_400, description="Window the step limits apply to (seconds)."
    )
    scale_down_window_s: float = Field(
        120.0,
        ge=0,
        le=86_400,
        description="Scale down only to the highest recommendation of this window (seconds; HPA uses 300).",
    )
    replica_startup_s: float = Field(
        20.0,
        ge=0,
        le=3600,
        description="Time a new replica takes to serve; the forecast floor looks this far ahead (seconds).",
    )
    slo_p99_ms: float = Field(250.0, gt=0, le=600_000, description="Default p99 latency SLO per model (ms).")
    slo_p99_ms_by_model: dict[str, float] = Field(
        default_factory=dict, description="Per-model p99 latency SLO overriding slo_p99_ms (ms)."
    )
    capacity_rps_by_model: dict[str, float] = Field(
        default_factory=dict,
        description="Per-model capacity of one replica at the SLO when no profiled or learned curve is stored (requests/s).",
    )
    headroom_ratio: float = Field(
        0.2, ge=0, lt=1, description="Fraction of each replica's capacity kept spare (0-1)."
    )
    queue_target_requests: float = Field(
        8.0, gt=0, le=100_000, description="Queued requests per replica before one is added (requests)."
    )
    backlog_drain_s: float | None = Field(
        30.0,
        gt=0,
        le=3600,
        description="With a capacity model, size the queue path to carry the load and clear the queue within this long, counting replicas still starting (seconds; null: queue_target_requests per ready replica).",
    )
    latency_settle_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="With backlog_drain_s: ignore p99 while replicas start or a backlog drains and this long after (seconds).",
    )
    forecast_max_lead_ratio: float | None = Field(
        1.0,
        ge=0,
        le=100,
        description="The forecast floor leads the observed load by at most this fraction (ratio; null: no limit).",
    )
    burst_window_s: float | None = Field(
        900.0,
        gt=0,
        le=86_400,
        description="Size for the burst_quantile_ratio of the short-window rates of this window too, not only the stable rate (seconds; null: off).",
    )
    sustained_window_s: float | None = Field(
        18.0,
        gt=0,
        le=86_400,
        description="With burst_window_s: size for the lowest short-window rate of this window too, so a step up counts within seconds (seconds; null: off).",
    )
    project_backlog: bool = Field(
        True,
        description="With backlog_drain_s: drain the queue projected to when replicas ordered at the backlog's start serve (replica_startup_s later), not today's.",
    )
    burst_quantile_ratio: float = Field(
        0.93,
        ge=0,
        le=1,
        description="Quantile of the recent short-window rates the fleet is sized for (0-1).",
    )
    max_down_ratio: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Replicas removed per step interval may also be this fraction of the current count, whichever is more (0-1).",
    )
    stable_window_s: float = Field(
        30.0, gt=0, le=3600, description="Window of the stable request rate (seconds; Knative uses 60)."
    )
    short_window_s: float = Field(
        6.0, gt=0, le=600, description="Window of the panic (surge) request rate (seconds; Knative uses 6)."
    )
    panic_threshold_ratio: float = Field(
        2.0,
        gt=1,
        le=100,
        description="Short-window rate / what ready replicas carry that starts a surge (ratio).",
    )
    stale_after_s: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="Telemetry older than this is stale: no decision, never a scale-down (seconds).",
    )
    drain_step_weight: int = Field(
        25, ge=1, le=100, description="Weight taken from a bad replica per tick (of 100)."
    )
    restore_step_weight: int = Field(
        25, ge=1, le=100, description="Weight given back per tick after recovery (of 100)."
    )
    slow_ratio: float = Field(
        2.0,
        gt=1,
        le=1000,
        description="A replica whose p99 is this many times its peers' median is slow (ratio).",
    )
    restore_after_s: float = Field(
        20.0,
        ge=0,
        le=86_400,
        description="A replica stays good this long before its weight is restored (seconds).",
    )
    replace_after_s: float = Field(
        90.0, ge=0, le=86_400, description="A replica bad this long is replaced (seconds)."
    )
    thresholds_step_interval_s: float = Field(
        15.0,
        ge=0,
        le=86_400,
        description="Router thresholds (admission, tier, zone spill-over) move at most one step per this long (seconds).",
    )
    thresholds_restore_after_s: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="Healthy this long before a tightened router threshold is restored one step (seconds).",
    )
    forecast: bool = Field(
        True, description="Run the load forecasters and use their p90 as the replica floor."
    )
    detect: bool = Field(True, description="Run the anomaly detectors on every scrape.")
    capacity_refit_s: float = Field(
        900.0,
        ge=0,
        le=86_400,
        description="Refit each model's capacity from stored telemetry this often (seconds; 0: never).",
    )
    capacity_window_s: float = Field(
        3600.0, ge=60, le=30 * 86_400, description="Telemetry window of a capacity refit (seconds)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> ControlConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas {self.max_replicas} is below min_replicas {self.min_replicas} (allowed: >= {self.min_replicas})"
            )
        return self

    def mode_for(self, model: str) -> str:
        return self.model_modes.get(model, self.mode)

    def slo_for(self, model: str) -> float:
        return self.slo_p99_ms_by_model.get(model, self.slo_p99_ms)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLEETPILOT_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    data_dir: Path = Field(
        Path("./var"), description="Holds the embedded store, fleet state, spool and logs (directory)."
    )
    bind_host: str = Field(
        "127.0.0.1", description="Address every fleetpilot server and Triton replica binds to."
    )
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token for admin endpoints (env FLEETPILOT_API_TOKEN); empty means one is generated into <data_dir>/api_token.",
    )
    fleet: FleetConfig = FleetConfig()
    router: RouterConfig = RouterConfig()
    replay: ReplayConfig = ReplayConfig()
    api: ApiConfig = ApiConfig()
    dashboard: DashboardConfig = DashboardConfig()
    store: StoreConfig = StoreConfig()
    collect: CollectConfig = CollectConfig()
    control: ControlConfig = ControlConfig()

    # Set only for the duration of load_settings(); a ClassVar, not a field.
    yaml_file_path: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.yaml_file_path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=cls.yaml_file_path))
        return tuple(sources)

    # --- derived paths -------------------------------------------------------------
    @property
    def fleet_dir(self) -> Path:
        return self.data_dir.resolve() / "fleet"

    @property
    def fleet_state_path(self) -> Path:
        return self.fleet_dir / "state.json"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir.resolve() / "logs"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir.resolve() / "spool"

    @property
    def store_dsn(self) -> str:
        return self.store.dsn or f"chdb:///{self.data_dir.resolve() / 'clickhouse'}"

    def resolved_api_token(self) -> str:
        """The configured token, or one generated once and kept in <data_dir>/api_token (0600)."""
        if self.api_token is not None and self.api_token.get_secret_value():
            return self.api_token.get_secret_value()
        path = self.data_dir.resolve() / "api_token"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token


def _describe(err: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
    value = err.get("input")
    ctx = err.get("ctx") or {}
    bounds = []
    for name, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if name in ctx:
            bounds.append(f"{sym} {ctx[name]}")
    if "expected" in ctx:
        bounds.append(f"one of {ctx['expected']}")
    allowed = f" (allowed: {', '.join(bounds)})" if bounds else ""
    if err.get("type") == "extra_forbidden":
        return f"unknown config key '{key}' (value {value!r}); see fleetpilot.example.yaml for the valid keys"
    return f"config key '{key}' = {value!r} is invalid: {err.get('msg')}{allowed}"


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from defaults, YAML, environment and overrides; raise ConfigError on bad values."""
    path = config_file or os.environ.get("FLEETPILOT_CONFIG")
    if path is None and Path("fleetpilot.yaml").exists():
        path = "fleetpilot.yaml"
    if path is not None and not Path(path).exists():
        raise ConfigError(f"config file {path} does not exist")
    Settings.yaml_file_path = Path(path) if path else None
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(e) for e in exc.errors())) from None
    finally:
        Settings.yaml_file_path = None


def load_settings_with_env(env: dict[str, str]) -> Settings:
    """load_settings() as if `env` were set on top of this process's environment (which is left
    as it was): for a fleet of its own in a test or a benchmark."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return load_settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
