"""`up` refits capacity from telemetry on its own cadence: when, with which SLO, and what a
failing model does to the others."""

from __future__ import annotations

import pytest

from controlplane.capacity.model import SLO_MET_AT_ALL_LOADS, CapacityEstimate, Slo
from controlplane.config import ControlConfig
from controlplane.loop.capacity_refit import CapacityRefit, due, slo_of


@pytest.mark.parametrize(
    ("now_s", "last_s", "every_s", "expected"),
    [
        (100.0, None, 900.0, True),  # never ran
        (100.0, 0.0, 900.0, False),
        (900.0, 0.0, 900.0, True),
        (1e9, None, 0.0, False),  # 0: refits are off
    ],
)
def test_due(now_s, last_s, every_s, expected):
    assert due(now_s, last_s, every_s) is expected


def test_slo_of_chat_is_ttft_and_classifiers_end_to_end():
    c = ControlConfig(slo_p99_ms=250.0, slo_p99_ms_by_model={"chat-lm": 400.0})
    assert slo_of("chat-lm", c) == Slo(ttft_p99_ms=400.0)
    assert slo_of("classifier-small", c) == Slo(p99_ms=250.0)


def test_one_failing_model_does_not_stop_the_others():
    calls = []

    def fit(store, model, slo, now_s, window_s):
        calls.append((model, slo, now_s, window_s))
        if model == "bad":
            raise RuntimeError("store unavailable")
        return CapacityEstimate(42.0, SLO_MET_AT_ALL_LOADS, True, slo, (), ())

    r = CapacityRefit(None, ControlConfig(capacity_refit_s=600.0, capacity_window_s=1800.0), fit=fit)
    assert r.tick(1000.0, ["good", "bad"])
    assert [c[0] for c in calls] == ["bad", "good"] and calls[0][3] == 1800.0
    assert r.fitted == {"good": 42.0} and "bad: store unavailable" in r.last_error
    assert not r.tick(1300.0, ["good"])  # not due yet: nothing fitted
    assert len(calls) == 2
    assert r.tick(1600.0, ["good"]) and len(calls) == 3
