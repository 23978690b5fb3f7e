"""KubernetesActuator (official `kubernetes` client) against a local fake API server.

No Kubernetes API server runs here. FakeApiServer (http.server on 127.0.0.1, ephemeral port)
implements just the endpoints the adapter uses — Deployment `scale` GET/PATCH and
gateway.networking.k8s.io/v1 HTTPRoute GET/PATCH (JSON merge patch, resourceVersion check) —
checks the bearer token and records every request.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controlplane.actuators.k8s import FakeKubernetes, KubernetesActuator, apply_weights
from controlplane.actuators.result import ActuationStatus

S = ActuationStatus
TOKEN = "k8s-token"
SCALE = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)/scale$")
ROUTE = re.compile(r"^/apis/gateway\.networking\.k8s\.io/v1/namespaces/([^/]+)/httproutes/([^/]+)$")


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (lists replace wholesale, null deletes)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def status_body(code: int, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}


class FakeApiServer:
    def __init__(self) -> None:
        self.deployments: dict[tuple[str, str], int] = {}
        self.routes: dict[tuple[str, str], dict] = {}
        self.requests: list[dict] = []
        self.force_status: list[int] = []  # next requests answer these codes
        self.resource_version = 100
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args):  # quiet
                pass

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                req = {
                    "method": self.command,
                    "path": self.path.split("?")[0],
                    "content_type": self.headers.get("Content-Type"),
                    "body": json.loads(raw) if raw else None,
                }
                server.requests.append(req)
                code, body = server.answer(req, self.headers.get("Authorization"))
                self._reply(code, body)

            do_GET = do_PATCH = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _bump(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def answer(self, req: dict, authorization: str | None) -> tuple[int, dict]:
        if self.force_status:
            code = self.force_status.pop(0)
            return code, status_body(code, f"forced {code}")
        if authorization != f"Bearer {TOKEN}":
            return 401, status_body(401, "Unauthorized")
        if m := SCALE.match(req["path"]):
            ns, name = m.groups()
            if (ns, name) not in self.deployments:
                return 404, status_body(404, f'deployments.apps "{name}" not found')
            if req["method"] == "PATCH":
                if req["content_type"] != "application/merge-patch+json":
                    return 415, status_body(415, f"unsupported patch type {req['content_type']}")
                self.deployments[(ns, name)] = req["body"]["spec"]["replicas"]
            n = self.deployments[(ns, name)]
            return 200, {
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": name, "namespace": ns, "resourceVersion": self._bump()},
                "spec": {"replicas": n}, "status": {"replicas": n},
            }  # fmt: skip
        if m := ROUTE.match(req["path"]):
            key = m.groups()
            if key not in self.routes:
                return 404, status_body(404, f'httproutes.gateway.networking.k8s.io "{key[1]}" not found')
            obj = self.routes[key]
            if req["method"] == "PATCH":
                want = (req["body"].get("metadata") or {}).get("resourceVersion")
                if want is not None and want != obj["metadata"]["resourceVersion"]:
                    return 409, status_body(409, "the object has been modified; please apply your changes")
                obj = merge_patch(obj, req["body"])
                obj["metadata"]["resourceVersion"] = self._bump()
                self.routes[key] = obj
            return 200, obj
        return 404, status_body(404, f"no fake for {req['path']}")

    def add_route(self, ns: str, name: str, backends: dict[str, int]) -> None:
        self.routes[(ns, name)] = {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": self._bump()},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                     "backendRefs": [{"name": b, "port": 8000, "weight": w} for b, w in backends.items()]},
                    {"backendRefs": [{"name": next(iter(backends)), "port": 8000, "weight": 1}]},
                ],
            },
        }  # fmt: skip


@pytest.fixture
def api():
    server = FakeApiServer()
    server.deployments[("serving", "triton-a")] = 2
    server.add_route("serving", "triton", {"triton-a": 50, "triton-b": 50})
    yield server
    server.close()


@pytest.fixture
def kube(api):
    return KubernetesActuator.from_host(api.url, token=TOKEN, request_timeout_s=5)


def test_scale_deployment_patches_scale_subresource(api, kube):
    res = kube.scale_deployment("serving", "triton-a", 5)
    assert res.status is S.OK, res
    assert res.details["previous"] == 2
    assert api.deployments[("serving", "triton-a")] == 5
    assert [(r["method"], r["path"]) for r in api.requests] == [
        ("GET", "/apis/apps/v1/namespaces/serving/deployments/triton-a/scale"),
        ("PATCH", "/apis/apps/v1/namespaces/serving/deployments/triton-a/scale"),
    ]
    assert api.requests[1]["body"] == {"spec": {"replicas": 5}}
    assert api.requests[1]["content_type"] == "application/merge-patch+json"


def test_scale_to_same_count_is_noop_without_write(api, kube):
    res = kube.scale_deployment("serving", "triton-a", 2)
    assert res.status is S.NOOP
    assert [r["method"] for r in api.requests] == ["GET"]


def test_route_weights_patch_every_rule_with_resource_version(api, kube):
    rv = api.routes[("serving", "triton")]["metadata"]["resourceVersion"]
    res = kube.set_route_weights("serving", "triton", {"triton-a": 10, "triton-b": 90})
    assert res.status is S.OK, res
    rules = api.routes[("serving", "triton")]["spec"]["rules"]
    assert [[(b["name"], b["weight"]) for b in r["backendRefs"]] for r in rules] == [
        [("triton-a", 10), ("triton-b", 90)],
        [("triton-a", 10)],
    ]
    assert rules[0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/v2"}}]  # untouched
    patch = api.requests[-1]
    assert patch["path"] == "/apis/gateway.networking.k8s.io/v1/namespaces/serving/httproutes/triton"
    assert patch["content_type"] == "application/merge-patch+json"
    assert patch["body"]["metadata"] == {"resourceVersion": rv}
    assert kube.set_route_weights("serving", "triton", {"triton-a": 10}).status is S.NOOP


@pytest.mark.parametrize(
    ("op", "force", "status", "in_message"),
    [
        (("scale_deployment", "serving", "missing", 3), [], S.REJECTED, "not found"),
        (("scale_deployment", "serving", "triton-a", -1), [], S.REJECTED, "allowed range"),
        (("scale_deployment", "serving", "triton-a", 3), [403], S.REJECTED, "not allowed (403)"),
        (("scale_deployment", "serving", "triton-a", 3), [500], S.UNAVAILABLE, "answered 500"),
        (("scale_deployment", "serving", "triton-a", 3), [429], S.UNAVAILABLE, "answered 429"),
        (("scale_deployment", "serving", "triton-a", 3), [200, 418], S.FAILED, "answered 418"),
        (
            ("set_route_weights", "serving", "triton", {"triton-c": 1}),
            [],
            S.REJECTED,
            "['triton-a', 'triton-b']",
        ),
        (("set_route_weights", "serving", "triton", {"triton-a": 1.5}), [], S.REJECTED, "integer"),
        (("set_route_weights", "serving", "nope", {"triton-a": 1}), [], S.REJECTED, "not found"),
        (("set_route_weights", "serving", "triton", {"triton-a": 1}), [200, 409], S.UNAVAILABLE, "409"),
    ],
)
def test_failure_mapping(api, kube, op, force, status, in_message):
    if force[:1] == [200]:  # let the read through, force the write's answer
        force = force[1:]
        orig = api.answer

        def answer(req, auth):
            if req["method"] == "PATCH":
                api.force_status[:] = force
            return orig(req, auth)

        api.answer = answer
    else:
        api.force_status[:] = force
    name, *args = op
    res = getattr(kube, name)(*args)
    assert res.status is status, res
    assert in_message in res.message
    assert api.deployments[("serving", "triton-a")] == 2


def test_wrong_token_is_rejected(api):
    res = KubernetesActuator.from_host(api.url, token="bad").scale_deployment("serving", "triton-a", 3)
    assert res.status is S.REJECTED and "401" in res.message


def test_connection_refused_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kube = KubernetesActuator.from_host(f"http://127.0.0.1:{port}", token=TOKEN, request_timeout_s=2)
    res = kube.scale_deployment("serving", "triton-a", 3)
    assert res.status is S.UNAVAILABLE, res
    res = kube.set_route_weights("serving", "triton", {"triton-a": 1})
    assert res.status is S.UNAVAILABLE, res


def test_apply_weights_is_pure():
    rules = [{"backendRefs": [{"name": "a", "weight": 1}, {"name": "b"}]}]
    new, missing = apply_weights(rules, {"b": 4, "z": 1})
    assert new == [{"backendRefs": [{"name": "a", "weight": 1}, {"name": "b", "weight": 4}]}]
    assert missing == ["z"]
    assert rules == [{"backendRefs": [{"name": "a", "weight": 1}, {"name": "b"}]}]


def test_fake_kubernetes():
    fake = FakeKubernetes({("ns", "d"): 1}, {("ns", "r"): {"a": 1, "b": 1}})
    assert fake.scale_deployment("ns", "d", 3).status is S.OK
    assert fake.scale_deployment("ns", "d", 3).status is S.NOOP
    assert fake.scale_deployment("ns", "x", 3).status is S.REJECTED
    assert fake.set_route_weights("ns", "r", {"a": 0}).status is S.OK
    assert fake.set_route_weights("ns", "r", {"c": 1}).status is S.REJECTED
    fake.fail_next(S.UNAVAILABLE, "api down")
    assert fake.scale_deployment("ns", "d", 9).message == "api down"
    assert fake.deployments == {("ns", "d"): 3}
    assert fake.routes == {("ns", "r"): {"a": 0, "b": 1}}
    assert fake.operations()[-1] == "scale_deployment"
