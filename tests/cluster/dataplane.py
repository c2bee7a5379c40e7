"""The data-plane stand-in: real nginx routes a real load as the cluster's router objects say.

Three routers read the objects canaryflow writes and decide, for a request, which Service's
pods get it and with which weight. Each follows its upstream specification:

- Istio (istio.io/latest/docs/reference/config/networking/virtual-service/, destination-rule/):
  a VirtualService's ``http`` routes are tried in order, the first whose ``match`` list is empty
  or has one entry all of whose conditions hold (``uri`` exact/prefix/regex, ``headers``
  exact/prefix/regex) wins; its ``route`` destinations share traffic by ``weight`` (100 for a
  single one); a destination is the Service named by ``host`` (short name or FQDN) narrowed by
  the ``subset``'s labels from the DestinationRule for that host.
- ingress-nginx canary annotations (kubernetes.github.io/ingress-nginx/user-guide/
  nginx-configuration/annotations/#canary): among Ingresses of class ``nginx`` for the request's
  host and path (Prefix/Exact), the one without ``canary: "true"`` is the main backend; a canary
  Ingress for the same host and path takes the request when ``canary-by-header`` matches
  (``canary-by-header-value``, or ``always``), is skipped on ``never``, and otherwise gets
  ``canary-weight`` of ``canary-weight-total`` (100). Header wins over weight.
- Gateway API HTTPRoute (gateway-api.sigs.k8s.io/reference/spec/#httproutematch, "matching
  precedence"): among matching rules the one with the most specific path (Exact, then the
  longest PathPrefix), then the most header matches, wins; its ``backendRefs`` share traffic
  by ``weight`` (default 1).

The decision for two requests -- a plain user request and one carrying the canary header -- is
applied to canaryflow's local two-tier nginx (``canaryflow.local.router.NginxRouter``), which
the load goes through: the plain request's share of non-stable pods is the split, and the header
request reaching only them is the header route. "Stable" are the pods of the stable Deployment
(named like the service; its ReplicaSets own them). ``history`` records when each routing state
was applied *and* served (nginx's ``wait_serving``), which is what "weight 0 verified at the
router" is measured on; ``asked`` records when the cluster's objects were first read asking for
it, which is what orders a task's router writes against a later task's start (a reload's own
time under load is the stand-in's, not canaryflow's).

What differs from a real mesh: one ready pod per side (the first one) receives its side's share;
config propagation is immediate (Istio's push takes ~1 s, ingress-nginx's sync is similar); a
split towards a side with no ready pod sends that share to stable instead of failing it.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kube.fake_apiserver import FakeApiServer

from canaryflow.local.router import NginxRouter
from canaryflow.platform.protocol import HeaderRoute

from .kubelet import Kubelet, RunningPod

Obj = dict[str, Any]
Backends = list[tuple[dict[str, str], float]]  # (pod selector, weight)
CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/"


@dataclass(frozen=True)
class Request:
    host: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Routing:
    """What nginx is told: where stable and canary listen, the split and the header route."""

    stable: str | None
    canary: str | None
    weight: int
    header: HeaderRoute | None
    baseline: str | None = None
    """A fresh baseline's pod (the Deployment ``<service>-baseline``) and its share."""
    baseline_weight: int = 0


# -- the routers' decisions (pure) -----------------------------------------------------------


def _service_selector(api: FakeApiServer, namespace: str, name: str) -> dict[str, str]:
    service = api.get("Service", namespace, name.split(".")[0])
    return dict((service or {}).get("spec", {}).get("selector") or {})


def istio_backends(api: FakeApiServer, namespace: str, vs_name: str, request: Request) -> Backends:
    vs = api.get("VirtualService", namespace, vs_name)
    if vs is None:
        return []
    for route in vs["spec"].get("http", []):
        matches = route.get("match") or [{}]
        if any(_istio_match(m, request) for m in matches):
            destinations = route.get("route", [])
            return [
                (
                    _istio_destination(api, namespace, d["destination"]),
                    _weight(d, len(destinations)),
                )
                for d in destinations
            ]
    return []


def _weight(destination: Obj, count: int) -> float:
    return float(destination.get("weight", 100 if count == 1 else 0))


def _istio_match(match: Obj, request: Request) -> bool:
    uri = match.get("uri")
    if uri and not _string_match(uri, request.path):
        return False
    for name, rule in (match.get("headers") or {}).items():
        value = request.headers.get(name.lower())
        if value is None or not _string_match(rule, value):
            return False
    return True


def _string_match(rule: Obj, value: str) -> bool:
    if "exact" in rule:
        return value == rule["exact"]
    if "prefix" in rule:
        return value.startswith(rule["prefix"])
    if "regex" in rule:
        return re.fullmatch(rule["regex"], value) is not None
    return True


def _istio_destination(api: FakeApiServer, namespace: str, destination: Obj) -> dict[str, str]:
    host = destination["host"]
    selector = _service_selector(api, namespace, host)
    subset = destination.get("subset")
    if subset:
        for rule in api.objects("DestinationRule", namespace):
            if rule["spec"]["host"].split(".")[0] != host.split(".")[0]:
                continue
            for candidate in rule["spec"].get("subsets", []):
                if candidate["name"] == subset:
                    selector |= candidate.get("labels", {})
    return selector


def ingress_nginx_backends(api: FakeApiServer, namespace: str, request: Request) -> Backends:
    main, canaries = None, []
    for ingress in api.objects("Ingress", namespace):
        if ingress["spec"].get("ingressClassName", "nginx") != "nginx":
            continue
        backend = _ingress_backend(ingress, request)
        if backend is None:
            continue
        annotations = ingress["metadata"].get("annotations") or {}
        if annotations.get(CANARY_ANNOTATION + "canary") == "true":
            canaries.append((backend, annotations))
        elif main is None:
            main = backend
    if main is None:
        return []
    stable = _service_selector(api, namespace, main)
    if not canaries:
        return [(stable, 1.0)]
    backend, annotations = canaries[0]
    canary = _service_selector(api, namespace, backend)
    header = annotations.get(CANARY_ANNOTATION + "canary-by-header")
    if header:
        value = request.headers.get(header.lower())
        wanted = annotations.get(CANARY_ANNOTATION + "canary-by-header-value")
        if (wanted is not None and value == wanted) or (wanted is None and value == "always"):
            return [(canary, 1.0)]
        if wanted is None and value == "never":
            return [(stable, 1.0)]
    weight = float(annotations.get(CANARY_ANNOTATION + "canary-weight", "0") or 0)
    total = float(annotations.get(CANARY_ANNOTATION + "canary-weight-total", "100") or 100)
    return [(stable, total - weight), (canary, weight)]


def _ingress_backend(ingress: Obj, request: Request) -> str | None:
    for rule in ingress["spec"].get("rules", []):
        if rule.get("host") not in (None, request.host):
            continue
        for path in rule.get("http", {}).get("paths", []):
            kind, value = path.get("pathType", "Prefix"), path.get("path", "/")
            if (kind == "Exact" and request.path == value) or (
                kind != "Exact" and _prefix(request.path, value)
            ):
                return path["backend"]["service"]["name"]
    return None


def _prefix(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def gateway_backends(
    api: FakeApiServer, namespace: str, route_name: str, request: Request
) -> Backends:
    route = api.get("HTTPRoute", namespace, route_name)
    if route is None or request.host not in route["spec"].get("hostnames", [request.host]):
        return []
    best, best_rank = None, None
    for rule in route["spec"].get("rules", []):
        for match in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
            rank = _gateway_rank(match, request)
            if rank is not None and (best_rank is None or rank > best_rank):
                best, best_rank = rule, rank
    if best is None:
        return []
    return [
        (_service_selector(api, namespace, ref["name"]), float(ref.get("weight", 1)))
        for ref in best.get("backendRefs", [])
    ]


def _gateway_rank(match: Obj, request: Request) -> tuple[int, int, int] | None:
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    kind, value = path.get("type", "PathPrefix"), path.get("value", "/")
    if kind == "Exact" and request.path != value:
        return None
    if kind == "PathPrefix" and not _prefix(request.path, value):
        return None
    if kind == "RegularExpression" and not re.fullmatch(value, request.path):
        return None
    for header in match.get("headers", []):
        got = request.headers.get(header["name"].lower())
        if header.get("type", "Exact") == "Exact" and got != header["value"]:
            return None
        if header.get("type") == "RegularExpression" and not re.fullmatch(
            header["value"], got or ""
        ):
            return None
    return (1 if kind == "Exact" else 0, len(value), len(match.get("headers", [])))


# -- applying the decision to nginx ----------------------------------------------------------


class DataPlane:
    """Keeps ``router`` in line with the cluster's routing for one service, every ``period_s``."""

    def __init__(
        self,
        api: FakeApiServer,
        kubelet: Kubelet,
        router: NginxRouter,
        kind: str,
        namespace: str,
        service: str,
        request: Request,
        header: HeaderRoute,
        period_s: float = 0.05,
    ):
        self.api, self.kubelet, self.router = api, kubelet, router
        self.kind, self.namespace, self.service = kind, namespace, service
        self.request, self.header = request, header
        self.period_s = period_s
        self.history: list[tuple[float, Routing]] = []
        self.asked: list[tuple[float, Routing]] = []
        self.current: Routing | None = None
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"dataplane-{service}", daemon=True),
            threading.Thread(target=self._read_loop, name=f"routing-{service}", daemon=True),
        ]

    def start(self) -> DataPlane:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def backends(self, request: Request) -> Backends:
        if self.kind == "istio":
            return istio_backends(self.api, self.namespace, self.service, request)
        if self.kind == "nginx-ingress":
            return ingress_nginx_backends(self.api, self.namespace, request)
        if self.kind == "gateway-api":
            return gateway_backends(self.api, self.namespace, self.service, request)
        raise ValueError(f"no data plane for router kind {self.kind}")

    def _endpoints(self, selector: dict[str, str] | None) -> list[RunningPod]:
        """Ready pods the API still has (what the EndpointSlice controller would list);
        ``{}`` means every pod of the namespace."""
        listed = {p["metadata"]["name"] for p in self.api.objects("Pod", self.namespace)}
        pods = self.kubelet.ready_pods(self.namespace, selector, match_all=selector == {})
        return [p for p in pods if p.name in listed]

    def desired(self) -> Routing:
        stable_pods = [p for p in self._endpoints({}) if p.owner == self.service]
        stable_names = {p.name for p in stable_pods}
        baseline_owner = f"{self.service}-baseline"  # a fresh baseline: stable's version

        def split(backends: Backends, owner_is_baseline: bool) -> tuple[float, str | None]:
            """The share of requests reaching the canary's (or the baseline's) pods; a
            backend's share is spread evenly over its ready endpoints, as kube-proxy and
            Envoy's round robin do."""
            total = sum(weight for _, weight in backends) or 1.0
            other, address = 0.0, None
            for selector, weight in backends:
                pods = self._endpoints(selector)
                others = [
                    p
                    for p in pods
                    if p.name not in stable_names
                    and (p.owner == baseline_owner) == owner_is_baseline
                ]
                if others and weight > 0:
                    other += weight * len(others) / len(pods)
                    address = address or others[0].address
            return other / total, address

        share, canary = split(self.backends(self.request), False)
        baseline_share, baseline = split(self.backends(self.request), True)
        plain = Request(self.request.host, self.request.path)
        tagged = Request(plain.host, plain.path, {self.header.name.lower(): self.header.value})
        header_share, header_canary = split(self.backends(tagged), False)
        canary = canary or header_canary
        return Routing(
            stable=stable_pods[0].address if stable_pods else None,
            canary=canary,
            weight=round(share * 100) if canary else 0,
            header=self.header if header_share >= 1.0 and header_canary else None,
            baseline=baseline,
            baseline_weight=round(baseline_share * 100) if baseline else 0,
        )

    def baseline_weights(self, since: float = 0.0, until: float = float("inf")) -> list[int]:
        """The baseline's shares the router served in ``[since, until)``, repeats dropped."""
        served: list[int] = []
        for at, routing in self.history:
            if since <= at < until and (not served or served[-1] != routing.baseline_weight):
                served.append(routing.baseline_weight)
        return served

    def weight_zero_after(self, since: float) -> float | None:
        """When the router first served a split of 0 % at or after ``since`` (``since`` itself
        when it already did). The header route is not part of the split."""
        return _first_after(self.history, since, lambda routing: routing.weight == 0)

    def no_canary_route_after(self, since: float) -> float | None:
        """When the router first served neither a split nor a header route to the canary at
        or after ``since`` (``since`` itself when it already did)."""
        return _first_after(self.history, since, _sends_canary_nothing)

    def no_canary_route_asked_after(self, since: float) -> float | None:
        """When the cluster's router objects first asked for neither a split nor a header route
        to the canary at or after ``since``, as this data plane read them (before nginx's
        reload, whose time is the stand-in's)."""
        return _first_after(self.asked, since, _sends_canary_nothing)

    def weights(self, since: float = 0.0, until: float = float("inf")) -> list[int]:
        """The splits the router served in ``[since, until)``, in order, repeats dropped."""
        served: list[int] = []
        for at, routing in self.history:
            if since <= at < until and (not served or served[-1] != routing.weight):
                served.append(routing.weight)
        return served

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self._sync()
            except Exception as error:  # the next period retries
                print(f"dataplane {self.service}: {error!r}")

    def _read_loop(self) -> None:
        """Records ``asked`` on its own thread, so a slow nginx reload never delays the read."""
        while not self._stop.wait(self.period_s):
            try:
                wanted = self.desired()
            except Exception:  # the next period reads again
                continue
            if not self.asked or self.asked[-1][1] != wanted:
                self.asked.append((time.time(), wanted))

    def _sync(self) -> None:
        wanted = self.desired()
        if wanted == self.current or wanted.stable is None:
            return
        state = self.router.state
        if wanted.stable != state.stable:
            self.router.replace_stable(wanted.stable)
        if wanted.canary != self.router.state.canary:
            self.router.set_canary_upstream(wanted.canary)
        if wanted.baseline is not None and wanted.baseline != self.router.state.baseline:
            self.router.add_baseline(wanted.baseline)
        state = self.router.state
        shares = (wanted.weight, wanted.baseline_weight)
        if shares != (state.canary_percent, state.baseline_percent):
            if wanted.baseline_weight:
                self.router.set_weight(wanted.weight, wanted.baseline_weight)
            else:
                self.router.set_weight(wanted.weight)
        if wanted.header != self.router.state.header_route:
            self.router.set_header_route(wanted.header)  # type: ignore[arg-type]
        served = self.router.wait_serving(5.0)
        self.current = wanted
        self.history.append((time.time() if served else float("inf"), wanted))


def _sends_canary_nothing(routing: Routing) -> bool:
    return routing.weight == 0 and routing.header is None


def _first_after(entries: list[tuple[float, Routing]], since: float, holds) -> float | None:
    """When ``holds`` first held at or after ``since`` in a time-ordered record of routing
    states (``since`` itself when the state in force then already held)."""
    before = [routing for at, routing in entries if at < since]
    if before and holds(before[-1]):
        return since
    return next((at for at, routing in entries if at >= since and holds(routing)), None)
