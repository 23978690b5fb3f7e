"""Port: the router's replica weights and routing/admission thresholds.

The real adapter calls the router's admin endpoints (serving/router/app.py):
`PUT /admin/weights` with `{"weights": {"replica-0": 3, ...}}` (0 drains a replica) and
`PUT /admin/thresholds` with any of serving.router.admin.THRESHOLD_FIELDS, both with
`Authorization: Bearer <token>`. The router answers 200 with the resulting values,
400 `{"error": ...}` for an invalid body, 401 without a token and 403 with a wrong one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from controlplane.actuators.result import ActuationResult, ActuationStatus, FakeBehaviour, result, timed


class RouterControl(Protocol):
    def set_weights(self, weights: Mapping[str, float]) -> ActuationResult: ...
    def set_thresholds(self, thresholds: Mapping[str, Any]) -> ActuationResult: ...


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)[:300]


class HttpRouterControl:
    """RouterControl over HTTP; `base_url` like http://127.0.0.1:7000, `token` the admin bearer token.

    Mapping: 200 -> OK (details hold the router's answer); 400 -> REJECTED with the router's
    message; 401/403 -> REJECTED saying the token is missing/wrong; 429/5xx and connection
    errors or timeouts -> UNAVAILABLE; anything else -> FAILED.
    """

    def __init__(self, base_url: str, token: str, timeout_s: float = 5.0, transport: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s
        self._transport = transport  # httpx transport override, for tests

    def set_weights(self, weights: Mapping[str, float]) -> ActuationResult:
        return timed("set_weights", lambda: self._put("/admin/weights", {"weights": dict(weights)}))

    def set_thresholds(self, thresholds: Mapping[str, Any]) -> ActuationResult:
        return timed("set_thresholds", lambda: self._put("/admin/thresholds", dict(thresholds)))

    def _put(self, path: str, body: dict[str, Any]) -> ActuationResult:
        url = f"{self.base_url}{path}"
        try:
            with httpx.Client(timeout=self.timeout_s, transport=self._transport) as client:
                # No token configured: send none, and let the router say 401.
                headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
                resp = client.put(url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            return result(ActuationStatus.UNAVAILABLE, f"router at {url} timed out: {exc}", url=url)
        except httpx.TransportError as exc:
            return result(ActuationStatus.UNAVAILABLE, f"router at {url} is unreachable: {exc}", url=url)
        code = resp.status_code
        if code == 200:
            return result(
                ActuationStatus.OK, f"PUT {path} applied", url=url, request=body, response=resp.json()
            )
        details = {"url": url, "http_status": code, "request": body}
        if code == 401:
            return result(
                ActuationStatus.REJECTED,
                f"router refused PUT {path}: no admin token accepted (401)",
                **details,
            )
        if code == 403:
            return result(
                ActuationStatus.REJECTED, f"router refused PUT {path}: wrong admin token (403)", **details
            )
        if code == 400:
            return result(
                ActuationStatus.REJECTED, f"router rejected PUT {path}: {_error_text(resp)}", **details
            )
        if code == 429 or code >= 500:
            return result(
                ActuationStatus.UNAVAILABLE, f"router answered {code}: {_error_text(resp)}", **details
            )
        return result(ActuationStatus.FAILED, f"router answered {code}: {_error_text(resp)}", **details)


class FakeRouterControl(FakeBehaviour):
    """In-memory RouterControl. With `replicas` given, weights for other names are REJECTED
    (like the router); weights must be in [0, 1e6]. Setting identical values is a NOOP."""

    def __init__(
        self, replicas: list[str] | None = None, thresholds: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.replicas = list(replicas) if replicas is not None else None
        self.weights: dict[str, float] = {r: 1.0 for r in self.replicas or []}
        self.thresholds: dict[str, Any] = dict(thresholds or {})

    def set_weights(self, weights: Mapping[str, float]) -> ActuationResult:
        injected = self._call("set_weights", weights=dict(weights))
        if injected:
            return injected
        if not weights:
            return result(ActuationStatus.REJECTED, "no weights given")
        for name, w in weights.items():
            if self.replicas is not None and name not in self.replicas:
                return result(ActuationStatus.REJECTED, f"weights.{name}: unknown replica {name!r}")
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0.0 <= w <= 1e6:
                return result(ActuationStatus.REJECTED, f"weights.{name} = {w!r}: allowed range [0, 1000000]")
        if all(self.weights.get(n) == float(w) for n, w in weights.items()):
            return result(ActuationStatus.NOOP, "weights unchanged")
        self.weights.update({n: float(w) for n, w in weights.items()})
        return result(ActuationStatus.OK, "weights set", response={"weights": dict(self.weights)})

    def set_thresholds(self, thresholds: Mapping[str, Any]) -> ActuationResult:
        injected = self._call("set_thresholds", thresholds=dict(thresholds))
        if injected:
            return injected
        if not thresholds:
            return result(ActuationStatus.REJECTED, "no thresholds given")
        if all(self.thresholds.get(k) == v for k, v in thresholds.items()):
            return result(ActuationStatus.NOOP, "thresholds unchanged")
        self.thresholds.update(thresholds)
        return result(ActuationStatus.OK, "thresholds set", response={"thresholds": dict(self.thresholds)})
