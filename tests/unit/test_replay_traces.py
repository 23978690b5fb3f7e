"""Trace parsing: every format, format detection, malformed lines, Poisson arrivals, real files."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from serving.replay.traces import (
    EmptyTrace,
    ParseReport,
    TraceError,
    open_trace,
    parse_azure_timestamp_ns,
    parse_rate_rows,
    parse_trace_text,
    poisson_arrivals,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "traces"  # beside the repo, like conftest
AZURE_CONV = DATA / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv"
AZURE_CODE = DATA / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv"
SERVEGEN_MID = DATA / "servegen" / "language_m-mid_aggregate_rate_10min.csv"

AZURE_OK = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:50.9951690,396,109
2023-11-16 18:15:50.9951690,10,1
2023-11-16 18:15:51,0,0
"""


def _parse(text: str, name: str = "trace.csv", **kw):
    trace = parse_trace_text(text, Path(name), kw.pop("fmt", None), **kw)
    return trace, list(trace.requests)


# --- well-formed traces ------------------------------------------------------------------------


def test_azure_offsets_from_first_timestamp_with_seven_fraction_digits():
    trace, reqs = _parse(AZURE_OK)
    assert trace.format == "azure"
    assert [r.offset_s for r in reqs] == [0.0, 4.314579, 4.314579, 4.31941]
    assert [(r.input_length, r.output_length) for r in reqs] == [(374, 44), (396, 109), (10, 1), (0, 0)]
    assert [r.line for r in reqs] == [2, 3, 4, 5]
    assert {r.kind for r in reqs} == {"chat"}
    assert trace.expected_requests == 4


@pytest.mark.parametrize(
    "raw, expected_ns",
    [
        ("1970-01-01 00:00:01.5", 1_500_000_000),
        ("1970-01-01 00:00:00.0000001", 100),
        ("1970-01-01 00:01:00", 60_000_000_000),
        ("2023-11-16 18:15:46.6805900", 1700158546_680590000),
    ],
)
def test_azure_timestamp_parsing_is_exact(raw, expected_ns):
    assert parse_azure_timestamp_ns(raw) == expected_ns


def test_jsonl_offsets_in_ms_relative_to_first():
    text = '{"timestamp": 1000, "input_length": 5, "output_length": 2}\n\n{"timestamp": 1250.5, "input_length": 7, "output_length": 3}\n'
    trace, reqs = _parse(text, "t.jsonl")
    assert trace.format == "jsonl"
    assert [r.offset_s for r in reqs] == [0.0, 0.2505]
    assert [(r.input_length, r.output_length, r.line) for r in reqs] == [(5, 2, 1), (7, 3, 3)]


@pytest.mark.parametrize(
    "name, first_line, expected",
    [
        ("x.csv", "TIMESTAMP,ContextTokens,GeneratedTokens", "azure"),
        ("x.txt", "\ufeffTIMESTAMP, ContextTokens ,GeneratedTokens", "azure"),
        ("x.csv", "ts_s,rate_rps", "rate"),
        ("x.csv", "ts_s,agg_rate_rps", "rate"),
        ("x.jsonl", '{"timestamp": 0, "input_length": 1, "output_length": 1}', "jsonl"),
        ("x.log", '{"timestamp": 0, "input_length": 1, "output_length": 1}', "jsonl"),
    ],
)
def test_format_detection(name, first_line, expected):
    body = {"azure": "2023-11-16 18:15:46.6805900,1,1\n", "rate": "0,1\n", "jsonl": ""}[expected]
    trace, _ = _parse(first_line + "\n" + body, name, rate_scale=100)
    assert trace.format == expected


def test_unknown_header_names_file_and_suggests_format():
    with pytest.raises(TraceError, match=r"weird\.csv: cannot tell the trace format.*--format"):
        _parse("a,b,c\n1,2,3\n", "weird.csv")


def test_explicit_format_overrides_detection_and_mismatch_is_clear():
    with pytest.raises(TraceError, match=r"t\.csv line 1: header 'ts_s,rate_rps' is not TIMESTAMP"):
        _parse("ts_s,rate_rps\n0,1\n", "t.csv", fmt="azure")


def test_unknown_format_name_rejected(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(AZURE_OK)
    with pytest.raises(TraceError, match="unknown trace format 'parquet'"):
        open_trace(path, "parquet")


# --- malformed lines: fail fast naming file + line, or skip and count ---------------------------

AZ = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,1,1\n"
JS = '{"timestamp": 0, "input_length": 1, "output_length": 1}\n'


@pytest.mark.parametrize(
    "text, name, message",
    [
        (
            AZ + "2023-11-16 18:15:47.0,abc,1\n",
            "trace.csv",
            "trace.csv line 3: ContextTokens 'abc' is not an integer",
        ),
        (
            AZ + "2023-11-16 18:15:47.0,1,-4\n",
            "trace.csv",
            "trace.csv line 3: GeneratedTokens -4 is negative",
        ),
        (AZ + "2023-11-16 18:15:47.0,1\n", "trace.csv", "trace.csv line 3: expected 3 fields"),
        (AZ + "yesterday,1,1\n", "trace.csv", "trace.csv line 3: TIMESTAMP 'yesterday' is not a timestamp"),
        (
            AZ + "2023-11-16 18:15:47.x5,1,1\n",
            "trace.csv",
            "trace.csv line 3: TIMESTAMP '2023-11-16 18:15:47.x5' has a bad fractional",
        ),
        (
            AZ + "2023-11-16 18:15:40.0,1,1\n",
            "trace.csv",
            "trace.csv line 3: TIMESTAMP 2023-11-16 18:15:40.0 is earlier than the line before",
        ),
        (JS + "{not json}\n", "t.jsonl", "t.jsonl line 2: not valid JSON"),
        (JS + "[1, 2]\n", "t.jsonl", "t.jsonl line 2: expected a JSON object"),
        (JS + '{"timestamp": 5, "input_length": 1}\n', "t.jsonl", "t.jsonl line 2: missing output_length"),
        (
            JS + '{"timestamp": "5", "input_length": 1, "output_length": 1}\n',
            "t.jsonl",
            "t.jsonl line 2: timestamp '5' is not a number",
        ),
        (
            JS + '{"timestamp": 5, "input_length": 1.5, "output_length": 1}\n',
            "t.jsonl",
            "t.jsonl line 2: input_length 1.5 is not an integer",
        ),
        (
            JS + '{"timestamp": 5, "input_length": 1, "output_length": -1}\n',
            "t.jsonl",
            "t.jsonl line 2: output_length -1 is negative",
        ),
        (
            '{"timestamp": 9, "input_length": 1, "output_length": 1}\n' + JS,
            "t.jsonl",
            "t.jsonl line 2: timestamp 0 is earlier than the line before",
        ),
        ("ts_s,rate_rps\n0,1\n60,fast\n", "r.csv", "r.csv line 3: rate_rps 'fast' is not a number"),
        ("ts_s,rate_rps\n0,1\n60,-2\n", "r.csv", "r.csv line 3: rate_rps -2.0 is negative"),
        ("ts_s,rate_rps\n0,1\n0,2\n", "r.csv", "r.csv line 3: ts_s 0 is not after the line before"),
        ("ts_s,rate_rps\n0,1\nnan,2\n", "r.csv", "r.csv line 3: ts_s 'nan' is not a finite number"),
        ("ts_s,rate_rps\n0,1,2\n", "r.csv", "r.csv line 2: expected 2 fields"),
    ],
)
def test_malformed_line_fails_fast_naming_file_and_line(text, name, message):
    with pytest.raises(TraceError) as err:
        _parse(text, name, rate_scale=1.0)
    assert str(err.value).startswith(message), str(err.value)


def test_skip_bad_lines_counts_and_keeps_good_ones():
    text = AZ + "2023-11-16 18:15:47.0,abc,1\n2023-11-16 18:15:40.0,1,1\n2023-11-16 18:15:48.0,2,2\n"
    trace, reqs = _parse(text, skip_bad_lines=True)
    assert [(r.line, r.input_length) for r in reqs] == [(2, 1), (5, 2)]
    assert trace.report.skipped_lines == 2
    assert trace.report.examples[0].startswith("trace.csv line 3: ContextTokens 'abc'")
    assert "line 4" in trace.report.examples[1]


@pytest.mark.parametrize(
    "text, name",
    [
        ("", "empty.csv"),
        ("   \n\n", "blank.jsonl"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "header-only.csv"),
        ("ts_s,rate_rps\n0,0\n60,0\n", "zero-rate.csv"),
    ],
)
def test_empty_trace_is_a_clear_error(text, name):
    with pytest.raises(EmptyTrace, match=rf"{name}: the trace (file is empty|holds no requests)"):
        _parse(text, name)


def test_all_lines_bad_and_skipped_is_empty_and_says_so():
    with pytest.raises(EmptyTrace, match=r"holds no requests \(1 bad lines skipped\)"):
        _parse("TIMESTAMP,ContextTokens,GeneratedTokens\nx,1,1\n", skip_bad_lines=True)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(TraceError, match=r"trace file .*nope\.csv does not exist"):
        open_trace(tmp_path / "nope.csv")


def test_limit_stops_reading_before_a_later_bad_line():
    text = AZ + "2023-11-16 18:15:47.0,2,2\n2023-11-16 18:15:48.0,bad,1\n"
    trace, reqs = _parse(text, limit=2)
    assert len(reqs) == 2 and trace.expected_requests == 2
    with pytest.raises(TraceError, match="line 4"):
        _parse(text, limit=3)


# --- rate traces: Poisson arrivals --------------------------------------------------------------


def test_rate_intervals_last_lasts_like_the_one_before():
    intervals = parse_rate_rows(
        ["ts_s,rate_rps\n", "100,1\n", "160,2\n", "220,3\n"], Path("r.csv"), ParseReport()
    )
    assert [(i.start_s, i.duration_s, i.rate_rps, i.line) for i in intervals] == [
        (0.0, 60.0, 1.0, 2),
        (60.0, 60.0, 2.0, 3),
        (120.0, 60.0, 3.0, 4),
    ]
    single = parse_rate_rows(["ts_s,rate_rps\n", "5,4\n"], Path("r.csv"), ParseReport())
    assert single[0].duration_s == 1.0


@pytest.mark.parametrize(
    "rate_rps, duration_s, scale", [(50.0, 100.0, 1.0), (1000.0, 600.0, 0.01), (3.0, 1000.0, 2.0)]
)
def test_poisson_counts_within_statistical_bound(rate_rps, duration_s, scale):
    text = f"ts_s,rate_rps\n0,{rate_rps}\n{duration_s},0\n"
    for seed in range(3):
        _, reqs = _parse(text, "r.csv", rate_scale=scale, seed=seed)
        mean = rate_rps * scale * duration_s
        # 5 standard deviations of a Poisson count: fails by chance ~1 in 3.5 million
        assert abs(len(reqs) - mean) < 5 * math.sqrt(mean), (len(reqs), mean)
        offsets = [r.offset_s for r in reqs]
        assert offsets == sorted(offsets) and 0.0 <= offsets[0] and offsets[-1] < duration_s
        assert {r.kind for r in reqs} == {"classifier"}


def test_poisson_interarrivals_look_exponential():
    _, reqs = _parse("ts_s,rate_rps\n0,200\n50,200\n", "r.csv", seed=7)
    gaps = np.diff([r.offset_s for r in reqs])
    # exponential with mean 1/200 s: coefficient of variation 1
    assert gaps.mean() == pytest.approx(1 / 200, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)


def test_poisson_seeded_and_rate_follows_intervals():
    text = "ts_s,rate_rps\n0,10\n100,100\n200,0\n"
    _, a = _parse(text, "r.csv", seed=1)
    _, b = _parse(text, "r.csv", seed=1)
    _, c = _parse(text, "r.csv", seed=2)
    assert a == b and a != c
    first = sum(1 for r in a if r.offset_s < 100)
    second = sum(1 for r in a if 100 <= r.offset_s < 200)
    assert not any(r.offset_s >= 200 for r in a)  # the last interval has rate 0
    assert 5 < second / first < 20


def test_rate_trace_is_lazy_and_limit_applies():
    # 1e6 rps for 600 s would be 6e8 requests: only a lazy generator survives this
    trace, reqs = _parse("ts_s,rate_rps\n0,1000000\n600,1000000\n", "r.csv", limit=1000)
    assert len(reqs) == 1000 and trace.expected_requests == 1000


def test_negative_rate_scale_rejected():
    with pytest.raises(TraceError, match="rate scale -1"):
        list(poisson_arrivals([], rate_scale=-1))


# --- the real trace files --------------------------------------------------------------------


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"real trace {path} is absent (shared data not mounted)")


@pytest.mark.parametrize("path, rows", [(AZURE_CONV, 19366), (AZURE_CODE, 8819)])
def test_real_azure_traces_parse_completely(path, rows):
    _need(path)
    trace = open_trace(path)
    reqs = list(trace.requests)
    assert trace.format == "azure" and len(reqs) == rows == trace.expected_requests
    assert reqs[0].offset_s == 0.0
    assert all(b.offset_s >= a.offset_s for a, b in itertools.pairwise(reqs))
    assert all(r.input_length > 0 and r.output_length > 0 for r in reqs)
    assert trace.report.skipped_lines == 0


def test_real_azure_conv_first_rows():
    _need(AZURE_CONV)
    reqs = list(open_trace(AZURE_CONV, limit=3).requests)
    assert [(r.offset_s, r.input_length, r.output_length) for r in reqs] == [
        (0.0, 374, 44),
        (4.314579, 396, 109),
        (4.541877, 879, 55),
    ]


def test_real_servegen_rate_trace():
    _need(SERVEGEN_MID)
    trace = open_trace(SERVEGEN_MID, rate_scale=0.001, limit=500, seed=3)
    reqs = list(trace.requests)
    assert trace.format == "rate" and len(reqs) == 500
    # ~1 rps after scaling: 500 arrivals take about 500 s (the first interval is ~987 rps * 0.001)
    assert 300 < reqs[-1].offset_s < 700
