"""A small typed client for the control-plane HTTP API (the dashboards' only data source).

Every call has a timeout. Failures become one of two exceptions whose message a person can act
on: `ApiUnavailable` (nothing answered: wrong URL, API not started, timeout) and `ApiError` (the
API answered with an error status; the message is the API's own `detail`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

import httpx

OverrideAction = Literal["pause", "resume", "pin", "unpin", "mode"]
Mode = Literal["active", "advisory", "off"]


class ApiUnavailable(RuntimeError):
    """Nothing usable answered at `url` (connection refused, DNS, timeout, not JSON)."""

    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach the fleetpilot API at {url}: {reason}")


class ApiError(RuntimeError):
    """The API answered `status_code`; `detail` is its explanation."""

    def __init__(self, url: str, status_code: int, detail: str):
        self.url = url
        self.status_code = status_code
        self.detail = detail
        super().__init__(f"the API answered {status_code} for {url}: {detail}")


class Override(TypedDict):
    override_id: str
    ts: str
    model: str
    action: OverrideAction
    replicas: int | None
    mode: Mode | None
    reason: str
    expires_at: str | None
    source: str


class Cost(TypedDict):
    gpu_price_per_hour: float
    replica_hours: float
    gpu_hours: float
    cost: float
    cost_per_hour: float
    inferences: float
    cost_per_1k_inferences: float | None
    energy_j_per_1k_inferences: float | None


class SloModel(TypedDict):
    model: str
    slo_p99_ms: float | None
    requests: float
    within_slo_ratio: float | None
    burn_rate: float | None


class Slo(TypedDict):
    objective_ratio: float
    models: list[SloModel]


class Series(TypedDict):
    name: str
    columns: list[str]
    rows: list[dict[str, Any]]


class QueryResult(TypedDict):
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    elapsed_ms: float


class Anomalies(TypedDict):
    events: list[dict[str, Any]]
    open: list[dict[str, Any]]


def error_detail(body: Any, fallback: str) -> str:
    """The human part of an error body: FastAPI's `detail` (a string, or a list of field errors)."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", ()) if x != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if isinstance(detail, dict):
        return str(detail.get("message") or detail)
    return fallback


def _params(**kw: Any) -> dict[str, Any]:
    """Query parameters without the unset ones (the API applies its own defaults)."""
    out = {}
    for k, v in kw.items():
        if isinstance(v, list | tuple):
            out[k] = ",".join(v)  # kept when empty: `by=` means "no grouping", not "the default"
        elif v is not None and v != "":
            out[k] = v
    return out


@dataclass
class ApiClient:
    base_url: str
    timeout_s: float = 10.0
    _http: httpx.Client | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"API URL must start with http:// or https:// (got {self.base_url!r})")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 (got {self.timeout_s})")
        self.base_url = self.base_url.rstrip("/")

    # --- transport ------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout_s)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        url = f"{self.base_url}{path}"
        try:
            resp = self._client().request(method, path, params=params, json=json, headers=headers)
        except httpx.TimeoutException:
            raise ApiUnavailable(self.base_url, f"no answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise ApiUnavailable(self.base_url, str(exc) or type(exc).__name__) from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400:
            text = resp.text.strip()[:300] or resp.reason_phrase
            raise ApiError(url, resp.status_code, error_detail(body, text))
        if body is None:
            raise ApiUnavailable(
                self.base_url,
                f"{path} answered {resp.status_code} without JSON (is this the fleetpilot API?)",
            )
        return body

    def _get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params=_params(**params))

    # --- reads ----------------------------------------------------------------------------
    def health(self) -> bool:
        return bool(self._request("GET", "/healthz").get("ok"))

    def status(self) -> dict[str, Any]:
        return self._get("/v1/status")

    def models(self) -> list[dict[str, Any]]:
        return self._get("/v1/models")["models"]

    def replicas(self) -> list[dict[str, Any]]:
        return self._get("/v1/replicas")["replicas"]

    def decisions(
        self, *, model: str | None = None, policy: str | None = None, since_s: int = 3600, limit: int = 200
    ) -> list[dict[str, Any]]:
        return self._get("/v1/decisions", model=model, policy=policy, since_s=since_s, limit=limit)[
            "decisions"
        ]

    def actions(self, *, model: str | None = None, since_s: int = 3600, limit: int = 200) -> list[dict]:
        return self._get("/v1/actions", model=model, since_s=since_s, limit=limit)["actions"]

    def anomalies(
        self,
        *,
        model: str | None = None,
        replica: str | None = None,
        state: Literal["open", "all"] = "all",
        since_s: int = 3600,
        limit: int = 200,
    ) -> Anomalies:
        return self._get(
            "/v1/anomalies", model=model, replica=replica, state=state, since_s=since_s, limit=limit
        )

    def forecasts(
        self, *, model: str | None = None, metric: str | None = None, since_s: int = 3600, limit: int = 2000
    ) -> list[dict[str, Any]]:
        return self._get("/v1/forecasts", model=model, metric=metric, since_s=since_s, limit=limit)[
            "forecasts"
        ]

    def series(
        self,
        name: str,
        *,
        since_s: int = 3600,
        step_s: int = 60,
        model: str | None = None,
        replica: str | None = None,
        by: Sequence[str] = ("model",),
    ) -> Series:
        return self._get(
            f"/v1/series/{name}", since_s=since_s, step_s=step_s, model=model, replica=replica, by=list(by)
        )

    def slo(self, *, since_s: int = 3600) -> Slo:
        return self._get("/v1/slo", since_s=since_s)

    def cost(self, *, since_s: int = 3600) -> Cost:
        return self._get("/v1/cost", since_s=since_s)

    def overrides(self) -> list[Override]:
        return self._get("/v1/overrides")["overrides"]

    def query(self, sql: str, *, max_rows: int | None = None) -> QueryResult:
        body: dict[str, Any] = {"sql": sql}
        if max_rows is not None:
            body["max_rows"] = int(max_rows)
        return self._request("POST", "/v1/query", json=body)

    # --- writes ---------------------------------------------------------------------------
    def post_override(
        self,
        token: str,
        *,
        model: str,
        action: OverrideAction,
        reason: str,
        replicas: int | None = None,
        mode: Mode | None = None,
        ttl_s: float | None = None,
    ) -> Override:
        """Store an override; 401/403/503/422 come back as ApiError with the API's message."""
        body: dict[str, Any] = {"model": model, "action": action, "reason": reason, "ttl_s": ttl_s}
        if action == "pin":
            body["replicas"] = replicas
        if action == "mode":
            body["mode"] = mode
        headers = {"Authorization": f"Bearer {token.strip()}"} if token and token.strip() else {}
        return self._request("POST", "/v1/overrides", json=body, headers=headers)["override"]
