"""Triton statistics API -> triton_stats_* samples; tolerant of fields older servers lack."""

import json
from pathlib import Path

import pytest

from collectors.triton_stats import stats_headers, stats_samples

FIXTURES = Path(__file__).parent / "fixtures"


def as_dict(body):
    return {
        (m, name, tuple(sorted(labels.items()))): (kind, v)
        for m, (name, labels, kind, v) in stats_samples(body)
    }


def test_real_2_51_response():
    s = as_dict(json.loads((FIXTURES / "triton_stats_2_51.json").read_text()))
    v = (("version", "1"),)
    assert s[("classifier-small", "triton_stats_success_count", v)] == ("counter", 5.0)
    assert s[("classifier-small", "triton_stats_success_ns", v)] == ("counter", 1881098.0)
    assert s[("classifier-small", "triton_stats_queue_ns", v)][1] == 348658.0
    assert s[("classifier-small", "triton_stats_cache_hit_count", v)][1] == 4.0
    assert s[("classifier-small", "triton_stats_inference_count", v)][1] == 1.0
    assert s[("classifier-small", "triton_stats_execution_count", v)][1] == 1.0
    bs = (("batch_size", "1"), ("version", "1"))
    assert s[("classifier-small", "triton_stats_batch_compute_infer_ns", bs)] == ("counter", 754482.0)
    assert s[("classifier-small", "triton_stats_batch_compute_infer_count", bs)][1] == 1.0
    assert s[("classifier-small", "triton_stats_last_inference_ms", v)][0] == "gauge"


def test_older_server_without_batch_memory_cache_fields():
    s = as_dict(json.loads((FIXTURES / "triton_stats_old_server.json").read_text()))
    names = {k[1] for k in s}
    assert "triton_stats_fail_count" in names and "triton_stats_compute_infer_ns" in names
    assert not any("cache" in n or "batch_" in n or "memory" in n for n in names)
    assert "triton_stats_last_inference_ms" not in names  # 0 means never


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"model_stats": []},
        {"model_stats": None},
        {"model_stats": [{"name": "m"}]},
        {
            "model_stats": [
                {"name": "m", "inference_stats": {"success": {}}, "batch_stats": None, "memory_usage": None}
            ]
        },
    ],
)
def test_sparse_bodies_yield_what_is_there_without_error(body):
    assert list(stats_samples(body)) == []


def test_memory_usage_is_a_gauge_with_kind_and_device():
    body = {
        "model_stats": [
            {
                "name": "m",
                "version": "2",
                "memory_usage": [
                    {"type": "GPU", "id": 0, "byte_size": 1048576},
                    {"type": "CPU", "id": 0, "byte_size": 4096},
                ],
            }
        ]
    }
    s = as_dict(body)
    assert s[
        ("m", "triton_stats_memory_usage_bytes", (("device_id", "0"), ("kind", "GPU"), ("version", "2")))
    ] == ("gauge", 1048576.0)
    assert len(s) == 2


def test_access_token_header():
    assert stats_headers("s3cret") == {"triton-access-token": "s3cret"}
    assert stats_headers(None) == {}
