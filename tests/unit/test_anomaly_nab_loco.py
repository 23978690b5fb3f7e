"""The leave-one-category-out check (nab_loco.py): grid, neighbour smoothing, held-out pooling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from controlplane.anomaly import nab_detector, nab_loco


@pytest.mark.parametrize(
    ("onset_grid", "context_grid", "n_points"),
    [
        ({"refractory_rows": [60, 80]}, {}, 2 * 2),  # an empty context grid: off, or the default
        ({"refractory_rows": [60, 80], "history_rows": [1000, 1500]}, {"learn_rows": [1000, 1500]}, 4 * 3),
        (nab_detector.TUNED_GRID, nab_detector.TUNED_CONTEXT_GRID, 36 * 9),
    ],
)
def test_grid_points_cover_every_pair_onset_knobs_outermost(onset_grid, context_grid, n_points):
    points = nab_loco.grid_points(onset_grid, context_grid)
    assert len(points) == n_points
    n_ctx = n_points // int(np.prod([len(v) for v in onset_grid.values()]))
    assert points[0][1] is None and all(c is not None for _, c in points[1:n_ctx])
    first_knob, values = next(iter(onset_grid.items()))
    assert getattr(points[0][0], first_knob) == values[0]
    assert getattr(points[-1][0], first_knob) == values[-1]


def test_the_defaults_are_a_point_of_the_tuned_grid():
    for knob, values in nab_detector.TUNED_GRID.items():
        assert getattr(nab_detector.DEFAULT_PARAMS, knob) in values, knob
    for knob, values in nab_detector.TUNED_CONTEXT_GRID.items():
        assert getattr(nab_detector.DEFAULT_CONTEXT, knob) in values, knob


@pytest.mark.parametrize(
    ("values", "shape", "expected"),
    [
        ([0.0, 3.0, 6.0], [3], [1.5, 3.0, 4.5]),  # ends average with their one neighbour
        ([0.0, 3.0, 6.0, 9.0], [2], [3.0, 6.0, 3.0, 6.0]),  # two context settings (columns) not mixed
        ([0.0, 1.0, 2.0, 3.0], [2, 2], [1.0, 4.0 / 3, 5.0 / 3, 2.0]),  # 2x2: self + two neighbours
    ],
)
def test_smoothing_averages_neighbours_along_onset_knobs_only(values, shape, expected):
    np.testing.assert_allclose(nab_loco.smoothed(values, shape), expected)


@pytest.mark.parametrize(("key", "cat"), [("realAdExchange/x.csv", "realAdExchange"), ("a/b/c.csv", "a")])
def test_category(key, cat):
    assert nab_loco.category(key) == cat


def _write_file(path, values, start="2024-01-01T00:00:00", step_s=300):
    path.parent.mkdir(parents=True, exist_ok=True)
    stamps = np.datetime64(start) + (np.arange(values.size) * step_s).astype("timedelta64[s]")
    lines = ["timestamp,value"] + [
        f"{str(t).replace('T', ' ')},{v!r}" for t, v in zip(stamps, values, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return stamps


def test_loco_pools_held_out_scores_of_every_category(tmp_path):
    rng = np.random.default_rng(0)
    windows = {}
    for cat, spike_row in (("catA", 1500), ("catB", 1700)):
        x = 100 + rng.normal(0, 1, 2400)
        x[spike_row:] += 25  # a level shift: found at its onset
        stamps = _write_file(tmp_path / "data" / cat / "s.csv", x)
        lo, hi = stamps[spike_row - 60], stamps[spike_row + 60]
        windows[f"{cat}/s.csv"] = [[str(lo).replace("T", " "), str(hi).replace("T", " ")]]
    (tmp_path / "labels.json").write_text(json.dumps(windows))
    data = nab_loco.Corpus.load(tmp_path / "data", tmp_path / "labels.json")
    report = nab_loco.leave_one_category_out(
        data, onset_grid={"refractory_rows": [60, 80]}, context_grid={}, smooth=False
    )
    assert [r["held_out"] for r in report["per_category"]] == ["catA", "catB"]
    assert all(r["picked"]["refractory_rows"] in (60, 80) for r in report["per_category"])
    # Both shifts are found early in their windows, whatever the pick: close to a perfect score.
    assert report["pooled_held_out"]["standard"] > 80
    assert report["whole_corpus"]["standard"] == pytest.approx(
        report["pooled_held_out"]["standard"], abs=1e-9
    )
    # The cached scores are the detector's own.
    s = data.corpus["catA/s.csv"]
    np.testing.assert_array_equal(
        data.scores(nab_detector.DEFAULT_PARAMS, nab_detector.DEFAULT_CONTEXT)["catA/s.csv"],
        nab_detector.score_series(s.values, s.timestamps),
    )
