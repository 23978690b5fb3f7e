"""Leave-one-category-out (LOCO) check of the NAB detector's tuning: does it carry over?

For each NAB category, the detector's corpus-wide parameters are picked on the other categories
(a grid, each point ranked by the standard profile, optionally by the mean over its grid
neighbours), and the held-out category's files are scored with that pick. The held-out scores of
all files are then pooled and scored together (one threshold per profile, as NAB does on a
corpus), which is the figure to compare: a detector whose pick swings with the training set, or
whose gain on the whole corpus came from tuning, loses here.

The grid is the detector's own knobs (nab_detector.TUNED_GRID / TUNED_CONTEXT_GRID); a knob
that the detector no longer has (one set by NAB's threshold instead) is simply not in it.

    python -m controlplane.anomaly.nab_loco --data ../shared/data/nab/data \
        --labels ../shared/data/nab/labels/combined_windows.json [--no-smooth] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from controlplane.anomaly import nab_bench, nab_context, nab_detector, onset
from controlplane.anomaly.nab_io import read_corpus, read_windows

Point = tuple[onset.OnsetParams, nab_context.ContextParams | None]


def grid_points(
    onset_grid: dict[str, list],
    context_grid: dict[str, list],
    base: onset.OnsetParams = nab_detector.DEFAULT_PARAMS,
    ctx_base: nab_context.ContextParams = nab_detector.DEFAULT_CONTEXT,
) -> list[Point]:
    """Every (onset, context) pair, onset knobs outermost; context None (off) first in each block."""
    onsets = [
        replace(base, **dict(zip(onset_grid, v, strict=True)))
        for v in itertools.product(*onset_grid.values())
    ]
    contexts: list[nab_context.ContextParams | None] = [None]
    contexts += [
        replace(ctx_base, **dict(zip(context_grid, v, strict=True)))
        for v in itertools.product(*context_grid.values())
    ]
    return [(p, c) for p in onsets for c in contexts]


def smoothed(values: list[float], onset_shape: list[int]) -> np.ndarray:
    """Mean of each grid point and its +-1 neighbours along every onset knob (same context)."""
    cube = np.asarray(values, dtype=float).reshape(*onset_shape, -1)
    total, count = cube.copy(), np.ones_like(cube)
    for axis in range(len(onset_shape)):
        for step in (-1, 1):
            shifted = np.full_like(cube, np.nan)
            src, dst = [slice(None)] * cube.ndim, [slice(None)] * cube.ndim
            src[axis] = slice(max(0, -step), cube.shape[axis] - max(0, step))
            dst[axis] = slice(max(0, step), cube.shape[axis] - max(0, -step))
            shifted[tuple(dst)] = cube[tuple(src)]
            total += np.nan_to_num(shifted)
            count += ~np.isnan(shifted)
    return (total / count).ravel()


def category(key: str) -> str:
    return key.split("/", 1)[0]


@dataclass
class Corpus:
    """The dev corpus with per-setting caches: a grid point costs one event pass and one scoring."""

    corpus: dict
    layouts: dict
    echo_tolerance_day: float | None = nab_detector.ECHO_TOLERANCE_DAY

    def __post_init__(self) -> None:
        self.day_rows = {
            k: onset.rows_per_day(s.timestamps[: onset.PERIOD_ROWS]) for k, s in self.corpus.items()
        }
        self._signals: dict = {}
        self._onset: dict = {}
        self._context: dict = {}

    @classmethod
    def load(cls, data_dir: Path, labels: Path) -> Corpus:
        corpus = read_corpus(Path(data_dir))
        return cls(corpus, nab_bench.corpus_layouts(corpus, read_windows(Path(labels))))

    def scores(self, p: onset.OnsetParams, c: nab_context.ContextParams | None) -> dict[str, np.ndarray]:
        """Per-file scores exactly as nab_detector.score_series computes them."""
        sig_key = (p.reference_rows, p.min_reference_rows, p.shift_rows, p.burst_rows, p.rel_spread_floor)
        if sig_key not in self._signals:
            self._signals[sig_key] = {
                k: onset.signals(s.values, s.timestamps, p) for k, s in self.corpus.items()
            }
        if p not in self._onset:
            self._onset[p] = {k: onset.events(sig, p) for k, sig in self._signals[sig_key].items()}
        if c is not None and c not in self._context:
            self._context[c] = {k: nab_context.transition_events(s.values, c) for k, s in self.corpus.items()}
        return {
            k: nab_detector.drop_echoes(
                nab_detector.combine_events(ev, None if c is None else self._context[c][k], p, c),
                self._signals[sig_key][k]["value"],
                self.day_rows[k],
                self.echo_tolerance_day,
            )
            for k, ev in self._onset[p].items()
        }

    def normalized(self, scores: dict[str, np.ndarray], keys: list[str]) -> dict[str, float]:
        res = nab_bench.score_corpus({k: self.layouts[k] for k in keys}, scores)
        return {name: r.normalized for name, r in res.items()}


def leave_one_category_out(
    data: Corpus,
    onset_grid: dict[str, list] | None = None,
    context_grid: dict[str, list] | None = None,
    smooth: bool = True,
) -> dict:
    """Per held-out category: the pick made without it; and the pooled held-out profile scores."""
    onset_grid = nab_detector.TUNED_GRID if onset_grid is None else onset_grid
    context_grid = nab_detector.TUNED_CONTEXT_GRID if context_grid is None else context_grid
    points = grid_points(onset_grid, context_grid)
    shape = [len(v) for v in onset_grid.values()]
    per_point = [data.scores(p, c) for p, c in points]
    keys = list(data.corpus)
    cost = nab_bench.PROFILES["standard"]

    def pick(subset: list[str]) -> int:
        lays = {k: data.layouts[k] for k in subset}
        # The raw total ranks points as the normalised score does (same null and perfect).
        raw = [nab_bench.optimize_threshold(lays, sc, cost)[1] for sc in per_point]
        rank = smoothed(raw, shape) if smooth else np.asarray(raw)
        return int(np.argmax(rank))

    rows, pooled = [], {}
    for cat in sorted({category(k) for k in keys}):
        held = [k for k in keys if category(k) == cat]
        best = pick([k for k in keys if category(k) != cat])
        pooled.update({k: per_point[best][k] for k in held})
        rows.append(
            {"held_out": cat, "files": len(held), "picked": describe(*points[best], onset_grid, context_grid)}
        )
    whole = pick(keys)
    return {
        "per_category": rows,
        "pooled_held_out": data.normalized(pooled, keys),
        "whole_corpus_pick": describe(*points[whole], onset_grid, context_grid),
        "whole_corpus": data.normalized(per_point[whole], keys),
        "grid_mean_standard": float(np.mean([data.normalized(sc, keys)["standard"] for sc in per_point])),
    }


def describe(p, c, onset_grid, context_grid) -> dict:
    out = {k: getattr(p, k) for k in onset_grid}
    out["context"] = None if c is None else {k: getattr(c, k) for k in context_grid}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--no-smooth", action="store_true", help="rank grid points by their own score")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    report = leave_one_category_out(Corpus.load(args.data, args.labels), smooth=not args.no_smooth)
    text = json.dumps(report, indent=1, default=float)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
