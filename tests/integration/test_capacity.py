"""Capacity fit on points from a real Triton replica: a short sweep of classifier-small."""

from __future__ import annotations

import numpy as np

from controlplane.capacity.model import Slo, predicted_latency_ms
from controlplane.capacity.profile import SweepOptions, measure_at, profile_replica

# Generous on purpose: this machine is shared, and a 2-core box under test load has p99
# spikes of tens of ms; the point is the method, not this machine's figure.
SLO_MS = 200.0


def test_profile_classifier_small_on_a_real_replica(fleet):
    url = fleet.replicas[0].http_url
    # Short steps and a low ceiling keep this under ~20 s; max_rps is reached without a bad
    # step in the common case (capacity is then a lower bound), which is still a fitted curve.
    opts = SweepOptions(step_s=1.0, start_rps=25, max_rps=200, bisect_steps=1, min_requests=40)
    result = profile_replica(url, "classifier-small", Slo(p99_ms=SLO_MS), opts)
    est = result.estimate

    assert len(result.steps) >= 3 and all(p.requests >= 40 for p in result.steps)
    assert result.kind.device in ("cpu", "gpu") and result.kind.instance_count >= 1
    fitted = np.array(est.curves["p99_ms"].latency_ms)
    assert np.all(np.diff(fitted) >= 0), fitted  # monotone in load
    assert est.capacity_rps > 0, est.to_json()
    assert est.capacity_rps <= opts.max_rps

    # The curve predicts the SLO holds at half the capacity; a real step there agrees.
    check_rps = round(est.capacity_rps / 2, 1)
    assert predicted_latency_ms(est.curves["p99_ms"], check_rps) <= SLO_MS
    point = measure_at(url, "classifier-small", check_rps, opts)
    assert point.error_ratio == 0 and point.p99_ms is not None and point.p99_ms <= SLO_MS, point
