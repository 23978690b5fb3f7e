"""Exposition parser: table-driven strict cases, identity reuse across scrapes, limits, kinds."""

from pathlib import Path

import numpy as np
import pytest

from collectors.exposition import (
    DUPLICATE,
    LABEL_TOO_LONG,
    MALFORMED,
    NAN_OR_INF,
    SERIES_LIMIT,
    ExpositionParser,
    series_id,
)

FIXTURES = Path(__file__).parent / "fixtures"


def samples(parser: ExpositionParser, text: str) -> tuple[list[tuple[str, str, dict, str, float]], dict]:
    r = parser.parse(text)
    t = r.table
    out = [
        (t.metrics[i], t.models[i], t.labels[i], t.kinds[i], float(v))
        for i, v in zip(r.idx.tolist(), r.values.tolist(), strict=True)
    ]
    return out, dict(r.rejected)


GOOD = 'a_total{model="m",x="1"} 5\n'


@pytest.mark.parametrize(
    ("text", "accepted", "rejected"),
    [
        ("# TYPE a_total counter\n" + GOOD, [("a_total", "m", {"x": "1"}, "counter", 5.0)], {}),
        ("a 1\nb 2\n", [("a", "", {}, "untyped", 1.0), ("b", "", {}, "untyped", 2.0)], {}),
        (
            'a{x="1"} 1.5e3 1700000000000\n',
            [("a", "", {"x": "1"}, "untyped", 1500.0)],
            {},
        ),  # timestamp ignored
        (
            'a{x="sp ace",y="q\\"uote\\\\"} 1\n',
            [("a", "", {"x": "sp ace", "y": 'q"uote\\'}, "untyped", 1.0)],
            {},
        ),
        ('a{x="1",} 1\n', [("a", "", {"x": "1"}, "untyped", 1.0)], {}),  # trailing comma is legal
        ("a{} 3\n", [("a", "", {}, "untyped", 3.0)], {}),
        # malformed lines are counted; the good line around them is kept
        ('a{x="1" 1\n' + GOOD, [("a_total", "m", {"x": "1"}, "untyped", 5.0)], {MALFORMED: 1}),
        ("9bad 1\n" + GOOD, [("a_total", "m", {"x": "1"}, "untyped", 5.0)], {MALFORMED: 1}),
        ("a notanumber\n" + GOOD, [("a_total", "m", {"x": "1"}, "untyped", 5.0)], {MALFORMED: 1}),
        ('a{x="1"y="2"} 1\n', [], {MALFORMED: 1}),
        ('a{x="1",x="2"} 1\n', [], {MALFORMED: 1}),
        ('a{x="bad\\qescape"} 1\n', [], {MALFORMED: 1}),
        ("a\n", [], {MALFORMED: 1}),
        ("a 1 2 3\n", [], {MALFORMED: 1}),
        # NaN / Inf
        ("a NaN\nb +Inf\nc -Inf\nd 1\n", [("d", "", {}, "untyped", 1.0)], {NAN_OR_INF: 3}),
        # duplicates: same text twice, and the same series with labels in another order
        (
            'a{x="1",y="2"} 1\na{x="1",y="2"} 2\na{y="2",x="1"} 3\n',
            [("a", "", {"x": "1", "y": "2"}, "untyped", 1.0)],
            {DUPLICATE: 2},
        ),
        # an over-long label value (limit 32 bytes below; multi-byte characters count as bytes)
        (
            'a{x="' + "é" * 17 + '"} 1\n' + GOOD,
            [("a_total", "m", {"x": "1"}, "untyped", 5.0)],
            {LABEL_TOO_LONG: 1},
        ),
    ],
)
def test_parse_cases(text, accepted, rejected):
    got, rej = samples(ExpositionParser("t", max_label_length_bytes=32), text)
    assert got == accepted
    assert rej == rejected


@pytest.mark.parametrize("scrapes", [1, 3])
def test_every_line_of_a_real_triton_scrape_is_kept_across_scrapes(scrapes):
    text = (FIXTURES / "triton_cpu_metrics.txt").read_text()
    p = ExpositionParser("replica-0")
    for _ in range(scrapes):
        got, rej = samples(p, text)
    assert rej == {}
    assert len(got) == sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    success = [s for s in got if s[0] == "nv_inference_request_success"]
    assert success == [("nv_inference_request_success", "classifier-small", {"version": "1"}, "counter", 5.0)]
    failures = {s[2]["reason"] for s in got if s[0] == "nv_inference_request_failure"}
    assert failures == {"OTHER", "BACKEND", "CANCELED", "REJECTED"}
    assert p.cached_prefixes == len(got)  # identity parsed once, reused afterwards


def test_repeated_scrapes_reuse_identity_and_see_new_values():
    p = ExpositionParser("t")
    first = p.parse('# TYPE c counter\nc{model="m"} 1\ng 7\n')
    second = p.parse('# TYPE c counter\nc{model="m"} 2\ng 8\n')
    assert first.table is second.table and second.idx.tolist() == first.idx.tolist()
    assert second.values.tolist() == [2.0, 8.0]
    # a changed value that Arrow cannot parse falls back to the strict path and is counted
    third = p.parse('# TYPE c counter\nc{model="m"} oops\ng 9\n')
    assert third.values.tolist() == [9.0] and dict(third.rejected) == {MALFORMED: 1}
    # a new series in the middle is picked up (template no longer matches)
    fourth = p.parse('# TYPE c counter\nc{model="m"} 3\nc{model="n"} 1\ng 10\n')
    t = fourth.table
    assert [(t.metrics[i], t.models[i]) for i in fourth.idx] == [("c", "m"), ("c", "n"), ("g", "")]


def test_template_path_keeps_rejections_and_duplicates():
    text = 'a 1\na 2\nb{x="' + "y" * 100 + '"} 1\nc NaN\n'
    p = ExpositionParser("t", max_label_length_bytes=32)
    for _ in range(3):  # the 2nd and 3rd scrapes take the template path
        r = p.parse(text)
        assert r.values.tolist() == [1.0]
        assert dict(r.rejected) == {DUPLICATE: 1, LABEL_TOO_LONG: 1, NAN_OR_INF: 1}


def test_series_limit_drops_excess_and_counts_every_scrape():
    p = ExpositionParser("t", series_limit=10)
    text = "".join(f'exploding{{user="{i}"}} 1\n' for i in range(25)) + "keep 1\n"
    for _ in range(2):
        r = p.parse(text)
        assert len(r.idx) == 10 and r.rejected[SERIES_LIMIT] == 16
    assert len(p.table) <= 10


def test_series_limit_frees_room_when_old_series_go_idle():
    p = ExpositionParser("t", series_limit=5, compact_idle_scrapes=2)
    p.parse("".join(f"old{i} 1\n" for i in range(5)))
    for _ in range(3):
        r = p.parse("".join(f"new{i} 1\n" for i in range(5)))
    assert len(r.idx) == 5 and not r.rejected
    assert sorted(r.table.metrics[i] for i in r.idx) == [f"new{i}" for i in range(5)]


def test_histogram_and_summary_kept_faithfully():
    got, rej = samples(ExpositionParser("t"), (FIXTURES / "vllm_metrics.txt").read_text())
    assert rej == {}
    ttft = [s for s in got if s[0].startswith("vllm:time_to_first_token_seconds")]
    assert {s[3] for s in ttft} == {"histogram"}
    buckets = {s[2]["le"]: s[4] for s in ttft if s[0].endswith("_bucket")}
    assert buckets == {"0.01": 3.0, "0.05": 40.0, "0.1": 95.0, "+Inf": 100.0}
    assert [s[4] for s in ttft if s[0].endswith("_count")] == [100.0]
    assert all(s[1] == "llama-3-8b" and s[2]["version"] == "1" and "model" not in s[2] for s in ttft)
    summ = [s for s in got if s[0].startswith("rpc_latency_seconds")]
    assert {s[3] for s in summ} == {"summary"}
    assert {s[2].get("quantile") for s in summ if s[0] == "rpc_latency_seconds"} == {"0.5", "0.99"}


def test_series_id_is_stable_and_order_independent():
    a = series_id("r0", "m", {"x": "1", "y": "2"})
    assert a == series_id("r0", "m", {"y": "2", "x": "1"})
    assert a != series_id("r1", "m", {"x": "1", "y": "2"})
    assert 0 <= a < 2**64
    p = ExpositionParser("r0")
    r = p.parse('m{y="2",x="1"} 1\n')
    assert p.table.arrays()["series_id"][r.idx[0]] == np.uint64(a)


def test_vllm_model_name_label_fills_the_model_column():
    text = (
        "# TYPE vllm:generation_tokens_total counter\n"
        'vllm:generation_tokens_total{model_name="chat-lm",engine="0"} 42\n'
        'nv_inference_count{model="classifier-small",version="1"} 7\n'
    )
    got, rejected = samples(ExpositionParser("t"), text)
    assert rejected == {}
    assert got[0][:3] == ("vllm:generation_tokens_total", "chat-lm", {"model_name": "chat-lm", "engine": "0"})
    assert got[1][1] == "classifier-small" and "model" not in got[1][2]
