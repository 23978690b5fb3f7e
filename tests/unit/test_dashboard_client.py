"""Dashboards: the API client maps transport and HTTP failures to clear, typed errors."""

from __future__ import annotations

import json

import httpx
import pytest

from dashboards.client import ApiClient, ApiError, ApiUnavailable, error_detail
from tests.support.ports import free_port


def _client(handler) -> ApiClient:
    c = ApiClient("http://api.test:7070/", timeout_s=2.0)
    c._http = httpx.Client(base_url=c.base_url, transport=httpx.MockTransport(handler), timeout=2.0)
    return c


def test_unreachable_names_url_and_reason():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ApiUnavailable) as err:
        ApiClient(url, timeout_s=2.0).status()
    assert err.value.url == url and url in str(err.value)


def test_timeout_is_unavailable_with_the_limit():
    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(ApiUnavailable, match="no answer within 2 s"):
        _client(slow).models()


def test_http_error_carries_status_and_api_detail():
    def handler(request):
        return httpx.Response(403, json={"detail": "wrong token"})

    with pytest.raises(ApiError) as err:
        _client(handler).post_override("bad", model="m", action="pause", reason="x")
    assert err.value.status_code == 403 and err.value.detail == "wrong token"


def test_validation_errors_name_the_field():
    body = {"detail": [{"loc": ["body", "replicas"], "msg": "Input should be greater than 0"}]}
    assert error_detail(body, "") == "replicas: Input should be greater than 0"
    assert error_detail(None, "Bad Gateway") == "Bad Gateway"


def test_non_json_answer_is_not_mistaken_for_the_api():
    def handler(request):
        return httpx.Response(200, text="<html>some other server</html>")

    with pytest.raises(ApiUnavailable, match="without JSON"):
        _client(handler).status()


def test_requests_carry_params_body_and_bearer_token():
    seen = []

    def handler(request):
        seen.append(request)
        if request.url.path == "/v1/overrides":
            return httpx.Response(200, json={"override": json.loads(request.content)})
        if request.url.path == "/v1/query":
            return httpx.Response(200, json={"columns": [], "rows": [], "echo": json.loads(request.content)})
        return httpx.Response(200, json={"name": "gpu", "columns": [], "rows": []})

    c = _client(handler)
    c.series("gpu", since_s=900, step_s=15, by=())
    q = dict(seen[-1].url.params)
    assert seen[-1].url.path == "/v1/series/gpu" and q == {"since_s": "900", "step_s": "15", "by": ""}
    c.series("latency_p99", model="m", by=("model", "target"))
    assert seen[-1].url.params["by"] == "model,target" and seen[-1].url.params["model"] == "m"
    ov = c.post_override(" tok ", model="m", action="pin", replicas=3, reason="hold", ttl_s=60.0)
    assert seen[-1].headers["authorization"] == "Bearer tok"
    assert ov == {"model": "m", "action": "pin", "reason": "hold", "ttl_s": 60.0, "replicas": 3}
    c.post_override("", model="*", action="mode", mode="advisory", reason="r")
    assert "authorization" not in seen[-1].headers  # no token: the API answers 401 itself
    assert c.query("SELECT 1", max_rows=5)["echo"] == {"sql": "SELECT 1", "max_rows": 5}


@pytest.mark.parametrize(("url", "timeout"), [("api:7070", 1.0), ("http://x", 0.0)])
def test_bad_construction_is_refused(url, timeout):
    with pytest.raises(ValueError):
        ApiClient(url, timeout_s=timeout)
