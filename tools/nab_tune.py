"""Tune the NAB onset detector's corpus-wide parameters, and check that they generalise.

Offline only: nothing here runs at detection time. The surprise signals of every file are cached
per signal setting (reference, shift and burst rows), so a grid point costs one event pass and one
scoring pass. Two tables come out:

* the whole dev corpus: the best grid points by the standard profile;
* leave one category out: tune on the other categories, score the held-out one with the
  parameters picked there (threshold re-optimised on the held-out files, as NAB would, and also
  the tuning corpus's threshold, the stricter figure).

Usage (the defaults in nab_detector.py are the --smooth pick):
    python tools/nab_tune.py --data ../shared/data/nab/data \
        --labels ../shared/data/nab/labels/combined_windows.json [--smooth] [--top 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from controlplane.anomaly import nab_bench, nab_context, onset
from controlplane.anomaly.nab_detector import DEFAULT_CONTEXT, DEFAULT_PARAMS
from controlplane.anomaly.nab_io import read_corpus, read_windows

# The grid: few values per knob, all corpus-wide. Signal settings stay at the defaults (each new
# value costs a full signal pass per file).
GRID: dict[str, list] = {
    "history_rows": [1000, 1500],
    "min_novelty": [0.0, 0.05, 0.1, 0.15],
    "refractory_rows": [60, 80, 100],
    "signal_warmup_rows": [0, 150],
    "z_weight": [0.3, 0.7],
}
# The contextual-novelty events (nab_context.py); None in the list: onset events only.
CONTEXT_GRID: dict[str, list] = {
    "reference_rows": [300, 600],
    "min_class_count": [3, 10],
    "learn_rows": [1000, 1500],
}


class Tuner:
    def __init__(self, data_dir: Path, labels: Path) -> None:
        self.corpus = read_corpus(data_dir)
        self.layouts = nab_bench.corpus_layouts(self.corpus, read_windows(labels))
        self._signals: dict[tuple, dict[str, dict[str, np.ndarray]]] = {}
        self._onset: dict[onset.OnsetParams, dict[str, np.ndarray]] = {}
        self._context: dict[nab_context.ContextParams, dict[str, np.ndarray]] = {}
        self._standard_ref: dict[tuple, tuple[float, float]] = {}

    def signals(self, p: onset.OnsetParams) -> dict[str, dict[str, np.ndarray]]:
        key = (p.reference_rows, p.min_reference_rows, p.shift_rows, p.burst_rows, p.rel_spread_floor)
        if key not in self._signals:
            self._signals[key] = {k: onset.signals(s.values, s.timestamps, p) for k, s in self.corpus.items()}
        return self._signals[key]

    def scores(
        self, p: onset.OnsetParams, c: nab_context.ContextParams | None = None
    ) -> dict[str, np.ndarray]:
        """The detector's scores per file, as nab_detector.score_series computes them."""
        if p not in self._onset:
            self._onset[p] = {k: onset.events(sig, p) for k, sig in self.signals(p).items()}
        if c is None:
            return self._onset[p]
        ctx_key = replace(c, level=1.0)  # the level only scales the cached events
        if ctx_key not in self._context:
            self._context[ctx_key] = {
                k: nab_context.transition_events(s.values, ctx_key) for k, s in self.corpus.items()
            }
        return {k: np.maximum(v, c.level * self._context[ctx_key][k]) for k, v in self._onset[p].items()}

    def standard(self, scores: dict[str, np.ndarray], keys: list[str]) -> float:
        """The standard profile's normalised score over `keys` (the ranking key; cheap)."""
        lays = {k: self.layouts[k] for k in keys}
        cost = nab_bench.PROFILES["standard"]
        ref = self._standard_ref.get(tuple(keys))
        if ref is None:
            zeros = {k: np.zeros(lay.n_rows) for k, lay in lays.items()}
            null = nab_bench.optimize_threshold(lays, zeros, cost)[1]
            perfect = cost["tpWeight"] * sum(len(lay.windows) for lay in lays.values())
            ref = self._standard_ref[tuple(keys)] = (null, perfect)
        null, perfect = ref
        raw = nab_bench.optimize_threshold(lays, scores, cost)[1]
        return 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0

    def evaluate(self, scores: dict[str, np.ndarray], keys: list[str], threshold: dict | None = None):
        """Normalised score per profile over `keys`; with `threshold`, use those thresholds."""
        lays = {k: self.layouts[k] for k in keys}
        res = nab_bench.score_corpus(lays, scores)
        if threshold is None:
            return {name: r.normalized for name, r in res.items()}, {n: r.threshold for n, r in res.items()}
        out = {}
        for name, r in res.items():
            cost = nab_bench.PROFILES[name]
            raw = sum(nab_bench.score_file(lays[k], scores[k] >= threshold[name], cost).score for k in keys)
            out[name] = 100.0 * (raw - r.null) / (r.perfect - r.null) if r.perfect != r.null else 0.0
        return out, threshold


def grid_points(
    base: onset.OnsetParams, ctx_base: nab_context.ContextParams
) -> list[tuple[onset.OnsetParams, nab_context.ContextParams | None]]:
    onsets = [
        replace(base, **dict(zip(GRID, vals, strict=True))) for vals in itertools.product(*GRID.values())
    ]
    contexts: list[nab_context.ContextParams | None] = [None]
    contexts += [
        replace(ctx_base, **dict(zip(CONTEXT_GRID, vals, strict=True)))
        for vals in itertools.product(*CONTEXT_GRID.values())
    ]
    return [(p, c) for p in onsets for c in contexts]


def smoothed(values: list[float]) -> list[float]:
    """Mean over each grid point and its +-1 neighbours along every onset knob (grid_points order)."""
    shape = [len(v) for v in GRID.values()]
    n_ctx = len(values) // int(np.prod(shape))
    cube = np.asarray(values, dtype=float).reshape(*shape, n_ctx)
    total = cube.copy()
    count = np.ones_like(cube)
    for axis in range(len(shape)):
        for step in (-1, 1):
            shifted = np.full_like(cube, np.nan)
            src = [slice(None)] * cube.ndim
            dst = [slice(None)] * cube.ndim
            src[axis] = slice(max(0, -step), cube.shape[axis] - max(0, step))
            dst[axis] = slice(max(0, step), cube.shape[axis] - max(0, -step))
            shifted[tuple(dst)] = cube[tuple(src)]
            total += np.nan_to_num(shifted)
            count += ~np.isnan(shifted)
    return (total / count).ravel().tolist()


def describe(p: onset.OnsetParams, c: nab_context.ContextParams | None) -> dict:
    out = {k: getattr(p, k) for k in GRID}
    out["context"] = None if c is None else {k: getattr(c, k) for k in CONTEXT_GRID}
    return out


def category(key: str) -> str:
    return key.split("/", 1)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None, help="write both tables here")
    ap.add_argument("--smooth", action="store_true", help="rank grid points by their neighbourhood mean")
    args = ap.parse_args(argv)

    tuner = Tuner(args.data, args.labels)
    keys = list(tuner.corpus)
    points = grid_points(DEFAULT_PARAMS, DEFAULT_CONTEXT)
    per_point = []  # ((onset params, context params), scores per file)
    for i, (p, c) in enumerate(points):
        per_point.append(((p, c), tuner.scores(p, c)))
        if (i + 1) % 100 == 0 or i + 1 == len(points):
            print(f"{i + 1}/{len(points)} grid points", file=sys.stderr)

    def best_on(subset: list[str], top: int = 1) -> list[tuple]:
        """(standard, params, scores, all profiles, thresholds) of the `top` grid points, best first.

        With --smooth, a point is ranked by the mean standard score of itself and its neighbours
        (one step along each onset knob, same context setting): a lone peak on this jagged
        surface is usually one event that happened to land in a window.
        """
        raw = [tuner.standard(sc, subset) for _, sc in per_point]
        key = smoothed(raw) if args.smooth else raw
        order = sorted(range(len(per_point)), key=lambda i: -key[i])[:top]
        out = []
        for pc, sc in (per_point[i] for i in order):
            norm, thr = tuner.evaluate(sc, subset)
            out.append((norm["standard"], pc, sc, norm, thr))
        return out

    full = best_on(keys, top=args.top)
    print("== whole dev corpus: best grid points (standard, reward_low_FP, reward_low_FN) ==")
    for s, pc, _, norm, _ in full[: args.top]:
        print(
            f"{s:6.2f} {norm['reward_low_FP_rate']:6.2f} {norm['reward_low_FN_rate']:6.2f}  {describe(*pc)}"
        )
    default_scores = tuner.scores(DEFAULT_PARAMS, DEFAULT_CONTEXT)
    default_norm, _ = tuner.evaluate(default_scores, keys)
    print("default params:", {k: round(v, 2) for k, v in default_norm.items()})

    print("== leave one category out (tune on the rest, score the held-out category) ==")
    loco = []
    cats = sorted({category(k) for k in keys})
    pooled: dict[str, np.ndarray] = {}  # each file scored with the parameters tuned without its category
    for cat in cats:
        held = [k for k in keys if category(k) == cat]
        train = [k for k in keys if category(k) != cat]
        _, pc, sc, train_norm, thr = best_on(train)[0]
        for k in held:
            pooled[k] = sc[k]
        own, _ = tuner.evaluate(sc, held)
        fixed, _ = tuner.evaluate(sc, held, threshold=thr)
        dflt, _ = tuner.evaluate(default_scores, held)
        n_windows = sum(len(tuner.layouts[k].windows) for k in held)
        raw_fp = None
        if n_windows == 0:  # no windows: a normalised score is undefined, report the FP cost
            cost = nab_bench.PROFILES["standard"]
            raw_fp = sum(
                nab_bench.score_file(tuner.layouts[k], sc[k] >= thr["standard"], cost).score for k in held
            )
        row = {
            "held_out": cat,
            "files": len(held),
            "windows": n_windows,
            "picked": describe(*pc),
            "train_standard": round(train_norm["standard"], 2),
            "held_out_own_threshold": {k: round(v, 2) for k, v in own.items()},
            "held_out_train_threshold": {k: round(v, 2) for k, v in fixed.items()},
            "held_out_default_params": {k: round(v, 2) for k, v in dflt.items()},
            "held_out_raw_standard_if_no_windows": raw_fp,
        }
        loco.append(row)
        print(json.dumps(row))
    pooled_norm, _ = tuner.evaluate(pooled, keys)
    print("pooled held-out scores (all 34 files, one threshold per profile):", pooled_norm)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "grid": GRID,
                    "context_grid": CONTEXT_GRID,
                    "full_top": [
                        {"params": describe(*pc), "scores": norm} for _, pc, _, norm, _ in full[: args.top]
                    ],
                    "default": {
                        "params": asdict(DEFAULT_PARAMS),
                        "context": asdict(DEFAULT_CONTEXT),
                        "scores": default_norm,
                    },
                    "leave_one_category_out": loco,
                    "pooled_held_out": pooled_norm,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
