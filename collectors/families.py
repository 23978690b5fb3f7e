"""Known metric families and the unit normalisation applied at ingest.

Every value lands in the store in one unit per quantity, so queries never need to know which
exporter a series came from:

| quantity     | stored unit   | source (exposed unit)                                   | scale      |
|--------------|---------------|---------------------------------------------------------|------------|
| utilisation  | ratio 0-1     | Triton nv_gpu_utilization, nv_cpu_utilization (0-1)      | 1          |
|              |               | DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_MEM_COPY_UTIL (0-100) | 0.01       |
|              |               | DCGM_FI_PROF_GR_ENGINE_ACTIVE (0-1)                     | 1          |
|              |               | vLLM kv_cache_usage_perc / gpu_cache_usage_perc (0-1)   | 1          |
| memory       | bytes         | Triton nv_gpu_memory_*_bytes, nv_cpu_memory_*_bytes      | 1          |
|              |               | DCGM_FI_DEV_FB_USED / _FREE / _TOTAL (MiB)              | 1048576    |
| power        | watts         | Triton nv_gpu_power_usage/limit, DCGM_FI_DEV_POWER_USAGE | 1          |
| energy       | joules        | Triton nv_energy_consumption (J)                         | 1          |
|              |               | DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ)               | 0.001      |
| durations    | as named      | Triton *_duration_us stay microseconds (the name says so)| 1          |

Metric names are kept as exposed (the store contract); `KV_CACHE_USAGE` and friends list the
old and new names of one quantity so queries can say `metric IN (...)`.
Families not listed here are kept as-is with the kind their `# TYPE` line gives.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # counter | gauge | histogram | summary | untyped (used when the exposition has no # TYPE)
    unit: str  # stored unit after normalisation
    scale: float = 1.0  # multiply the exposed value by this at ingest
    source: str = "triton"
    help: str = ""


def _f(name: str, kind: str, unit: str, scale: float = 1.0, source: str = "triton", help: str = "") -> Family:
    return Family(name, kind, unit, scale, source, help)


_FAMILIES: list[Family] = [
    # --- Triton per-model inference counters (cumulative) ---
    _f("nv_inference_request_success", "counter", "requests", help="successful requests"),
    _f("nv_inference_request_failure", "counter", "requests", help="failed requests by reason"),
    _f("nv_inference_count", "counter", "inferences", help="inferences (batch items), excl. cache hits"),
    _f("nv_inference_exec_count", "counter", "executions", help="model executions (batches)"),
    _f("nv_inference_request_duration_us", "counter", "us"),
    _f("nv_inference_queue_duration_us", "counter", "us"),
    _f("nv_inference_compute_input_duration_us", "counter", "us"),
    _f("nv_inference_compute_infer_duration_us", "counter", "us"),
    _f("nv_inference_compute_output_duration_us", "counter", "us"),
    _f("nv_inference_pending_request_count", "gauge", "requests"),
    _f("nv_inference_first_response_histogram_ms", "histogram", "ms"),
    # --- Triton response cache ---
    _f("nv_cache_num_hits_per_model", "counter", "hits"),
    _f("nv_cache_num_misses_per_model", "counter", "misses"),
    _f("nv_cache_hit_duration_per_model", "counter", "us"),
    _f("nv_cache_miss_duration_per_model", "counter", "us"),
    _f("nv_cache_util", "gauge", "ratio"),
    _f("nv_cache_num_entries", "gauge", "entries"),
    _f("nv_cache_num_hits", "gauge", "hits"),
    _f("nv_cache_num_misses", "gauge", "misses"),
    _f("nv_cache_num_lookups", "gauge", "lookups"),
    _f("nv_cache_num_evictions", "gauge", "evictions"),
    _f("nv_cache_lookup_duration", "gauge", "us"),
    _f("nv_cache_insertion_duration", "gauge", "us"),
    # --- Triton host ---
    _f("nv_cpu_utilization", "gauge", "ratio"),
    _f("nv_cpu_memory_total_bytes", "gauge", "bytes"),
    _f("nv_cpu_memory_used_bytes", "gauge", "bytes"),
    _f("nv_pinned_memory_pool_total_bytes", "gauge", "bytes"),
    _f("nv_pinned_memory_pool_used_bytes", "gauge", "bytes"),
    # --- Triton GPU (labelled gpu_uuid) ---
    _f("nv_gpu_utilization", "gauge", "ratio"),
    _f("nv_gpu_memory_total_bytes", "gauge", "bytes"),
    _f("nv_gpu_memory_used_bytes", "gauge", "bytes"),
    _f("nv_gpu_power_usage", "gauge", "W"),
    _f("nv_gpu_power_limit", "gauge", "W"),
    _f("nv_energy_consumption", "counter", "J"),
    # --- vLLM (through Triton's vLLM backend or vLLM itself) ---
    _f("vllm:prompt_tokens_total", "counter", "tokens", source="vllm"),
    _f("vllm:generation_tokens_total", "counter", "tokens", source="vllm"),
    _f("vllm:time_to_first_token_seconds", "histogram", "s", source="vllm"),
    _f("vllm:time_per_output_token_seconds", "histogram", "s", source="vllm"),
    _f("vllm:e2e_request_latency_seconds", "histogram", "s", source="vllm"),
    _f("vllm:num_requests_running", "gauge", "requests", source="vllm"),
    _f("vllm:num_requests_waiting", "gauge", "requests", source="vllm"),
    _f("vllm:kv_cache_usage_perc", "gauge", "ratio", source="vllm", help="0-1 despite the name"),
    _f(
        "vllm:gpu_cache_usage_perc", "gauge", "ratio", source="vllm", help="older name of kv_cache_usage_perc"
    ),
    _f("vllm:prefix_cache_queries", "counter", "tokens", source="vllm"),
    _f("vllm:prefix_cache_hits", "counter", "tokens", source="vllm"),
    # --- TensorRT-LLM backend ---
    _f("nv_trt_llm_request_metrics", "gauge", "requests", source="trtllm", help="by request_type"),
    _f(
        "nv_trt_llm_kv_cache_block_metrics", "gauge", "blocks", source="trtllm", help="by kv_cache_block_type"
    ),
    _f("nv_trt_llm_inflight_batcher_metrics", "gauge", "count", source="trtllm"),
    _f("nv_trt_llm_general_metrics", "gauge", "count", source="trtllm"),
    # --- dcgm-exporter ---
    _f("DCGM_FI_DEV_GPU_UTIL", "gauge", "ratio", 0.01, "dcgm", "exposed 0-100"),
    _f("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "ratio", 0.01, "dcgm", "exposed 0-100"),
    _f("DCGM_FI_DEV_FB_USED", "gauge", "bytes", MIB_BYTES, "dcgm", "exposed MiB"),
    _f("DCGM_FI_DEV_FB_FREE", "gauge", "bytes", MIB_BYTES, "dcgm", "exposed MiB"),
    _f("DCGM_FI_DEV_FB_TOTAL", "gauge", "bytes", MIB_BYTES, "dcgm", "exposed MiB"),
    _f("DCGM_FI_DEV_POWER_USAGE", "gauge", "W", 1.0, "dcgm"),
    _f("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "J", 0.001, "dcgm", "exposed mJ"),
    _f("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "ratio", 1.0, "dcgm"),
    _f("DCGM_FI_DEV_XID_ERRORS", "gauge", "code", 1.0, "dcgm", "last XID error code"),
    _f("DCGM_FI_DEV_SM_CLOCK", "gauge", "MHz", 1.0, "dcgm"),
    _f("DCGM_FI_DEV_GPU_TEMP", "gauge", "C", 1.0, "dcgm"),
]

FAMILIES: dict[str, Family] = {f.name: f for f in _FAMILIES}

# Sample names whose exposed value must be scaled; looked up once per new series, never per sample.
SCALE_BY_METRIC: dict[str, float] = {f.name: f.scale for f in _FAMILIES if f.scale != 1.0}

# One quantity, several names across versions/exporters (use with `metric IN (...)`).
KV_CACHE_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
GPU_UTILIZATION = ("nv_gpu_utilization", "DCGM_FI_DEV_GPU_UTIL", "nvml_gpu_utilization")
GPU_MEMORY_USED = ("nv_gpu_memory_used_bytes", "DCGM_FI_DEV_FB_USED", "nvml_gpu_memory_used_bytes")
GPU_POWER = ("nv_gpu_power_usage", "DCGM_FI_DEV_POWER_USAGE", "nvml_gpu_power_usage")
GPU_ENERGY = ("nv_energy_consumption", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "nvml_energy_consumption")

_HIST_SUFFIXES = ("_bucket", "_sum", "_count", "_created")
_SUMMARY_SUFFIXES = ("_sum", "_count", "_created")


def family_of(sample_name: str, types: dict[str, str]) -> tuple[str, str]:
    """(family name, kind) of a sample name, from the scrape's # TYPE lines, else the known table."""
    kind = types.get(sample_name)
    if kind is not None:
        return sample_name, kind
    for suffix in _HIST_SUFFIXES:
        if sample_name.endswith(suffix):
            base = sample_name[: -len(suffix)]
            kind = types.get(base)
            if kind in ("histogram", "gaugehistogram") or (kind == "summary" and suffix in _SUMMARY_SUFFIXES):
                return base, kind
    known = FAMILIES.get(sample_name)
    if known is not None:
        return sample_name, known.kind
    for suffix in _HIST_SUFFIXES:
        if sample_name.endswith(suffix):
            base = FAMILIES.get(sample_name[: -len(suffix)])
            if base is not None and base.kind in ("histogram", "summary"):
                return base.name, base.kind
    return sample_name, "untyped"


def scale_for(sample_name: str) -> float:
    return SCALE_BY_METRIC.get(sample_name, 1.0)
