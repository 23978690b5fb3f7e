"""Contextual novelty (nab_context.py): a never-seen step between familiar levels, streaming."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from controlplane.anomaly import nab_context, nab_detector

STEP_S = 300


def _stamps(n: int) -> np.ndarray:
    return np.datetime64("2024-01-01T00:00:00") + (np.arange(n) * STEP_S).astype("timedelta64[s]")


def _spiky(n: int = 5000, seed: int = 3) -> np.ndarray:
    """Bounded noise (classes -1..1) with isolated +-10 spikes (classes +-3) every 37 rows: both
    spike levels are familiar, and never adjacent."""
    x = 100 + np.random.default_rng(seed).uniform(-1, 1, n)
    x[50::37] += 10 * (-1.0) ** np.arange(x[50::37].size)
    return x


def test_an_oscillation_between_familiar_levels_fires_at_its_first_new_step():
    x = _spiky()
    y = x.copy()
    y[4000:4060] = 100 + 10 * (-1.0) ** np.arange(60)  # up, down, up...: each level is familiar
    assert nab_context.transition_events(x).max() == 0
    events = np.flatnonzero(nab_context.transition_events(y))
    assert events.tolist() == [4001]  # the first up->down step; then the refractory period


def test_a_brand_new_extreme_level_is_left_to_the_onset_detector():
    x = _spiky()
    x[3000] += 200  # a class never seen: not "familiar", so no context event
    assert nab_context.transition_events(x).max() == 0
    assert nab_detector.score_series(x, _stamps(x.size))[3000] > 0  # the onset detector has it


def test_nothing_fires_while_learning_and_new_steps_die_out_on_noise():
    x = np.random.default_rng(4).normal(0, 1, 20_000)
    p = nab_context.ContextParams()
    events = np.flatnonzero(nab_context.transition_events(x, p))
    assert np.all(events >= p.learn_rows)
    assert np.all(np.diff(events) >= p.refractory_rows)
    assert events.size <= 5  # a finite alphabet: the bar rises as the series grows


@pytest.mark.parametrize("cut", [1, 299, 1000, 4001, 4500])
def test_prefix_events_equal_the_full_series_events(cut):
    y = _spiky()
    y[4000:4060] = 100 + 10 * (-1.0) ** np.arange(60)
    full = nab_context.transition_events(y)
    np.testing.assert_array_equal(nab_context.transition_events(y[:cut]), full[:cut])
    s_full = nab_detector.score_series(y, _stamps(y.size))
    np.testing.assert_array_equal(nab_detector.score_series(y[:cut], _stamps(cut)), s_full[:cut])


def test_level_classes_are_signed_log_magnitudes():
    spread = 2.0 / 1.349  # IQR of the repeated 9, 10, 11 over the normal IQR
    x = np.r_[np.tile([9.0, 10.0, 11.0], 100), 10.0 + 5 * spread, 10.0 - 20 * spread]
    c = nab_context.level_classes(x, nab_context.ContextParams(reference_rows=300))
    # z = 5 and -20: floor(log2(6)) = 2 and -floor(log2(21)) = -4; the plain rows are class 0
    assert c[-2:].tolist() == [2, -4]
    assert set(c[20:300].tolist()) == {0}
    assert nab_context.level_classes(np.zeros(0)).size == 0


def test_the_detector_combines_both_event_streams_and_can_drop_the_context_part():
    y = _spiky()
    y[4000:4060] = 100 + 10 * (-1.0) ** np.arange(60)
    both = nab_detector.score_series(y, _stamps(y.size))
    onset_only = nab_detector.score_series(y, _stamps(y.size), context=None)
    ctx = nab_detector.DEFAULT_CONTEXT.level * nab_context.transition_events(y, nab_detector.DEFAULT_CONTEXT)
    refractory = nab_detector.DEFAULT_PARAMS.refractory_rows
    on_rows = np.flatnonzero(onset_only > 0)
    for t in np.flatnonzero(ctx > 0):
        after_onset = np.any((on_rows <= t) & (on_rows > t - refractory))
        assert both[t] == (onset_only[t] if after_onset else max(onset_only[t], ctx[t]))
    np.testing.assert_array_equal(both[ctx == 0], onset_only[ctx == 0])  # onset events all kept
    assert np.any(ctx > 0)  # the rule above was exercised
    assert both.min() >= 0 and both.max() <= 1


@pytest.mark.parametrize(
    ("onset_rows", "context_rows", "expected_rows"),
    [
        ([], [500], [500]),  # a context event alone is kept
        ([100], [130], [100]),  # within the refractory after an onset alert: dropped
        ([100], [100 + 60], [100, 160]),  # after it: kept
        ([130], [100], [100, 130]),  # an onset event after a context one is kept (a record)
        ([100, 300], [90, 150, 320, 400], [90, 100, 300, 400]),
    ],
)
def test_combine_drops_context_events_inside_an_open_onset_incident(onset_rows, context_rows, expected_rows):
    p = replace(nab_detector.DEFAULT_PARAMS, refractory_rows=60)
    on = np.zeros(600)
    on[onset_rows] = 0.7
    ctx = np.zeros(600)
    ctx[context_rows] = 1.0
    out = nab_detector.combine_events(on, ctx, p, nab_detector.DEFAULT_CONTEXT)
    assert np.flatnonzero(out).tolist() == expected_rows
    np.testing.assert_array_equal(nab_detector.combine_events(on, None, p, None), on)


@pytest.mark.parametrize("cut", [1600, 2500, 4010, 4100])
def test_combined_prefix_scores_equal_the_full_series_scores(cut):
    y = _spiky()
    y[4000:4060] = 100 + 10 * (-1.0) ** np.arange(60)
    full = nab_detector.score_series(y, _stamps(y.size))
    np.testing.assert_array_equal(nab_detector.score_series(y[:cut], _stamps(cut)), full[:cut])


@pytest.mark.parametrize(
    ("field", "value"),
    [("class_base", 1.0), ("level", 0.0), ("level", 1.5), ("refractory_rows", 0), ("learn_rows", -1)],
)
def test_bad_params_are_rejected_with_the_field_named(field, value):
    with pytest.raises(ValueError, match=field):
        nab_context.ContextParams(**{field: value})
