"""A counter of error responses, published through Triton's custom metrics API.

Triton counts a python-backend response that carries an error as a *success*
(triton-inference-server/server#7713): nv_inference_request_failure stays at 0 while clients get
HTTP 500. So each model counts its own error responses; collectors add this counter to the
failures and take it out of the successes. Labelled per instance (`engine`), like the vLLM
metrics, because two instances' counters must not overwrite each other.
"""

from __future__ import annotations

ERROR_RESPONSES = "fleetpilot_model_error_responses_total"


class ErrorCounter:
    def __init__(self, pb_utils, model: str, engine: str) -> None:
        fam = pb_utils.MetricFamily
        self.family = fam(ERROR_RESPONSES, "Responses this model answered with an error.", kind=fam.COUNTER)
        self.metric = self.family.Metric(labels={"model": model, "engine": engine})

    def increment(self, n: int = 1) -> None:
        self.metric.increment(n)
