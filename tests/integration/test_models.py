"""The four models on the shared fleet of real tritonserver replicas: inference, streaming,
vLLM-named metrics, and run-time fault injection."""

from __future__ import annotations

import json
import queue
import time
import urllib.request

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from serving.faults import Faults
from serving.models.chat_lm import build_chat_lm

pytestmark = pytest.mark.integration

CLASSIFIERS = ("classifier-small", "classifier-large", "classifier-large-int8")
PROMPT = [17, 4, 250, 3, 99]


def _classify(http_url: str, model: str, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    client = httpclient.InferenceServerClient(http_url.removeprefix("http://"))
    inp = httpclient.InferInput("features", list(features.shape), "FP32")
    inp.set_data_from_numpy(features.astype(np.float32))
    result = client.infer(model, [inp])
    return result.as_numpy("probabilities"), result.as_numpy("label")


def _unique_features(batch: int = 1) -> np.ndarray:
    """Inputs never seen before, so the response cache cannot answer instead of the model."""
    return np.random.default_rng(time.time_ns()).standard_normal((batch, 64)).astype(np.float32)


def _stream_chat(grpc_url: str, prompt: list[int], max_tokens: int) -> tuple[list[int], list[str], list]:
    """(token ids, texts, errors) of one streamed chat-lm request over gRPC."""
    events: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(grpc_url)
    client.start_stream(callback=lambda result, error: events.put((result, error)))
    ids = grpcclient.InferInput("input_ids", [len(prompt)], "INT32")
    ids.set_data_from_numpy(np.array(prompt, dtype=np.int32))
    n = grpcclient.InferInput("max_tokens", [1], "INT32")
    n.set_data_from_numpy(np.array([max_tokens], dtype=np.int32))
    client.async_stream_infer("chat-lm", [ids, n], enable_empty_final_response=True)
    tokens, texts, errors = [], [], []
    try:
        while True:
            result, error = events.get(timeout=60)
            if error is not None:
                errors.append(error)
                break
            response = result.get_response()
            if result.as_numpy("token_id") is not None:
                tokens.append(int(result.as_numpy("token_id")[0]))
                texts.append(result.as_numpy("text_output")[0].decode())
            if response.parameters["triton_final_response"].bool_param:
                break
    finally:
        client.stop_stream()
        client.close()
    return tokens, texts, errors


def _metrics(metrics_url: str) -> dict[str, float]:
    """'name{labels}' -> value for every sample line of the chat-lm vllm: metrics."""
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("vllm:") and 'model_name="chat-lm"' in line:
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def _metric(samples: dict[str, float], name: str) -> float:
    """Sum of a metric over its label sets (instances of the model)."""
    values = [v for k, v in samples.items() if k.split("{")[0] == name]
    assert values, f"{name} not exposed; have {sorted({k.split('{')[0] for k in samples})}"
    return sum(values)


@pytest.mark.parametrize("model", CLASSIFIERS)
def test_classifier_shapes_and_identical_outputs_across_replicas(fleet, model):
    features = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)
    outputs = [_classify(r.http_url, model, features) for r in fleet.replicas]
    probs, labels = outputs[0]
    assert probs.shape == (4, 10) and probs.dtype == np.float32
    assert labels.shape == (4, 1) and labels.dtype == np.int64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(labels[:, 0], probs.argmax(axis=1))
    for other_probs, other_labels in outputs[1:]:  # same seeded weights on every replica
        np.testing.assert_allclose(other_probs, probs, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(other_labels, labels)


def test_chat_grpc_stream_yields_exactly_max_tokens_matching_reference(fleet):
    tokens, texts, errors = _stream_chat(fleet.replicas[0].grpc_url, PROMPT, 12)
    assert errors == []
    assert len(tokens) == 12 and len(texts) == 12
    assert tokens == build_chat_lm().generate(PROMPT, 12)  # greedy and seeded: deterministic


def test_chat_http_generate_stream_yields_exactly_max_tokens(fleet):
    url = f"{fleet.replicas[-1].http_url}/v2/models/chat-lm/generate_stream"
    events = []
    with httpx.stream("POST", url, json={"input_ids": PROMPT, "max_tokens": 9}, timeout=60) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    assert [e["token_id"] for e in events] == build_chat_lm().generate(PROMPT, 9)
    assert all(e["text_output"].strip() for e in events)


def test_vllm_metrics_exposed_with_counts(fleet):
    replica = fleet.replicas[0]
    before = _metrics(replica.metrics_url)
    tokens, _, _ = _stream_chat(replica.grpc_url, PROMPT, 5)
    assert len(tokens) == 5
    after = _metrics(replica.metrics_url)
    assert _metric(after, "vllm:prompt_tokens_total") - _metric(before, "vllm:prompt_tokens_total") == len(
        PROMPT
    )
    assert (
        _metric(after, "vllm:generation_tokens_total") - _metric(before, "vllm:generation_tokens_total") == 5
    )
    for hist in ("vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds"):
        assert _metric(after, f"{hist}_count") - _metric(before, f"{hist}_count") == 1
    assert _metric(after, "vllm:time_per_output_token_seconds_count") >= 4
    # Idle again: nothing running or waiting, no KV reserved.
    for gauge in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
        assert _metric(after, gauge) == 0


def _wait_for(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _infer_s(http_url: str) -> float:
    start = time.perf_counter()
    _classify(http_url, "classifier-small", _unique_features())
    return time.perf_counter() - start


def test_injected_latency_applies_and_is_removed_at_run_time(fleet):
    replica = fleet.replicas[0]
    try:
        fleet.manager.set_faults(replica.name, Faults(added_latency_ms=400))
        assert _wait_for(lambda: _infer_s(replica.http_url) >= 0.4), "added latency never showed up"
    finally:
        fleet.manager.set_faults(replica.name, Faults())
    assert _wait_for(lambda: _infer_s(replica.http_url) < 0.2), "latency stayed after the fault was cleared"


def test_injected_error_rate_fails_requests(fleet):
    replica = fleet.replicas[0]
    try:
        fleet.manager.set_faults(replica.name, Faults(error_rate_ratio=1.0))
        with pytest.raises(InferenceServerException, match="injected fault"):
            _classify(replica.http_url, "classifier-large", _unique_features())
        _, _, errors = _stream_chat(replica.grpc_url, PROMPT, 3)
        assert errors and "injected fault" in str(errors[0])
    finally:
        fleet.manager.set_faults(replica.name, Faults())
    probs, _ = _classify(replica.http_url, "classifier-large", _unique_features())
    assert probs.shape == (1, 10)
