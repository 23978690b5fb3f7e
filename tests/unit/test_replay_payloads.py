"""What replayed requests send: caps, priority mix, deterministic payloads, time compression, summary."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from serving.replay.payloads import Caps, RequestPlanner, clip_lengths, parse_priority_mix
from serving.replay.results import RequestResult, percentile_ms, summarize
from serving.replay.runner import ReplayOptions, due_s
from serving.replay.traces import TraceRequest

CAPS = Caps(max_prompt_tokens=32, max_generated_tokens=8)


@pytest.mark.parametrize(
    "input_length, output_length, prompt, out, clipped_prompt, clipped_output",
    [
        (10, 5, 10, 5, False, False),
        (32, 8, 32, 8, False, False),  # at the cap: not clipped
        (33, 9, 32, 8, True, True),
        (4808, 3, 32, 3, True, False),
        (0, 0, 1, 1, False, False),  # an empty request is sent as 1 token each way
    ],
)
def test_clip_lengths(input_length, output_length, prompt, out, clipped_prompt, clipped_output):
    got = clip_lengths(input_length, output_length, CAPS)
    assert (got.prompt_tokens, got.max_tokens, got.clipped_prompt, got.clipped_output) == (
        prompt,
        out,
        clipped_prompt,
        clipped_output,
    )


@pytest.mark.parametrize(
    "speed, offset_s, expected_s",
    [(1.0, 4.0, 4.0), (10.0, 4.0, 0.4), (0.5, 4.0, 8.0), (1000.0, 3600.0, 3.6)],
)
def test_time_compression(speed, offset_s, expected_s):
    assert due_s(offset_s, speed) == pytest.approx(expected_s)


@pytest.mark.parametrize("speed", [0.0, -1.0])
def test_speed_must_be_positive(speed):
    with pytest.raises(ValueError, match="speed"):
        ReplayOptions(router_url="http://x", caps=CAPS, speed=speed)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("standard=1", {"standard": 1.0}),
        ("premium=0.2,standard=0.6,batch=0.2", {"premium": 0.2, "standard": 0.6, "batch": 0.2}),
        ("premium=1, batch=3", {"premium": 0.25, "batch": 0.75}),
        ("premium=0,standard=2", {"premium": 0.0, "standard": 1.0}),
    ],
)
def test_priority_mix_parsing(text, expected):
    assert parse_priority_mix(text, {"premium", "standard", "batch"}) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, message",
    [
        ("premium", "is not NAME=WEIGHT"),
        ("premium=lots", "weight 'lots' for 'premium' is not a number"),
        ("premium=-1", "must be >= 0"),
        ("gold=1", "priority class 'gold' is unknown; known classes: batch, premium, standard"),
        ("premium=1,premium=2", "appears twice"),
        ("premium=0", "has no positive weight"),
        ("", "has no positive weight"),
    ],
)
def test_priority_mix_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_priority_mix(text, {"premium", "standard", "batch"})


def test_chat_plan_body_and_caps():
    planner = RequestPlanner(CAPS, seed=1)
    planned = planner.plan(0, TraceRequest(0.0, "chat", 374, 44))
    body = json.loads(planned.body)
    assert planned.path == "/v2/models/chat-lm/generate_stream" and planned.stream
    assert len(body["input_ids"]) == 32 and body["max_tokens"] == 8
    assert all(0 <= t < 512 for t in body["input_ids"])
    assert planned.clipped_prompt and planned.clipped_output
    assert planned.headers["X-Priority"] == "standard"


def test_plans_are_deterministic_per_seed_and_index():
    a, b, c = RequestPlanner(CAPS, seed=1), RequestPlanner(CAPS, seed=1), RequestPlanner(CAPS, seed=2)
    req = TraceRequest(0.0, "chat", 20, 4)
    assert a.plan(5, req).body == b.plan(5, req).body  # same seed, same index
    assert a.plan(5, req).body != a.plan(6, req).body  # prompts differ between requests
    assert a.plan(5, req).body != c.plan(5, req).body


def test_classifier_plan_is_kserve_v2_with_complexity():
    planned = RequestPlanner(CAPS, seed=3).plan(0, TraceRequest(0.0, "classifier"))
    body = json.loads(planned.body)
    assert planned.path == "/v2/models/classifier/infer" and not planned.stream
    (tensor,) = body["inputs"]
    assert (tensor["name"], tensor["shape"], tensor["datatype"], len(tensor["data"])) == (
        "features",
        [1, 64],
        "FP32",
        64,
    )
    assert 0.0 <= float(planned.headers["X-Complexity"]) < 1.0


def test_priority_and_complexity_distributions():
    planner = RequestPlanner(CAPS, seed=0, priority_mix={"premium": 0.2, "standard": 0.6, "batch": 0.2})
    plans = [planner.plan(i, TraceRequest(0.0, "classifier")) for i in range(5000)]
    share = Counter(p.priority for p in plans)
    assert share["premium"] / 5000 == pytest.approx(0.2, abs=0.03)
    assert share["standard"] / 5000 == pytest.approx(0.6, abs=0.03)
    assert share["batch"] / 5000 == pytest.approx(0.2, abs=0.03)
    large = sum(1 for p in plans if p.complexity >= 0.5)
    assert large / 5000 == pytest.approx(0.5, abs=0.03)


# --- summary (pure) ----------------------------------------------------------------------------


def _result(
    status,
    latency_ms=None,
    ttft_ms=None,
    tokens=0,
    reason=None,
    replica=None,
    priority="standard",
    sent_s=0.0,
    scheduled_s=0.0,
    **kw,
):
    return RequestResult(
        index=0,
        trace_offset_s=0.0,
        scheduled_s=scheduled_s,
        sent_s=None if status == "dropped" else sent_s,
        status=status,
        model="chat-lm",
        priority=priority,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        tokens=tokens,
        reason=reason,
        replica=replica,
        **kw,
    )


@pytest.mark.parametrize(
    "values, q, expected",
    [([], 50, None), ([7.0], 99, 7.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.5), (list(range(1, 101)), 99, 99.01)],
)
def test_percentile_ms(values, q, expected):
    assert percentile_ms(values, q) == expected


def test_summary_figures():
    results = [
        *[
            _result(
                "ok", latency_ms=float(i), ttft_ms=i / 10, tokens=8, replica="replica-0", clipped_prompt=True
            )
            for i in range(1, 101)
        ],
        _result("shed", latency_ms=0.5, reason="shed", priority="batch"),
        _result("error", latency_ms=2.0, reason="http_500"),
        _result("error", latency_ms=2.0, reason="http_500"),
        _result("timeout", reason="timeout", sent_s=1.0, scheduled_s=0.5),
        _result("dropped", reason="max_concurrency", clipped_output=True),
    ]
    s = summarize(
        results, duration_s=2.0, max_prompt_tokens=32, max_generated_tokens=8, results_file="r.jsonl"
    )
    assert (s["requests"], s["ok"], s["errors"], s["shed"], s["timeouts"], s["dropped"]) == (
        105,
        100,
        2,
        1,
        1,
        1,
    )
    assert s["p50_ms"] == 50.5 and s["p99_ms"] == 99.01  # ok requests only: the fast shed one is not in
    assert s["ttft_p99_ms"] == 9.901
    assert s["achieved_rps"] == 52.0  # 104 sent (the dropped one never went out) over 2 s
    assert s["tokens_generated"] == 800
    assert (s["clipped_prompt"], s["clipped_output"]) == (100, 1)
    assert s["errors_by_reason"] == {"http_500": 2, "max_concurrency": 1, "shed": 1, "timeout": 1}
    assert s["by_replica"] == {"replica-0": 100}
    assert s["by_priority"]["batch"]["shed"] == 1
    assert s["send_lag_p99_ms"] == 0.0 and s["send_lag_max_ms"] == 500.0  # one request went out 0.5 s late
    assert (s["max_prompt_tokens"], s["max_generated_tokens"], s["results_file"]) == (32, 8, "r.jsonl")
    json.dumps(s)  # serialisable as is


def test_summary_without_ok_requests_has_null_percentiles():
    s = summarize(
        [_result("error", reason="connection")], duration_s=0.1, max_prompt_tokens=1, max_generated_tokens=1
    )
    assert s["p50_ms"] is None and s["p99_ms"] is None and s["ttft_p99_ms"] is None
