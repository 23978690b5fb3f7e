"""Unit normalisation at ingest, from fixtures of real Triton GPU / DCGM / vLLM / TRT-LLM output."""

from pathlib import Path

import pytest

from collectors.exposition import ExpositionParser
from collectors.families import FAMILIES, KV_CACHE_USAGE, family_of

FIXTURES = Path(__file__).parent / "fixtures"
GPU0 = "GPU-5fd2a7a3-1c4e-7b7a-9a3e-0f1d2c3b4a50"


def parse(name: str) -> list[tuple[str, dict, str, float]]:
    r = ExpositionParser("t").parse((FIXTURES / name).read_text())
    assert not r.rejected
    t = r.table
    return [(t.metrics[i], t.labels[i], t.kinds[i], float(v)) for i, v in zip(r.idx, r.values, strict=True)]


def value(samples, metric, **labels):
    hits = [s for s in samples if s[0] == metric and all(s[1].get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (metric, labels, hits)
    return hits[0][3], hits[0][2]


@pytest.mark.parametrize(
    ("metric", "labels", "expected", "kind"),
    [
        ("DCGM_FI_DEV_GPU_UTIL", {"gpu": "0"}, 0.87, "gauge"),  # 87 % -> ratio
        ("DCGM_FI_DEV_FB_USED", {"gpu": "0"}, 62302 * 1024 * 1024, "gauge"),  # MiB -> bytes
        ("DCGM_FI_DEV_FB_FREE", {"gpu": "1"}, 81004 * 1024 * 1024, "gauge"),
        ("DCGM_FI_DEV_POWER_USAGE", {"gpu": "0"}, 512.337, "gauge"),  # W stays W
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", {"gpu": "0"}, 8123456.789, "counter"),  # mJ -> J
        ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", {"gpu": "0"}, 0.853211, "gauge"),  # already 0-1
        ("DCGM_FI_DEV_XID_ERRORS", {"gpu": "1", "err_code": "0"}, 0.0, "gauge"),
    ],
)
def test_dcgm_units_normalised(metric, labels, expected, kind):
    got, got_kind = value(parse("dcgm_exporter_h100.txt"), metric, **labels)
    assert got == pytest.approx(expected) and got_kind == kind


def test_dcgm_labels_kept():
    s = parse("dcgm_exporter_h100.txt")
    labels = next(x[1] for x in s if x[0] == "DCGM_FI_DEV_GPU_UTIL" and x[1]["gpu"] == "0")
    assert labels["UUID"] == GPU0 and labels["modelName"] == "NVIDIA H100 80GB HBM3"
    assert (
        labels["Hostname"] == "gpu-node-1"
        and labels["pod"] == "triton-0"
        and labels["namespace"] == "inference"
    )


@pytest.mark.parametrize(
    ("metric", "expected", "kind"),
    [
        ("nv_gpu_utilization", 0.87, "gauge"),
        ("nv_gpu_memory_total_bytes", 85520809984, "gauge"),
        ("nv_gpu_memory_used_bytes", 65328529408, "gauge"),
        ("nv_gpu_power_usage", 512.337, "gauge"),
        ("nv_gpu_power_limit", 700.0, "gauge"),
        ("nv_energy_consumption", 1843290.518, "counter"),
    ],
)
def test_triton_gpu_families_kept_in_native_units(metric, expected, kind):
    got, got_kind = value(parse("triton_gpu_metrics.txt"), metric, gpu_uuid=GPU0)
    assert got == pytest.approx(expected) and got_kind == kind


def test_dcgm_and_triton_agree_on_the_same_gpu():
    dcgm, triton = parse("dcgm_exporter_h100.txt"), parse("triton_gpu_metrics.txt")
    assert value(dcgm, "DCGM_FI_DEV_GPU_UTIL", gpu="0")[0] == pytest.approx(
        value(triton, "nv_gpu_utilization")[0]
    )
    assert value(dcgm, "DCGM_FI_DEV_POWER_USAGE", gpu="0")[0] == pytest.approx(
        value(triton, "nv_gpu_power_usage")[0]
    )


def test_vllm_old_and_new_kv_cache_names_both_ratios():
    s = parse("vllm_metrics.txt")
    for name in KV_CACHE_USAGE:
        assert value(s, name)[0] == pytest.approx(0.31)
    assert value(s, "vllm:prompt_tokens_total")[1] == "counter"
    assert value(s, "vllm:num_requests_running", model_name="llama-3-8b")[0] == 7


def test_trtllm_families():
    s = parse("trtllm_metrics.txt")
    assert value(s, "nv_trt_llm_request_metrics", request_type="active")[0] == 5
    assert value(s, "nv_trt_llm_kv_cache_block_metrics", kv_cache_block_type="used")[0] == 512


def test_kind_without_type_line_comes_from_the_table_and_unknown_is_untyped():
    assert family_of("nv_inference_request_success", {}) == ("nv_inference_request_success", "counter")
    assert family_of("vllm:time_to_first_token_seconds_bucket", {}) == (
        "vllm:time_to_first_token_seconds",
        "histogram",
    )
    assert family_of("something_else", {}) == ("something_else", "untyped")
    assert family_of("x_count", {"x": "summary"}) == ("x", "summary")
    assert all(f.kind in {"counter", "gauge", "histogram", "summary", "untyped"} for f in FAMILIES.values())
