"""Port: Kubernetes, through the official `kubernetes` Python client.

- Deployment replicas via the `scale` subresource (AppsV1Api read/patch_namespaced_deployment_scale).
- Gateway API HTTPRoute backend weights (gateway.networking.k8s.io/v1 `httproutes`,
  spec.rules[].backendRefs[].weight) via CustomObjectsApi get/patch: the route is read, the
  weights of the named backends are changed in every rule, and the rules are written back with
  a JSON merge patch that carries the resourceVersion read, so a concurrent change is a 409
  conflict (UNAVAILABLE, retry) instead of a lost update.

No API server runs where this project is developed: the unit tests run this adapter against a
small local fake HTTP server (tests/unit/test_actuators_k8s.py) that implements just these
endpoints and records the requests. It has not been run against a real cluster.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Protocol

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from controlplane.actuators.result import ActuationResult, ActuationStatus, FakeBehaviour, result, timed

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
HTTPROUTES = "httproutes"
MAX_ROUTE_WEIGHT = 1_000_000  # Gateway API bound on backendRefs[].weight
MAX_REPLICAS = 10_000  # a sanity bound: a larger request is a bug upstream


class Kubernetes(Protocol):
    def scale_deployment(self, namespace: str, name: str, replicas: int) -> ActuationResult: ...
    def set_route_weights(
        self, namespace: str, route: str, weights: Mapping[str, int]
    ) -> ActuationResult: ...


def _bad_replicas(replicas: Any) -> str | None:
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= MAX_REPLICAS:
        return f"replicas = {replicas!r} is invalid: allowed range [0, {MAX_REPLICAS}]"
    return None


def _bad_weights(weights: Mapping[str, Any]) -> str | None:
    if not weights:
        return "no backend weights given"
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= MAX_ROUTE_WEIGHT:
            return f"weights.{name} = {w!r} is invalid: expected an integer in [0, {MAX_ROUTE_WEIGHT}]"
    return None


def apply_weights(rules: list[dict], weights: Mapping[str, int]) -> tuple[list[dict], list[str]]:
    """New rules with the named backends' weights set (in every rule); also the names not found."""
    new_rules = copy.deepcopy(rules)
    seen: set[str] = set()
    for rule in new_rules:
        for ref in rule.get("backendRefs") or []:
            name = ref.get("name")
            if name in weights:
                ref["weight"] = weights[name]
                seen.add(name)
    return new_rules, sorted(set(weights) - seen)


def backend_names(rules: list[dict]) -> list[str]:
    return sorted({ref.get("name", "") for rule in rules for ref in rule.get("backendRefs") or []})


def _api_error(what: str, exc: ApiException) -> ActuationResult:
    code = exc.status or 0
    text = exc.reason or ""
    try:
        body = json.loads(exc.body) if exc.body else {}
        text = body.get("message") or text
    except (ValueError, TypeError, AttributeError):
        pass
    details = {"http_status": code}
    msg = f"{what}: Kubernetes API answered {code}: {text}"
    if code in (401, 403):
        return result(ActuationStatus.REJECTED, f"{what}: not allowed ({code}): {text}", **details)
    if code in (400, 404, 422):
        return result(ActuationStatus.REJECTED, msg, **details)
    if code in (0, 409, 429) or code >= 500:  # 0: the client could not connect
        return result(ActuationStatus.UNAVAILABLE, msg, **details)
    return result(ActuationStatus.FAILED, msg, **details)


class KubernetesActuator:
    """Kubernetes port over an official-client ApiClient.

    Mapping: 200 -> OK; unchanged -> NOOP (no write); 401/403, 400/404/422 and invalid values
    -> REJECTED; connection errors, 409 conflict, 429 and 5xx -> UNAVAILABLE; other -> FAILED.
    """

    def __init__(self, api_client: k8s.ApiClient, request_timeout_s: float = 10.0) -> None:
        self.api_client = api_client
        self.apps = k8s.AppsV1Api(api_client)
        self.custom = k8s.CustomObjectsApi(api_client)
        self.request_timeout_s = request_timeout_s

    @classmethod
    def from_host(
        cls, host: str, token: str | None = None, verify_ssl: bool = True, request_timeout_s: float = 10.0
    ) -> KubernetesActuator:
        """An API server at `host` (https://... or, for the fake server in tests, http://127.0.0.1:<port>)."""
        cfg = k8s.Configuration(host=host)
        cfg.verify_ssl = verify_ssl
        cfg.retries = 0  # fail fast: the loop's next tick is the retry
        if token:
            cfg.api_key = {"BearerToken": token}
            cfg.api_key_prefix = {"BearerToken": "Bearer"}
        return cls(k8s.ApiClient(cfg), request_timeout_s)

    @classmethod
    def from_kubeconfig(
        cls, context: str | None = None, request_timeout_s: float = 10.0
    ) -> KubernetesActuator:
        """In-cluster service account when running in a pod, else ~/.kube/config (KUBECONFIG)."""
        from kubernetes import config  # noqa: PLC0415 - only needed on this path

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config(context=context)
        return cls(k8s.ApiClient(), request_timeout_s)

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> ActuationResult:
        return timed("scale_deployment", lambda: self._guard(f"scale deployment {namespace}/{name}",
                                                             lambda: self._scale(namespace, name, replicas)))  # fmt: skip

    def set_route_weights(self, namespace: str, route: str, weights: Mapping[str, int]) -> ActuationResult:
        return timed("set_route_weights", lambda: self._guard(f"weights of httproute {namespace}/{route}",
                                                              lambda: self._weights(namespace, route, weights)))  # fmt: skip

    def _guard(self, what: str, fn) -> ActuationResult:
        try:
            return fn()
        except ApiException as exc:
            return _api_error(what, exc)
        except urllib3.exceptions.HTTPError as exc:  # refused, DNS, TLS, timeout
            return result(ActuationStatus.UNAVAILABLE, f"{what}: Kubernetes API unreachable: {exc}")

    def _scale(self, namespace: str, name: str, replicas: int) -> ActuationResult:
        ctx = {"namespace": namespace, "deployment": name, "replicas": replicas}
        bad = _bad_replicas(replicas)
        if bad:
            return result(ActuationStatus.REJECTED, bad, **ctx)
        current = self.apps.read_namespaced_deployment_scale(
            name, namespace, _request_timeout=self.request_timeout_s
        )
        previous = current.spec.replicas if current.spec else None
        if previous == replicas:
            return result(ActuationStatus.NOOP, f"deployment {namespace}/{name} already at {replicas}", **ctx)
        self.apps.patch_namespaced_deployment_scale(
            name,
            namespace,
            {"spec": {"replicas": replicas}},
            _content_type="application/merge-patch+json",
            _request_timeout=self.request_timeout_s,
        )
        return result(
            ActuationStatus.OK,
            f"deployment {namespace}/{name}: {previous} -> {replicas} replicas",
            previous=previous,
            **ctx,
        )

    def _weights(self, namespace: str, route: str, weights: Mapping[str, int]) -> ActuationResult:
        ctx = {"namespace": namespace, "route": route, "weights": dict(weights)}
        bad = _bad_weights(weights)
        if bad:
            return result(ActuationStatus.REJECTED, bad, **ctx)
        obj = self.custom.get_namespaced_custom_object(
            GATEWAY_GROUP,
            GATEWAY_VERSION,
            namespace,
            HTTPROUTES,
            route,
            _request_timeout=self.request_timeout_s,
        )
        rules = (obj.get("spec") or {}).get("rules") or []
        new_rules, missing = apply_weights(rules, weights)
        if missing:
            return result(
                ActuationStatus.REJECTED,
                f"httproute {namespace}/{route} has no backend(s) {missing}; it has {backend_names(rules)}",
                **ctx,
            )
        if new_rules == rules:
            return result(ActuationStatus.NOOP, f"httproute {namespace}/{route} weights unchanged", **ctx)
        patch = {
            "metadata": {"resourceVersion": obj.get("metadata", {}).get("resourceVersion")},
            "spec": {"rules": new_rules},
        }
        self.custom.patch_namespaced_custom_object(
            GATEWAY_GROUP,
            GATEWAY_VERSION,
            namespace,
            HTTPROUTES,
            route,
            patch,
            _content_type="application/merge-patch+json",
            _request_timeout=self.request_timeout_s,
        )
        return result(ActuationStatus.OK, f"httproute {namespace}/{route} weights set", **ctx)


class FakeKubernetes(FakeBehaviour):
    """In-memory Kubernetes port: `deployments[(ns, name)] = replicas`,
    `routes[(ns, route)] = {backend: weight}`; unknown objects are REJECTED like a 404."""

    def __init__(
        self,
        deployments: dict[tuple[str, str], int] | None = None,
        routes: dict[tuple[str, str], dict[str, int]] | None = None,
    ) -> None:
        super().__init__()
        self.deployments = dict(deployments or {})
        self.routes = {k: dict(v) for k, v in (routes or {}).items()}

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> ActuationResult:
        injected = self._call("scale_deployment", namespace=namespace, name=name, replicas=replicas)
        if injected:
            return injected
        bad = _bad_replicas(replicas)
        if bad:
            return result(ActuationStatus.REJECTED, bad)
        key = (namespace, name)
        if key not in self.deployments:
            return result(
                ActuationStatus.REJECTED, f"deployment {namespace}/{name} not found", http_status=404
            )
        previous = self.deployments[key]
        if previous == replicas:
            return result(ActuationStatus.NOOP, f"deployment {namespace}/{name} already at {replicas}")
        self.deployments[key] = replicas
        return result(
            ActuationStatus.OK, f"deployment {namespace}/{name}: {previous} -> {replicas}", previous=previous
        )

    def set_route_weights(self, namespace: str, route: str, weights: Mapping[str, int]) -> ActuationResult:
        injected = self._call("set_route_weights", namespace=namespace, route=route, weights=dict(weights))
        if injected:
            return injected
        bad = _bad_weights(weights)
        if bad:
            return result(ActuationStatus.REJECTED, bad)
        current = self.routes.get((namespace, route))
        if current is None:
            return result(
                ActuationStatus.REJECTED, f"httproute {namespace}/{route} not found", http_status=404
            )
        missing = sorted(set(weights) - set(current))
        if missing:
            return result(
                ActuationStatus.REJECTED, f"httproute {namespace}/{route} has no backend(s) {missing}"
            )
        if all(current[n] == w for n, w in weights.items()):
            return result(ActuationStatus.NOOP, f"httproute {namespace}/{route} weights unchanged")
        current.update(weights)
        return result(ActuationStatus.OK, f"httproute {namespace}/{route} weights set")
