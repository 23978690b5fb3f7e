"""A fast, strict parser of the Prometheus text exposition format, with per-target series identity.

Speed comes from never re-parsing what is already known: the text before a sample's value
(`name{labels}`) is the same scrape after scrape, so it maps straight to a series index in the
target's `SeriesTable` and only the value is parsed. A new prefix takes the slow, strict path.

Strict: a malformed line, a NaN/Inf value, a series seen twice in one scrape and an over-long
label value are rejected and counted by reason; the rest of the scrape is kept. A per-target
series limit guards against label explosions (new series beyond it are dropped and counted).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collectors.families import family_of, scale_for
from collectors.strings import STRINGS

# Reasons a sample is rejected (the `reason` label of the rejection counters).
MALFORMED = "malformed"
NAN_OR_INF = "nan_or_inf"
DUPLICATE = "duplicate"
LABEL_TOO_LONG = "label_too_long"
SERIES_LIMIT = "series_limit"
REASONS = (MALFORMED, NAN_OR_INF, DUPLICATE, LABEL_TOO_LONG, SERIES_LIMIT)

_KINDS = {
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
    "summary": "summary",
    "untyped": "untyped",
    "gaugehistogram": "histogram",
    "unknown": "untyped",
}
_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|(?=\}))')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_ESCAPE_RE = re.compile(r"\\[\\\"n]")
_BAD_ESCAPE_RE = re.compile(r"\\[^\\\"n]")
LABELS_TYPE = pa.map_(pa.string(), pa.string())
_NEG = -1  # prefix rejected for a reason that will hold next scrape too (cached as a negative code)


def series_id(target: str, metric: str, labels: dict[str, str]) -> int:
    """Stable 64-bit id of (target, metric, sorted labels): blake2b, 8 bytes, little endian."""
    h = hashlib.blake2b(digest_size=8)
    h.update(target.encode())
    h.update(b"\x00")
    h.update(metric.encode())
    for k in sorted(labels):
        h.update(b"\x00")
        h.update(k.encode())
        h.update(b"=")
        h.update(labels[k].encode())
    return int.from_bytes(h.digest(), "little")


class SeriesTable:
    """Identity of the series of one target. Indices stay valid for the table's lifetime; compaction
    builds a new table, so chunks that still reference the old one stay correct."""

    def __init__(self, target: str, limit: int):
        self.target = target
        self.limit = limit
        self.metrics: list[str] = []
        self.models: list[str] = []
        self.labels: list[dict[str, str]] = []  # without `model`; shared, never mutate
        self.kinds: list[str] = []
        self.ids: list[int] = []
        self.scales: list[float] = []
        self.by_key: dict[tuple, int] = {}
        self.codes: list[tuple[int, int, int]] = []  # interned (metric, model, kind) per series
        self._np: dict[str, np.ndarray] | None = None
        self._np_len = -1
        self._labels_arrow: pa.Array | None = None
        self._labels_arrow_len = -1
        self.any_scaled = False

    def __len__(self) -> int:
        return len(self.metrics)

    def index(self, metric: str, labels: dict[str, str], kind: str, force: bool = False) -> int | None:
        """Index of the series, adding it if new; None when the table is full (unless `force`)."""
        key = (metric, tuple(sorted(labels.items())))
        i = self.by_key.get(key)
        if i is not None:
            return i
        if len(self.metrics) >= self.limit and not force:
            return None
        i = len(self.metrics)
        self.by_key[key] = i
        rest = {k: v for k, v in labels.items() if k != "model"}
        self.metrics.append(metric)
        # Triton labels models `model`; vLLM-style token metrics use `model_name` (kept in labels too).
        self.models.append(labels.get("model") or labels.get("model_name", ""))
        self.labels.append(rest)
        self.kinds.append(kind)
        self.ids.append(series_id(self.target, metric, labels))
        self.codes.append((STRINGS.code(metric), STRINGS.code(self.models[-1]), STRINGS.code(kind)))
        scale = scale_for(metric)
        self.scales.append(scale)
        self.any_scaled = self.any_scaled or scale != 1.0
        return i

    def arrays(self) -> dict[str, np.ndarray]:
        """Per-series columns as numpy arrays (rebuilt only when series were added)."""
        n = len(self.metrics)
        if self._np is None or self._np_len != n:

            def obj(values: list) -> np.ndarray:
                a = np.empty(n, dtype=object)
                a[:] = values[:n]
                return a

            codes = np.array(self.codes[:n], dtype=np.int32).reshape(n, 3)
            self._np = {
                "metric_code": codes[:, 0].copy(),
                "model_code": codes[:, 1].copy(),
                "kind_code": codes[:, 2].copy(),
                "metric": obj(self.metrics),
                "model": obj(self.models),
                "labels": obj(self.labels),
                "kind": obj(self.kinds),
                "series_id": np.array(self.ids, dtype=np.uint64),
                "scale": np.array(self.scales, dtype=np.float64),
            }
            self._np_len = n
        return self._np

    def labels_arrow(self) -> pa.Array:
        """Per-series labels as an Arrow Map array (rebuilt only when series were added)."""
        n = len(self.labels)
        if self._labels_arrow is None or self._labels_arrow_len != n:
            self._labels_arrow = pa.array([list(d.items()) for d in self.labels[:n]], LABELS_TYPE)
            self._labels_arrow_len = n
        return self._labels_arrow


@dataclass
class ParsedScrape:
    """One scrape's accepted samples as (series index, value) arrays against `table`."""

    table: SeriesTable
    idx: np.ndarray  # int64 series indices
    values: np.ndarray  # float64, units already normalised
    samples_seen: int  # sample lines in the text (accepted + rejected)
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict[str, str] = field(default_factory=dict)  # reason -> first offending line (for logs)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def _unescape(value: str) -> str:
    return _ESCAPE_RE.sub(lambda m: _UNESCAPE[m.group(0)], value) if "\\" in value else value


class ExpositionParser:
    """Parses successive scrapes of ONE target, reusing series identity between them."""

    def __init__(
        self,
        target: str,
        series_limit: int = 20000,
        max_label_length_bytes: int = 1024,
        compact_idle_scrapes: int = 10,
    ):
        self.target = target
        self.series_limit = series_limit
        self.max_label_length_bytes = max_label_length_bytes
        self.compact_idle_scrapes = compact_idle_scrapes
        self.table = SeriesTable(target, series_limit)
        self._prefix: dict[str, int] = {}  # "name{labels}" -> series index, or _NEG - reason code
        self._neg_reasons: list[str] = [SERIES_LIMIT, LABEL_TOO_LONG]
        self._seen: list[int] = []  # scrape generation that last saw each series
        self._gen = 0
        self._hit_limit = False
        self._template: _Template | None = None
        self._template_gen = 0  # last scrape served by the template (its series count as seen)

    # --- the hot path ------------------------------------------------------------------
    def parse(self, text: str) -> ParsedScrape:
        if self._hit_limit:
            self._compact()
        self._gen += 1
        lines = text.split("\n")
        samples = [line for line in lines if line and line[0] != "#"]
        t = self._template
        if t is not None and len(samples) == len(t.prefixes):
            # Same series in the same order as last scrape (the usual case): only values change.
            prefixes, _, vals = zip(*map(str.rpartition, samples, _SPACES), strict=True)
            if prefixes == t.prefixes:
                try:
                    va = _to_float64(vals, t.keep_pos)
                except pa.ArrowInvalid:  # a value Arrow will not parse: let the strict path say which
                    va = None
                if va is not None:
                    self._template_gen = self._gen
                    return self._finish(t.idx, va, len(samples), Counter(t.rejected), dict(t.examples))
        return self._parse_lines(lines)

    def _parse_lines(self, lines: list[str]) -> ParsedScrape:
        """Line-by-line parse; remembers the scrape's shape as the template for the next one."""
        gen = self._gen
        seen = self._seen
        prefix_get = self._prefix.get
        types: dict[str, str] = {}
        idx: list[int] = []
        vals: list[float] = []
        keep_pos: list[int] = []
        prefixes: list[str] = []
        rejected: Counter = Counter()
        examples: dict[str, str] = {}
        cacheable = True
        pos = -1
        for line in lines:
            if not line:
                continue
            if line[0] == "#":
                if line.startswith("# TYPE "):
                    parts = line.split()
                    if len(parts) == 4:
                        types[parts[2]] = _KINDS.get(parts[3], "untyped")
                continue
            pos += 1
            prefix, _, val = line.rpartition(" ")
            prefixes.append(prefix)
            i = prefix_get(prefix)
            if i is None:
                i, val, reason = self._slow(line, types)
                if reason is not None:
                    rejected[reason] += 1
                    examples.setdefault(reason, line[:200])
                    cacheable = cacheable and reason != MALFORMED
                    continue
                cacheable = cacheable and self._prefix.get(prefix) == i
            elif i < 0:
                reason = self._neg_reasons[_NEG - i]
                rejected[reason] += 1
                continue
            if seen[i] == gen:
                rejected[DUPLICATE] += 1
                examples.setdefault(DUPLICATE, line[:200])
                continue
            try:
                v = float(val)
            except ValueError:
                rejected[MALFORMED] += 1
                examples.setdefault(MALFORMED, line[:200])
                cacheable = False
                continue
            seen[i] = gen
            vals.append(v)
            idx.append(i)
            keep_pos.append(pos)
        ia = np.array(idx, dtype=np.int64)
        va = np.array(vals, dtype=np.float64)
        # Only a scrape whose every line is understood from its prefix alone may serve as template.
        self._template = (
            _Template(tuple(prefixes), ia, np.array(keep_pos, dtype=np.int64), dict(rejected), dict(examples))
            if cacheable
            else None
        )
        self._template_gen = gen
        return self._finish(ia, va, pos + 1, rejected, examples)

    def _finish(
        self, ia: np.ndarray, va: np.ndarray, n_samples: int, rejected: Counter, examples: dict[str, str]
    ) -> ParsedScrape:
        finite = np.isfinite(va)
        if not finite.all():
            rejected[NAN_OR_INF] += int((~finite).sum())
            examples.setdefault(NAN_OR_INF, "a value is NaN or +-Inf")
            ia, va = ia[finite], va[finite]
        if rejected.get(SERIES_LIMIT):
            self._hit_limit = True  # next scrape first forgets idle series to make room
        table = self.table
        if table.any_scaled and len(ia):
            va = va * table.arrays()["scale"][ia]
        return ParsedScrape(table, ia, va, n_samples, rejected, examples)

    # --- the slow, strict path for a prefix not seen before -------------------------------
    def _slow(self, line: str, types: dict[str, str]) -> tuple[int, str, str | None]:
        """Parse a whole sample line; returns (series index, value text, rejection reason)."""
        m = _NAME_RE.match(line)
        if m is None:
            return -1, "", MALFORMED
        name = m.group(0)
        pos = m.end()
        labels: dict[str, str] = {}
        if pos < len(line) and line[pos] == "{":
            pos += 1
            while True:
                while pos < len(line) and line[pos] in " \t":
                    pos += 1
                if pos < len(line) and line[pos] == "}":
                    pos += 1
                    break
                lm = _LABEL_RE.match(line, pos)
                if lm is None:
                    return -1, "", MALFORMED
                key, raw = lm.group(1), lm.group(2)
                if key in labels or _BAD_ESCAPE_RE.search(raw.replace("\\\\", "")):
                    return -1, "", MALFORMED
                labels[key] = _unescape(raw)
                pos = lm.end()
                if lm.group(3) == "":  # lookahead matched the closing brace
                    continue
        rest = line[pos:].split()
        if not rest or len(rest) > 2 or (pos < len(line) and line[pos] not in " \t"):
            return -1, "", MALFORMED
        if len(rest) == 2:  # a timestamp (ms); Triton never sends one: accepted, ignored, not cached
            try:
                int(rest[1])
            except ValueError:
                return -1, "", MALFORMED
        val = rest[0]
        try:
            float(val)
        except ValueError:
            return -1, "", MALFORMED
        cache_key, _, _ = line.rpartition(" ") if len(rest) == 1 else (None, None, None)
        cacheable = cache_key is not None and len(self._prefix) < 4 * self.series_limit + 1000
        limit = self.max_label_length_bytes
        for v in labels.values():
            if len(v) * 4 > limit and len(v.encode()) > limit:
                if cacheable:
                    self._prefix[cache_key] = _NEG - 1
                return -1, val, LABEL_TOO_LONG
        _, kind = family_of(name, types)
        before = len(self.table)
        i = self.table.index(name, labels, kind)
        if i is None:
            if cacheable:
                self._prefix[cache_key] = _NEG
            return -1, val, SERIES_LIMIT
        if len(self.table) > before:
            self._seen.append(0)
        if cacheable:
            self._prefix[cache_key] = i
        return i, val, None

    # --- housekeeping ---------------------------------------------------------------------
    def synthetic(self, metric: str) -> int:
        """Index of a label-less gauge written by the collector itself (up, scrape_duration_seconds...)."""
        i = self.table.index(metric, {}, "gauge", force=True)
        while len(self._seen) < len(self.table):
            self._seen.append(0)
        return i

    def labelled(self, metric: str, labels: dict[str, str], kind: str) -> int:
        """Index of a collector-written series with labels (statistics API, rejection reasons)."""
        i = self.table.index(metric, labels, kind, force=True)
        while len(self._seen) < len(self.table):
            self._seen.append(0)
        return i

    def _compact(self) -> None:
        """The table hit its limit: forget series idle for a while so live ones can take their place."""
        self._hit_limit = False
        old = self.table
        if self._template is not None:
            for i in self._template.idx.tolist():
                self._seen[i] = max(self._seen[i], self._template_gen)
        keep = [
            i
            for i in range(len(old))
            if self._gen - self._seen[i] < self.compact_idle_scrapes
            or old.metrics[i] in _SYNTHETIC
            or old.metrics[i].startswith("triton_stats_")
        ]
        if len(keep) == len(old):
            return
        new = SeriesTable(self.target, self.series_limit)
        remap: dict[int, int] = {}
        for i in keep:
            labels = dict(old.labels[i])
            if old.models[i] and "model_name" not in labels:
                labels["model"] = old.models[i]
            remap[i] = new.index(old.metrics[i], labels, old.kinds[i], force=True)
        old_seen = self._seen
        self._seen = [0] * len(new)
        for i, j in remap.items():
            self._seen[j] = old_seen[i]
        self._template = None
        self._prefix = {p: remap[i] for p, i in self._prefix.items() if i in remap}
        self.table = new

    @property
    def cached_prefixes(self) -> int:
        return len(self._prefix)


@dataclass(frozen=True)
class _Template:
    prefixes: tuple[str, ...]  # every sample line's text before its value, in order
    idx: np.ndarray  # series index of each accepted line
    keep_pos: np.ndarray  # position (among sample lines) of each accepted line
    rejected: dict[str, int]  # rejections that follow from the prefixes alone
    examples: dict[str, str]


def _to_float64(vals: tuple[str, ...], keep_pos: np.ndarray) -> np.ndarray:
    """Parse the kept value strings in C++ (Arrow) instead of float() per line."""
    arr = pa.array(vals, pa.string())
    if len(keep_pos) != len(vals):
        arr = arr.take(pa.array(keep_pos))
    return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)


_SPACES = repeat(" ")
_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_rejected"}
