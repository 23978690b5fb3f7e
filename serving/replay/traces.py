"""Request traces: parse trace files into a stream of timed requests (pure; no network).

Formats (auto-detected from the header line, or the extension for JSONL):
- `azure`: Azure LLM inference trace CSV, header `TIMESTAMP,ContextTokens,GeneratedTokens`,
  TIMESTAMP like `2023-11-16 18:15:46.6805900` (7 fractional digits) -> chat requests.
- `jsonl`: one JSON object a line with `timestamp` (ms), `input_length`, `output_length`
  -> chat requests.
- `rate`: CSV `ts_s,rate_rps` (ServeGen's `ts_s,agg_rate_rps` too): a request rate per
  interval; Poisson arrivals at rate * rate_scale inside each interval -> classifier requests.

Decisions (documented in the CLI help and tested):
- Offsets are relative to the first request (the first timestamp / interval start), so a
  replay starts at once whatever the trace's epoch.
- A malformed line fails fast with `<file> line <n>: <what was wrong>`. With
  skip_bad_lines=True such lines are skipped and counted in `ParseReport` instead.
- A timestamp earlier than the previous one is a malformed line (not silently sorted): an
  open-loop replayer sends in file order, and a shuffled trace is more likely a broken file
  than an intended schedule.
- A trace without a single request is an error (`EmptyTrace`).
- Token lengths are integers >= 0; the runner applies caps and floors at send time.
- Rate traces: ts_s strictly increasing, rate >= 0; the last interval lasts as long as the
  one before it (1 s for a one-row trace). Arrivals are generated lazily (a ServeGen day at
  ~1000 rps is far too many to hold), from a seeded numpy Generator: a Poisson count per
  piece of an interval (pieces of <= 4096 expected arrivals), then that many uniform times
  sorted (an exact Poisson process).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

TraceFormat = Literal["azure", "jsonl", "rate"]
FORMATS: tuple[str, ...] = ("azure", "jsonl", "rate")
RequestKind = Literal["chat", "classifier"]

AZURE_HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
RATE_HEADERS = (("ts_s", "rate_rps"), ("ts_s", "agg_rate_rps"))
_MAX_SKIPPED_EXAMPLES = 5
_ARRIVALS_PER_PIECE = 4096  # expected arrivals drawn at once (bounds memory of a busy interval)


class TraceError(ValueError):
    """A trace cannot be used; the message names the file (and line) and what was wrong."""


class EmptyTrace(TraceError):
    """The trace holds no requests."""


@dataclass(frozen=True, slots=True)
class TraceRequest:
    offset_s: float  # arrival time relative to the trace start (seconds, uncompressed)
    kind: RequestKind
    input_length: int = 0  # prompt tokens in the trace (chat only)
    output_length: int = 0  # generated tokens in the trace (chat only)
    line: int = 0  # source line (1-based, header = line 1); for rate traces the interval's line


@dataclass
class ParseReport:
    """What parsing skipped (only with skip_bad_lines)."""

    skipped_lines: int = 0
    examples: list[str] = field(default_factory=list)  # first few messages

    def skip(self, message: str) -> None:
        self.skipped_lines += 1
        if len(self.examples) < _MAX_SKIPPED_EXAMPLES:
            self.examples.append(message)


@dataclass
class Trace:
    """An opened trace: its requests as a (possibly lazy) iterator, plus what is known up front."""

    path: Path
    format: TraceFormat
    requests: Iterator[TraceRequest]
    report: ParseReport
    expected_requests: int | None  # exact for token traces, the Poisson mean for rate traces


# --- format detection ----------------------------------------------------------------------


def _header_fields(line: str) -> tuple[str, ...]:
    return tuple(f.strip() for f in line.strip().lstrip("\ufeff").split(","))


def detect_format(path: Path, first_line: str) -> TraceFormat:
    """Pick the format from the first line (CSV headers) or the extension / a leading `{`."""
    fields = _header_fields(first_line)
    if fields == AZURE_HEADER:
        return "azure"
    if fields in RATE_HEADERS:
        return "rate"
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json") or first_line.lstrip().startswith("{"):
        return "jsonl"
    raise TraceError(
        f"{path.name}: cannot tell the trace format from its first line {first_line.strip()[:80]!r}; "
        f"expected a CSV header {','.join(AZURE_HEADER)} (azure), ts_s,rate_rps or ts_s,agg_rate_rps "
        f"(rate), or JSON lines (jsonl); or pass --format"
    )


# --- field helpers -------------------------------------------------------------------------


def _int_field(name: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{name} {raw!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"{name} {value} is negative")
    return value


def _float_field(name: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"{name} {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} {raw!r} is not a finite number")
    return value


def parse_azure_timestamp_ns(raw: str) -> int:
    """`2023-11-16 18:15:46.6805900` -> integer nanoseconds since 1970 (naive; only differences matter).

    Parsed by hand into an integer: the trace has 7 fractional digits, and a float of epoch
    seconds only resolves ~0.2 us, which would show as noise in every offset.
    """
    text = raw.strip()
    whole, _, frac = text.partition(".")
    try:
        base = datetime.fromisoformat(whole)
    except ValueError:
        raise ValueError(f"TIMESTAMP {raw!r} is not a timestamp like 2023-11-16 18:15:46.6805900") from None
    if frac and not frac.isdigit():
        raise ValueError(f"TIMESTAMP {raw!r} has a bad fractional part")
    delta = base - datetime(1970, 1, 1)
    seconds = delta.days * 86400 + delta.seconds
    return seconds * 1_000_000_000 + int((frac + "000000000")[:9])


def _error(path: Path, line: int, message: str) -> TraceError:
    return TraceError(f"{path.name} line {line}: {message}")


# --- token traces ----------------------------------------------------------------------------


def iter_azure(
    lines: Iterable[str], path: Path, report: ParseReport, skip_bad_lines: bool = False
) -> Iterator[TraceRequest]:
    """Yield chat requests from Azure CSV lines (the header line included)."""
    it = iter(lines)
    header = next(it, None)
    if header is None or _header_fields(header) != AZURE_HEADER:
        raise _error(path, 1, f"header {str(header).strip()[:80]!r} is not {','.join(AZURE_HEADER)}")
    first_ns: int | None = None
    previous_ns = -1 << 80
    for line_no, row in enumerate(csv.reader(it), start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        try:
            if len(row) != 3:
                raise ValueError(
                    f"expected 3 fields (TIMESTAMP,ContextTokens,GeneratedTokens), got {len(row)}"
                )
            ts_ns = parse_azure_timestamp_ns(row[0])
            input_length = _int_field("ContextTokens", row[1])
            output_length = _int_field("GeneratedTokens", row[2])
            if ts_ns < previous_ns:
                raise ValueError(
                    f"TIMESTAMP {row[0].strip()} is earlier than the line before (traces must be in time order)"
                )
        except ValueError as exc:
            if not skip_bad_lines:
                raise _error(path, line_no, str(exc)) from None
            report.skip(f"{path.name} line {line_no}: {exc}")
            continue
        previous_ns = ts_ns
        if first_ns is None:
            first_ns = ts_ns
        yield TraceRequest((ts_ns - first_ns) / 1e9, "chat", input_length, output_length, line_no)


def iter_jsonl(
    lines: Iterable[str], path: Path, report: ParseReport, skip_bad_lines: bool = False
) -> Iterator[TraceRequest]:
    """Yield chat requests from JSON lines `{"timestamp": ms, "input_length": n, "output_length": n}`."""
    first_ms: float | None = None
    previous_ms = -math.inf
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise ValueError("expected a JSON object")
            missing = [k for k in ("timestamp", "input_length", "output_length") if k not in obj]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            ts = obj["timestamp"]
            if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
                raise ValueError(f"timestamp {ts!r} is not a number (ms)")
            lengths = []
            for key in ("input_length", "output_length"):
                value = obj[key]
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{key} {value!r} is not an integer")
                if value < 0:
                    raise ValueError(f"{key} {value} is negative")
                lengths.append(value)
            if ts < previous_ms:
                raise ValueError(
                    f"timestamp {ts} is earlier than the line before (traces must be in time order)"
                )
        except ValueError as exc:
            if not skip_bad_lines:
                raise _error(path, line_no, str(exc)) from None
            report.skip(f"{path.name} line {line_no}: {exc}")
            continue
        previous_ms = ts
        if first_ms is None:
            first_ms = ts
        yield TraceRequest((ts - first_ms) / 1000.0, "chat", lengths[0], lengths[1], line_no)


# --- rate traces ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateInterval:
    start_s: float  # relative to the first interval
    duration_s: float
    rate_rps: float
    line: int


def parse_rate_rows(
    lines: Iterable[str], path: Path, report: ParseReport, skip_bad_lines: bool = False
) -> list[RateInterval]:
    """Validate a whole rate CSV (small: one row per interval) into intervals."""
    it = iter(lines)
    header = next(it, None)
    if header is None or _header_fields(header) not in RATE_HEADERS:
        raise _error(
            path, 1, f"header {str(header).strip()[:80]!r} is not ts_s,rate_rps (or ts_s,agg_rate_rps)"
        )
    rows: list[tuple[float, float, int]] = []
    for line_no, row in enumerate(csv.reader(it), start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        try:
            if len(row) != 2:
                raise ValueError(f"expected 2 fields (ts_s,rate_rps), got {len(row)}")
            ts_s = _float_field("ts_s", row[0])
            rate = _float_field("rate_rps", row[1])
            if rate < 0:
                raise ValueError(f"rate_rps {rate} is negative")
            if rows and ts_s <= rows[-1][0]:
                raise ValueError(
                    f"ts_s {ts_s:g} is not after the line before ({rows[-1][0]:g}); intervals must increase"
                )
        except ValueError as exc:
            if not skip_bad_lines:
                raise _error(path, line_no, str(exc)) from None
            report.skip(f"{path.name} line {line_no}: {exc}")
            continue
        rows.append((ts_s, rate, line_no))
    intervals = []
    for i, (ts_s, rate, line_no) in enumerate(rows):
        if i + 1 < len(rows):
            duration_s = rows[i + 1][0] - ts_s
        else:  # last row: as long as the one before, or 1 s alone
            duration_s = ts_s - rows[i - 1][0] if i > 0 else 1.0
        intervals.append(RateInterval(ts_s - rows[0][0], duration_s, rate, line_no))
    return intervals


def poisson_arrivals(
    intervals: Iterable[RateInterval], rate_scale: float = 1.0, seed: int = 0
) -> Iterator[TraceRequest]:
    """Lazily yield classifier requests: a Poisson process at rate_rps * rate_scale per interval."""
    if rate_scale < 0 or not math.isfinite(rate_scale):
        raise TraceError(f"rate scale {rate_scale} must be a finite number >= 0")
    rng = np.random.default_rng(seed)
    for interval in intervals:
        rate_rps = interval.rate_rps * rate_scale
        if rate_rps <= 0:
            continue
        # Disjoint pieces of a Poisson process are independent Poisson processes, so splitting a
        # busy interval into pieces of bounded expected count keeps memory flat and stays exact.
        pieces = max(1, math.ceil(rate_rps * interval.duration_s / _ARRIVALS_PER_PIECE))
        piece_s = interval.duration_s / pieces
        for piece in range(pieces):
            count = int(rng.poisson(rate_rps * piece_s))
            if count == 0:
                continue
            start_s = interval.start_s + piece * piece_s
            for t in (np.sort(rng.uniform(0.0, piece_s, size=count)) + start_s).tolist():
                yield TraceRequest(t, "classifier", line=interval.line)


def expected_arrivals(intervals: Iterable[RateInterval], rate_scale: float = 1.0) -> float:
    return sum(i.rate_rps * rate_scale * i.duration_s for i in intervals)


# --- opening a trace -------------------------------------------------------------------------


def _peek_nonempty(
    iterator: Iterator[TraceRequest], path: Path, report: ParseReport
) -> Iterator[TraceRequest]:
    first = next(iterator, None)
    if first is None:
        skipped = f" ({report.skipped_lines} bad lines skipped)" if report.skipped_lines else ""
        raise EmptyTrace(f"{path.name}: the trace holds no requests{skipped}")
    return itertools.chain([first], iterator)


def open_trace(
    path: str | Path,
    fmt: str | None = None,
    *,
    limit: int | None = None,
    rate_scale: float = 1.0,
    seed: int = 0,
    skip_bad_lines: bool = False,
) -> Trace:
    """Open a trace file. Token traces are read up to `limit` requests now (so a bad line fails
    before anything is sent); rate traces are validated now and their arrivals drawn lazily."""
    path = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise TraceError(f"unknown trace format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if limit is not None and limit < 1:
        raise TraceError(f"--limit {limit} must be >= 1")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceError(f"trace file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot read trace file {path}: {exc}") from None
    return parse_trace_text(
        text, path, fmt, limit=limit, rate_scale=rate_scale, seed=seed, skip_bad_lines=skip_bad_lines
    )


def parse_trace_text(
    text: str,
    path: Path,
    fmt: str | None = None,
    *,
    limit: int | None = None,
    rate_scale: float = 1.0,
    seed: int = 0,
    skip_bad_lines: bool = False,
) -> Trace:
    """open_trace on text already in memory (`path` only names the file in messages)."""
    lines = io.StringIO(text)
    first_line = text.split("\n", 1)[0]
    if not text.strip():
        raise EmptyTrace(f"{path.name}: the trace file is empty")
    chosen: TraceFormat = fmt or detect_format(path, first_line)  # type: ignore[assignment]
    report = ParseReport()
    if chosen == "rate":
        intervals = parse_rate_rows(lines, path, report, skip_bad_lines)
        expected = expected_arrivals(intervals, rate_scale)
        requests: Iterator[TraceRequest] = poisson_arrivals(intervals, rate_scale, seed)
        if limit is not None:
            requests = itertools.islice(requests, limit)
            expected = min(expected, limit)
        return Trace(path, "rate", _peek_nonempty(requests, path, report), report, round(expected))
    parse = iter_azure if chosen == "azure" else iter_jsonl
    materialised = list(itertools.islice(parse(lines, path, report, skip_bad_lines), limit))
    return Trace(path, chosen, _peek_nonempty(iter(materialised), path, report), report, len(materialised))
