"""Where measurements come from: Prometheus for metrics, the platform for the canary's logs.

A source either answers with numbers or raises ``MeasurementError``: Prometheus down, an HTTP
error, a query it rejects, a timeout. The analysis turns that into an ERROR measurement; it is
never mistaken for a pass or a failure of the canary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from canaryflow import transport
from canaryflow.analysis.prometheus_auth import (
    CredentialUnavailable,
    PrometheusAccess,
    PrometheusEndpoint,
)
from canaryflow.duration import parse_duration


class MeasurementError(Exception):
    """The source could not measure; the message says what happened, for the report."""


class QueryCheckFailed(MeasurementError):
    """Prometheus (or what fronts it) answered a query's syntax check with something that is
    not about the query: credentials refused (401/403), a server or proxy error, no
    Prometheus API at the URL. Not the plan's mistake: never exit 2."""


MAX_SHOWN_ERROR = 300
"""The most of Prometheus' own error text a message repeats."""


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels (``le`` for a histogram bucket) and value."""

    labels: Mapping[str, str] = field(default_factory=dict)
    value: float = 0.0


@dataclass(frozen=True)
class Series:
    """One series of a range vector: its labels and its raw samples, (Unix seconds, value)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    points: tuple[tuple[float, float], ...] = ()


class MetricSource(Protocol):
    def instant(self, query: str) -> list[float]:
        """The query's value now, one number per series."""
        ...

    def vector(self, query: str, at: float | None = None) -> list[Sample]:
        """The query's series with their labels, evaluated now or at ``at`` (Unix seconds)."""
        ...

    def range(self, query: str, start: float, end: float, step: float) -> list[float]:
        """Every sample of every series between ``start`` and ``end`` (Unix seconds)."""
        ...

    def series(self, query: str, at: float | None = None) -> list[Series]:
        """A range-vector selector's raw samples with their timestamps, as scraped, evaluated
        now or at ``at``: what aligning counters of differently scraped pods needs."""
        ...


@runtime_checkable
class ScrapeTiming(Protocol):
    """A source that can tell how often the service's targets are scraped (optional)."""

    def scrape_interval(self, labels: Mapping[str, str]) -> float | None:
        """Seconds between scrapes of the targets carrying ``labels``; None when unknown."""
        ...


@dataclass(frozen=True)
class Pinned:
    """One read of a batch: ``query``, with every occurrence of ``selector`` (a plain series
    selector, with or without a range) evaluated at ``at`` (Unix seconds)."""

    query: str
    selector: str
    at: float


@runtime_checkable
class PinnedVectors(Protocol):
    """A source that answers several instant reads, each at its own time, in one request."""

    def vectors(self, reads: Mapping[str, Pinned]) -> dict[str, list[Sample]]:
        """Each read's series with their labels, by the read's key."""
        ...


BATCH_LABEL = "canaryflow_read"
"""The label a batched query's answer carries to say which read each series belongs to."""


def pin(read: Pinned) -> str:
    """``read.query`` with its selector pinned at ``read.at`` by PromQL's ``@`` modifier, after
    the range where there is one (``sel[10s] @ t``, as the grammar requires).

    Found by splitting on the selector, not by a regular expression of it: every read of a
    round is pinned (30 a release), the selectors of 50 releases overflow ``re``'s cache of
    compiled patterns, and compiling one each time was most of what building a round's
    queries cost (0.33 ms a release, against 0.06 ms)."""
    at = f" @ {read.at:.3f}"
    first, *rest = read.query.split(read.selector)
    pinned = [first]
    for after in rest:
        end = after.find("]") + 1 if after.startswith("[") else 0  # a range: pin after it
        pinned.append(f"{read.selector}{after[:end]}{at}{after[end:]}")
    return "".join(pinned)


def batch_query(reads: Mapping[str, Pinned]) -> str:
    """Every read as one PromQL query: each pinned at its own instant (``@``), labelled with
    its key by ``label_replace``, and joined by ``or``. A series of one read never matches one
    of another (their ``canaryflow_read`` differs), so ``or`` keeps every series of every read.

    Why: a look of a sequential gate reads each track's pods at two instants, and their scrape
    times, a dozen instant vectors. As one query it is one HTTP request and one evaluation
    queued in Prometheus instead of a dozen, and the series Prometheus touches and the numbers
    it returns are the same (the reads are unchanged, only pinned). ``@`` is on by default
    since Prometheus 2.33 (a feature flag from 2.25), and Thanos and Mimir evaluate it too.
    """
    return " or ".join(
        f'label_replace({pin(read)}, "{BATCH_LABEL}", "{key}", "", "")'
        for key, read in reads.items()
    )


def split_batch(samples: Sequence[Sample], keys: Sequence[str]) -> dict[str, list[Sample]]:
    """A batched answer back into each read's series, without the key label."""
    found: dict[str, list[Sample]] = {key: [] for key in keys}
    for sample in samples:
        labels = dict(sample.labels)
        key = labels.pop(BATCH_LABEL, None)
        if key in found:
            found[key].append(Sample(labels, sample.value))
    return found


def split_result(result: Sequence[Any], keys: Sequence[str]) -> dict[str, list[Sample]]:
    """``split_batch`` straight from the API's ``data.result`` (a vector): each series' fresh
    ``metric`` dict loses the key label in place and becomes its sample's labels, so a large
    answer is walked once, without a ``Sample`` per series made only to be copied again."""
    found: dict[str, list[Sample]] = {key: [] for key in keys}
    for series in result:
        if not isinstance(series, dict):
            continue  # a scalar: no series, so no read's
        labels = series.get("metric") or {}
        into = found.get(labels.pop(BATCH_LABEL, None))
        if into is not None:
            into.append(Sample(labels, float(series["value"][1])))
    return found


class LogSource(Protocol):
    def lines_since(self, since: float) -> list[str]:
        """The canary's log lines written at or after ``since`` (Unix seconds)."""
        ...


@runtime_checkable
class StableLogSource(Protocol):
    """A log source that also reads stable's lines, so a logs gate can compare the tracks."""

    def lines_since(self, since: float) -> list[str]: ...

    def stable_lines_since(self, since: float) -> tuple[list[str], float]:
        """Stable's log lines written at or after ``since``, and the share of stable's
        instances they come from (1.0: all; a large fleet is sampled)."""
        ...


PodLines = Mapping[str, Sequence[str]]
"""Log lines grouped by the pod (instance) that wrote them: pod name -> its lines, every pod
read listed (a pod that wrote nothing has no lines, not no entry)."""


@runtime_checkable
class PodLogSource(Protocol):
    """A ``StableLogSource`` that also tells which pod wrote each line, so a comparing logs
    gate can estimate the lines' over-dispersion from the reference's pods, as the counter
    gates do (``sequential``: quasi-Poisson). The flat methods stay for other callers."""

    def lines_since(self, since: float) -> list[str]: ...

    def stable_lines_since(self, since: float) -> tuple[list[str], float]: ...

    def canary_pod_lines_since(self, since: float) -> PodLines:
        """The canary's lines written at or after ``since``, by pod."""
        ...

    def stable_pod_lines_since(self, since: float) -> tuple[PodLines, float]:
        """The reference's lines written at or after ``since``, by pod, and the share of its
        pods read (as ``stable_lines_since``)."""
        ...


@runtime_checkable
class FleetLogSource(PodLogSource, Protocol):
    """A ``PodLogSource`` that also reads the stable fleet's pods while a fresh baseline is
    the reference: their lines' spread is the over-dispersion a comparing logs gate learns
    (``query.FLEET``), which a one-pod baseline cannot show."""

    def fleet_pod_lines_since(
        self, since: float, pods: Sequence[str] | None = None
    ) -> tuple[PodLines, float]:
        """The stable fleet's lines (pods neither canary nor baseline) written at or after
        ``since``, by pod, and the share of its pods read. ``pods``: the fleet's pods its
        metrics are read from (``fleet_sample``), read first where a source reads a sample
        of the fleet's logs, so the lines and the requests are of the same pods."""
        ...


StampedPodLines = Mapping[str, Sequence[tuple[float, str]]]
"""Log lines by pod, each with the Unix time it was written: ``(seconds, text)``, oldest first."""


@runtime_checkable
class StampedLogSource(PodLogSource, Protocol):
    """A ``PodLogSource`` that also tells when each line was written. A comparing logs gate
    then counts each pod's lines only up to its request counter's last scrape
    (``log_counts.LogCounts``), so lines and requests span the same seconds; the lines
    written after it are read again at the next look and counted then."""

    def stamped_pod_lines_since(
        self, track: str, since: float, pods: Sequence[str] | None = None
    ) -> tuple[StampedPodLines, float]:
        """The lines of ``track`` ("canary", "stable": the reference, or ``query.FLEET``:
        the stable fleet, asked only of a ``FleetLogSource``) written at or after ``since``,
        by pod, each with the time it was written, and the share of the track's pods read.
        ``pods``: for the fleet, the pods its metrics are read from (``fleet_sample``), read
        first, as ``FleetLogSource.fleet_pod_lines_since``."""
        ...


def flat_lines(by_pod: PodLines) -> list[str]:
    """Every pod's lines as one list (pods in name order)."""
    return [line for pod in sorted(by_pod) for line in by_pod[pod]]


def prometheus_step(seconds: float) -> str:
    """A ``query_range`` step Prometheus accepts: seconds as a decimal, whole milliseconds.

    Prometheus parses ``step`` as a float number of seconds or as a Go-style duration with
    integer parts only (``web/api/v1/api.go: parseDuration``): ``3.75s`` is rejected with HTTP
    400, ``3.75`` is not. Its resolution is one millisecond, and a zero step is an error too.
    """
    millis = max(1, round(seconds * 1000))
    whole, fraction = divmod(millis, 1000)
    return f"{whole}.{fraction:03d}".rstrip("0").rstrip(".")


_ERROR_FIELD = re.compile(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"')


class PrometheusSource:
    """Prometheus' HTTP API through ``prometheus_api_client``; one failure = one error, no retry.

    Retrying inside a measurement would hide an outage for longer than the interval; the
    verdict's consecutiveErrorLimit is the one place where errors are tolerated.
    """

    def __init__(self, url: str, timeout: float = 5.0, access: PrometheusAccess | None = None):
        self.url = url.rstrip("/")
        self.access = access or PrometheusAccess(timeout=timeout)
        self.timeout = self.access.timeout
        self._client: Any = None
        self._session: Any = None
        self.pinning = True
        """Whether this Prometheus evaluates ``@`` (until it says it does not)."""
        self.posting = True
        """Whether batched reads go as a form (POST), until the server refuses the method."""
        self.reached = False
        """Whether any call got through to Prometheus (an answer, even an error status)."""
        self.never_answered: str | None = None
        """Why the last call that never got through did not (``transport.never_answered``)."""

    @classmethod
    def for_endpoint(cls, endpoint: PrometheusEndpoint) -> PrometheusSource:
        """The Prometheus a plan may ask (``OperatorPrometheus.endpoint_for``), with its access."""
        return cls(endpoint.url or "", access=endpoint.access)

    def _connect(self) -> Any:
        if self._client is None:
            # Imported here: the CLI and the plan compiler must not pay for requests/pandas.
            from prometheus_api_client import PrometheusConnect
            from urllib3.util.retry import Retry

            session = self.access.session()
            client = PrometheusConnect(url=self.url, session=session, timeout=self.timeout)
            # Each call ends within ``timeout`` as a whole (``_call``), not only each read.
            adapter = transport.deadline_adapter(max_retries=Retry(total=0), pool_maxsize=32)
            session.mount(self.url, adapter)
            self._client, self._session = client, session
        return self._client

    def instant(self, query: str) -> list[float]:
        result = self._call(lambda client: client.custom_query(query))
        if result and isinstance(result[0], (int, float, str)):  # a scalar: [time, "value"]
            return [float(result[1])]
        return [float(series["value"][1]) for series in result]

    def vector(self, query: str, at: float | None = None) -> list[Sample]:
        params = {} if at is None else {"time": f"{at:.3f}"}
        result = self._call(lambda client: client.custom_query(query, params=params))
        if result and isinstance(result[0], (int, float, str)):  # a scalar: [time, "value"]
            return [Sample({}, float(result[1]))]
        return [
            Sample(dict(series.get("metric", {})), float(series["value"][1])) for series in result
        ]

    def vectors(self, reads: Mapping[str, Pinned]) -> dict[str, list[Sample]]:
        """Several instant reads in one request (see ``batch_query``); one request each from
        a Prometheus that refuses ``@`` (before 2.33 without ``--enable-feature=
        promql-at-modifier``: "@ modifier is disabled"; before 2.25 a parse error at "@")."""
        if reads and self.pinning:
            latest = max(read.at for read in reads.values())
            try:
                return split_result(self._posted(batch_query(reads), latest), list(reads))
            except MeasurementError as error:
                if "rejected the query" not in str(error) or "@" not in str(error):
                    raise
                self.pinning = False  # asked once: every later look reads one by one
        return {key: self.vector(read.query, read.at) for key, read in reads.items()}

    def _posted(self, query: str, at: float) -> list[Any]:
        """An instant query's ``data.result``, sent as a form: ``POST /api/v1/query`` takes
        the same parameters as GET (Prometheus' HTTP API, docs/querying/api.md, "Instant
        queries"; Thanos and Mimir too), and a batch is a long query: as a URL it is checked
        and escaped character by character on its way out (urllib3's
        ``_encode_invalid_chars``, visible in a round's profile at 200 pods), and may pass a
        proxy's URL length limit (HTTP 414). A server that refuses the method (405, or 501
        from a stand-in) is asked by GET from then on, as client_golang's ``DoGetFallback``
        does (api/prometheus/v1/api.go)."""
        params = {"time": f"{at:.3f}"}
        if not self.posting:
            return self._call(lambda client: client.custom_query(query, params=params))

        def post(client: Any) -> list[Any]:
            from prometheus_api_client import PrometheusApiClientException

            form = {"query": query, **params}
            response = self._session.post(
                f"{self.url}/api/v1/query", data=form, timeout=self.timeout
            )
            if response.status_code in (405, 501):
                self.posting = False
                return client.custom_query(query, params=params)
            if response.status_code != 200:  # worded as the client's own, for ``_explain``
                raise PrometheusApiClientException(
                    f"HTTP Status Code {response.status_code} ({response.content!r})"
                )
            return json.loads(response.content)["data"]["result"]

        return self._call(post)

    def series(self, query: str, at: float | None = None) -> list[Series]:
        params = {} if at is None else {"time": f"{at:.3f}"}
        result = self._call(lambda client: client.custom_query(query, params=params))
        return [
            Series(
                dict(series.get("metric", {})),
                tuple((float(t), float(v)) for t, v in series.get("values", [])),
            )
            for series in result
            if isinstance(series, dict)
        ]

    def range(self, query: str, start: float, end: float, step: float) -> list[float]:
        result = self._call(
            lambda client: client.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=prometheus_step(step),
            )
        )
        return [float(value) for series in result for _, value in series["values"]]

    def scrape_interval(self, labels: Mapping[str, str]) -> float | None:
        """How often Prometheus scrapes the targets labelled ``labels`` (app, namespace).

        First the targets API (``/api/v1/targets``: each active target's ``scrapeInterval``
        and its labels after relabelling, which is where the PodMonitor puts ``app`` and
        ``namespace``); where that API is absent (Thanos, Mimir and other query front-ends),
        the median spacing of the ``up`` samples of those targets over the last 10 minutes.
        None when neither knows (nothing scraped yet): the caller keeps its configured value.
        """
        self._connect()
        try:
            with transport.deadline(self.timeout):
                response = self._session.get(
                    f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=self.timeout
                )
            targets = response.json()["data"]["activeTargets"] if response.ok else []
        except Exception:
            targets = []
        found = []
        for target in targets if isinstance(targets, list) else []:
            mine = target.get("labels", {}) if isinstance(target, dict) else {}
            if all(mine.get(k) == v for k, v in labels.items()):
                try:
                    found.append(parse_duration(target.get("scrapeInterval")))
                except Exception:
                    continue
        if found:
            return max(found)
        matcher = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        try:
            series = self._call(lambda client: client.custom_query(f"up{{{matcher}}}[10m]"))
        except MeasurementError:
            return None
        gaps = sorted(
            float(b[0]) - float(a[0])
            for one in series
            for a, b in zip(one.get("values", []), one.get("values", [])[1:], strict=False)
        )
        return gaps[len(gaps) // 2] if gaps else None

    def validate_query(self, query: str) -> str | None:
        """Prometheus' objection to ``query`` (its parse error), or None when it parses.

        Only Prometheus' own answer about the query is the plan's mistake: HTTP 400 with its
        JSON error body of ``errorType`` ``bad_data`` (``web/api/v1/api.go``). Anything else
        Prometheus, or what fronts it, answers says nothing about the query and raises
        ``QueryCheckFailed``: 401/403 (the operator's credentials), a 5xx or a proxy's HTML
        page, a 404 from both endpoints (not Prometheus' API at this URL). ``format_query``
        came with Prometheus 2.38.0 (2022-08-16, CHANGELOG); an older one (or a query
        front-end without it) answers 404 there, and the query is then evaluated at time 0,
        as before that endpoint existed: a parse error is the same 400 ``bad_data``, and an
        evaluation error (422 ``execution``) means it parsed.
        """
        self._connect()
        session = self._session  # our own (the library has no format_query call)
        endpoint = "/api/v1/format_query"
        try:
            response = session.get(
                f"{self.url}{endpoint}", params={"query": query}, timeout=self.timeout
            )
            if response.status_code == 404:  # before Prometheus 2.38: evaluate at time 0
                endpoint = "/api/v1/query"
                response = session.get(
                    f"{self.url}{endpoint}",
                    params={"query": query, "time": "0"},
                    timeout=self.timeout,
                )
        except Exception as error:
            self._unanswered(error)
            raise MeasurementError(self._explain(error)) from error
        self.reached = True
        status = response.status_code
        error_type, text = _error_body(response.content)
        if status == 200 or (endpoint == "/api/v1/query" and error_type == "execution"):
            return None
        if status == 400 and error_type == "bad_data":
            return self._scrubbed(text or "a parse error")[:MAX_SHOWN_ERROR]
        raise QueryCheckFailed(self._not_about_the_query(status, endpoint, error_type, text))

    def _not_about_the_query(
        self, status: int, endpoint: str, error_type: str | None, text: str | None
    ) -> str:
        """What to fix when Prometheus' answer to a syntax check is not about the query."""
        at = f"Prometheus at {self.shown_url}"
        if status in (401, 403):
            advice = self.access.credentials_advice(status)
            return f"{at} answered HTTP {status} to {endpoint}: {advice}"
        if status == 404:
            return (
                f"{at} answered HTTP 404 to /api/v1/format_query and to /api/v1/query: this URL "
                "is not Prometheus' HTTP API; check the URL and its path prefix (e.g. "
                "/prometheus behind Mimir's gateway) in --prometheus, CANARYFLOW_PROMETHEUS_URL "
                "(the chart's analysis.prometheus.url) or the plan's analysis.prometheus.url"
            )
        if error_type is not None:  # Prometheus' own JSON error (timeout, internal, ...)
            said = f": {self._scrubbed(text)[:MAX_SHOWN_ERROR]}" if text else ""
            what = f"HTTP {status} ({error_type}{said})"
        else:  # a proxy's or load balancer's page: not shown, it may echo the request
            kind = response_kind(status)
            what = f"HTTP {status}, {kind}"
        return (
            f"{at} answered {what} to {endpoint}: the query was not checked, and nothing says "
            "it is wrong; check that Prometheus (and any proxy in front of it) is healthy, "
            "then run again, or pass --offline"
        )

    @property
    def shown_url(self) -> str:
        """The URL as messages show it: without any ``user:password@``."""
        return transport.without_userinfo(self.url)

    def _scrubbed(self, text: str) -> str:
        """``text`` with the configured secrets' values blotted out (a proxy may echo the
        request it refused)."""
        for secret in self.access.secret_values():
            text = text.replace(secret, "***")
        return text

    def _call(self, request) -> Any:
        """``request`` on the client, ended ``timeout`` from now at the latest: requests'
        own timeout bounds each wait for a byte, and a server trickling bytes would hold the
        call (and its thread) for as long as it went on."""
        with transport.deadline(self.timeout) as scope:
            try:
                answer = request(self._connect())
            except Exception as error:
                self._unanswered(error)
                if scope.fired and self.never_answered is None:
                    message = (
                        f"Prometheus at {self.shown_url} did not answer within {self.timeout:g}s"
                    )
                    raise MeasurementError(message) from error
                raise MeasurementError(self._explain(error)) from error
        self.reached = True
        return answer

    def _unanswered(self, error: Exception) -> None:
        """Note whether ``error`` means Prometheus never answered, or that it was reached."""
        reason = transport.never_answered(error)
        if reason is None:
            self.reached = True
        else:
            self.never_answered = reason

    def _explain(self, error: Exception) -> str:
        import requests
        from prometheus_api_client import PrometheusApiClientException

        if isinstance(error, CredentialUnavailable):
            return f"Prometheus at {self.shown_url}: {error}"
        if isinstance(error, requests.exceptions.SSLError):
            return (
                f"Prometheus at {self.shown_url}: TLS verification failed "
                "(the operator sets the CA that signed its certificate: the chart's "
                "analysis.prometheus.caConfigMap, or CANARYFLOW_PROMETHEUS_CA_FILE)"
            )
        if transport.never_answered(error) == transport.NO_CONNECTION:
            return (
                f"Prometheus at {self.shown_url}: no connection within {self.timeout:g}s "
                "(nothing accepted it: check the address, and any network policy or firewall "
                "between this pod and Prometheus)"
            )
        if isinstance(error, requests.Timeout) or "timed out" in str(error):
            return f"Prometheus at {self.shown_url} did not answer within {self.timeout:g}s"
        if isinstance(error, requests.ConnectionError):
            refused = "connection refused" if "refused" in str(error).lower() else "unreachable"
            return f"Prometheus at {self.shown_url}: {refused}"
        if isinstance(error, PrometheusApiClientException):
            status = re.search(r"HTTP Status Code (\d+)", str(error))
            text = _error_text(str(error).encode().decode("unicode_escape"))
            if status and status.group(1) in ("401", "403"):  # not the query: the credentials
                advice = self.access.credentials_advice(int(status.group(1)))
                return f"Prometheus at {self.shown_url} answered HTTP {status.group(1)}: {advice}"
            code = f"HTTP {status.group(1)}" if status else "error"
            return self._scrubbed(f"Prometheus rejected the query ({code}): {text or error}")
        return f"Prometheus query failed: {type(error).__name__}: {error}"


def _error_body(content: bytes) -> tuple[str | None, str | None]:
    """Prometheus' JSON error answer, ``{"status": "error", "errorType", "error"}``, as
    (errorType, error); (None, None) for anything else (a proxy's HTML, plain text)."""
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(document, dict) or document.get("status") != "error":
        return None, None
    error_type, text = document.get("errorType"), document.get("error")
    return (
        error_type if isinstance(error_type, str) else None,
        text if isinstance(text, str) else None,
    )


def response_kind(status: int) -> str:
    """A non-Prometheus answer in words, for a message that does not repeat its body."""
    if status >= 500:
        return "a server error that is not Prometheus' JSON (a proxy or load balancer?)"
    return "not Prometheus' JSON (a proxy's or gateway's page?)"


def _error_text(body: str) -> str | None:
    match = _ERROR_FIELD.search(body)
    if match is None:
        return None
    try:
        return json.loads(f'"{match.group(1)}"')
    except json.JSONDecodeError:
        return match.group(1)
