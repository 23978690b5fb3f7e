"""ActuationResult, timed() and the fakes' shared failure injection."""

from __future__ import annotations

import pytest

from controlplane.actuators.result import ActuationResult, ActuationStatus, FakeBehaviour, result, timed

S = ActuationStatus


@pytest.mark.parametrize(
    ("status", "ok", "retryable", "outcome"),
    [
        (S.OK, True, False, "ok"),
        (S.NOOP, True, False, "skipped"),
        (S.REJECTED, False, False, "failed"),
        (S.UNAVAILABLE, False, True, "failed"),
        (S.FAILED, False, False, "failed"),
    ],
)
def test_status_properties(status, ok, retryable, outcome):
    res = result(status, "m", a=1)
    assert (res.ok, res.retryable, res.outcome) == (ok, retryable, outcome)
    assert res.to_json() == {"status": status.value, "message": "m", "details": {"a": 1}, "duration_s": 0.0}


def test_timed_stamps_duration_and_turns_exceptions_into_failed():
    res = timed("x", lambda: result(S.OK))
    assert res.status is S.OK and res.duration_s >= 0.0

    def boom() -> ActuationResult:
        raise KeyError("nope")

    res = timed("scale", boom)
    assert res.status is S.FAILED
    assert "scale: unexpected KeyError" in res.message
    assert res.details == {"exception": "KeyError"}


def test_fake_behaviour_queue_then_always_then_heal():
    fake = FakeBehaviour()
    fake.fail_next(S.REJECTED, "first", times=2)
    fake.fail_always(S.UNAVAILABLE, "down")
    got = [fake._call("op", i=i) for i in range(3)]
    assert [(r.status, r.message) for r in got] == [
        (S.REJECTED, "first"),
        (S.REJECTED, "first"),
        (S.UNAVAILABLE, "down"),
    ]
    fake.heal()
    assert fake._call("op", i=3) is None
    assert fake.calls == [("op", {"i": i}) for i in range(4)]
    assert fake.operations() == ["op"] * 4
