"""One analysis window: measure every gate each interval, stop at the first deciding breach.

All I/O of a round (canary and stable queries of every gate, the request count, the logs) runs
concurrently, each call bounded by a deadline: a source that hangs yields ERROR measurements
instead of a stuck release. Time is injected (``Clock``) so the loop is tested without waiting.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any, Protocol

from canaryflow.analysis import flavour as flavours
from canaryflow.analysis import gates as judge
from canaryflow.analysis.alignment import history_query, stamp_query
from canaryflow.analysis.catalogue import METRICS, REQUEST_COUNT, REQUESTS, Buckets, Counts
from canaryflow.analysis.evidence import (
    HISTORY_S,
    REFERENCE_LOOKBACK_S,
    SequentialGate,
    reference_query,
    roles,
    selector,
)
from canaryflow.analysis.fleet_sample import FleetSample, discovery_query
from canaryflow.analysis.log_counts import TRACK_UNIT, LogCounts
from canaryflow.analysis.measurement import Evidence, Judgement, Measurement, Outcome
from canaryflow.analysis.query import FLEET, Subject, promql_duration, render
from canaryflow.analysis.sequential import AlphaBudget
from canaryflow.analysis.source import (
    FleetLogSource,
    LogSource,
    MeasurementError,
    MetricSource,
    Pinned,
    PinnedVectors,
    PodLogSource,
    ScrapeTiming,
    StableLogSource,
    StampedLogSource,
)
from canaryflow.analysis.spec import AnalysisSpec, GateSpec
from canaryflow.analysis.verdict import Limits, WindowVerdict, judge_window
from canaryflow.errors import FieldError, InputError


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds (sources query Prometheus with it)."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


_MAX_SAMPLES = 10_000

RoundCallback = Callable[[Sequence[Measurement], WindowVerdict], None]


@dataclass(frozen=True)
class WindowResult:
    verdict: WindowVerdict
    measurements: tuple[Measurement, ...]
    started: float
    finished: float
    extended_s: float = 0.0
    """How long the window went on past its duration because gates were still collecting."""
    metrics: str | None = None
    """With ``analysis.metrics: auto``: which flavour was detected, and from what."""

    @property
    def reason(self) -> str:
        return self.verdict.reason

    def to_dict(self) -> dict[str, Any]:
        return {
            **({"metrics": self.metrics} if self.metrics else {}),
            "outcome": self.verdict.outcome.value,
            "reason": self.reason,
            "started": self.started,
            "finished": self.finished,
            "extended_s": self.extended_s,
            "verdict": self.verdict.to_dict(),
            "measurements": [m.to_dict() for m in self.measurements],
        }


class _TimedOut:
    """Marks a call that missed its deadline."""


CALL_WORKERS = 8
"""Threads one run's calls share at most. A round makes a few calls per gate (one per
sequential gate, see ``evidence.SequentialGate.plan``), and Prometheus evaluates at most 20
queries at once by default (``--query.max-concurrency``): more threads only queue there."""


class CallPool:
    """At most ``workers`` daemon threads running calls; none left when there is no work.

    A thread per call, abandoned when it misses the round's deadline, piles up under a
    Prometheus that hangs: every round starts as many threads as it has calls, and each one
    lives until its HTTP read times out (or never, against a server that trickles bytes).
    Here a call that waits for a free worker past its deadline is cancelled before it
    starts, so a hanging source costs at most ``workers`` threads however many rounds go by.
    Workers exit when the queue is empty, so an idle run holds no thread at all (a standard
    ``ThreadPoolExecutor`` keeps its threads, and joins them at interpreter exit: one stuck on
    a hung socket would hold the process open).
    """

    def __init__(self, workers: int = CALL_WORKERS, name: str = "measure"):
        self.workers = max(1, workers)
        self.name = name
        self._lock = threading.Lock()
        self._tasks: deque[tuple[Future, Callable[[], Any]]] = deque()
        self._live = 0

    @property
    def live(self) -> int:
        """Worker threads running now (busy, or about to find the queue empty)."""
        return self._live

    def submit(self, function: Callable[[], Any]) -> Future:
        future: Future = Future()
        with self._lock:
            self._tasks.append((future, function))
            if self._live < self.workers:
                self._live += 1
                thread = threading.Thread(target=self._work, daemon=True, name=self.name)
                thread.start()
        return future

    def forget_cancelled(self) -> None:
        """Drop cancelled calls still queued (workers stuck on a hung source never reach
        them: without this the queue would grow by a round's calls every round)."""
        with self._lock:
            self._tasks = deque(task for task in self._tasks if not task[0].cancelled())

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._tasks:
                    self._live -= 1
                    return
                future, function = self._tasks.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function())
            except BaseException as error:
                future.set_exception(error)


def gather(
    calls: Mapping[str, Callable[[], Any]],
    timeout: float,
    concurrent: bool = True,
    pool: CallPool | None = None,
) -> dict[str, Any]:
    """Run ``calls`` at once on ``pool``'s workers; each result, exception, or ``_TimedOut``
    (not finished by ``timeout``: cancelled if it had not started). ``concurrent=False`` calls
    them one by one in this thread (a source answering from memory, as offline replays do, has
    nothing to wait for and no deadline to miss)."""
    results: dict[str, Any] = {}
    if not concurrent:
        for key, function in calls.items():
            try:
                results[key] = function()
            except Exception as error:
                results[key] = error
        return results
    pool = pool or CallPool(min(CALL_WORKERS, max(1, len(calls))))
    futures = {key: pool.submit(function) for key, function in calls.items()}
    wait(futures.values(), timeout=timeout)
    for key, future in futures.items():
        if not future.done():
            future.cancel()  # a call still queued never starts; a running one is left
            results[key] = _TimedOut()
        elif (error := future.exception()) is not None:
            results[key] = error
        else:
            results[key] = future.result()
    pool.forget_cancelled()
    return results


class AnalysisRun:
    """Measures a spec's gates for one service, window after window."""

    def __init__(
        self,
        spec: AnalysisSpec,
        metrics: MetricSource,
        service: str,
        namespace: str,
        *,
        logs: LogSource | None = None,
        clock: Clock | None = None,
        on_round: RoundCallback | None = None,
        call_timeout: float | None = None,
        subject: Subject | None = None,
        windows: int = 1,
        carry_evidence: bool = False,
        pool: CallPool | None = None,
    ):
        for index, gate in enumerate(spec.gates):
            if gate.logs is not None and logs is None and not gate.dry_run:
                if spec.default_gates:
                    continue  # the default log gate: not applicable on this platform
                raise InputError(
                    FieldError(
                        f"analysis.gates[{index}]",
                        f"gate {gate.name!r} reads logs, which this platform does not provide: "
                        "remove it or set dryRun: true",
                    )
                )
        self.spec = spec
        self.metrics = metrics
        self.logs = logs
        self.subject = subject or Subject(service, namespace, spec.track_label)
        self.clock = clock or SystemClock()
        self.on_round = on_round
        self.call_timeout = call_timeout or spec.prometheus.timeout + 1.0
        self.limits = Limits.of(spec)
        self.carry_evidence = carry_evidence
        """One e-process per sequential gate for every window of this run (the engine's
        release), instead of a new test per window with alpha split ``windows`` ways."""
        self.budget = AlphaBudget(
            spec.alpha,
            tuple(gate.name for gate in spec.sequential_gates),
            1 if carry_evidence else windows,
        )
        self._round_at = 0.0
        self.concurrent = True
        """Each round's calls at once on threads; False for in-memory sources (offline)."""
        self.pool = pool or CallPool()
        """The threads this run's calls share (several runs of one process may share one)."""
        self._logs_since = 0.0
        self._sequential: dict[str, SequentialGate] = {}
        self._log_counts: dict[str, LogCounts] = {}
        self._batches: dict[str, dict[str, dict[str, Pinned]]] = {}
        """This round's batched instant reads by group (``_batch_group``), then by gate: one
        request per group for all gates (``_batched_calls``)."""
        self._count_read: tuple[str, Pinned] | None = None
        """The canary's request count read in this round's latest batch, with that batch's
        group (``_batch_request_count``); None where it is a call of its own."""
        """Matching log lines per comparing logs gate, track and pod, since counting began."""
        self._window_started = 0.0
        self.detection: flavours.Detection | None = None
        """``analysis.metrics: auto``: what the first round found (asked again until found)."""
        self.scrape_interval: float | None = spec.scrape_interval
        """Configured, or read from the source once it knows (None: not known yet)."""
        self.fleet_sample = FleetSample()
        """The stable fleet's pods read for the over-dispersion (``analysis.fleet_sample``):
        at most ``FLEET_SAMPLE_PODS`` of them, the same for every gate of the run."""

    @property
    def query_window(self) -> float:
        """The range of every query: the plan's queryWindow, widened to span enough scrapes."""
        return self.spec.range_for(self.scrape_interval)

    def _discover_scrape_interval(self) -> None:
        """Ask the source how often the service is scraped, until it knows (bounded wait)."""
        if self.scrape_interval is not None or not isinstance(self.metrics, ScrapeTiming):
            return
        labels = {"app": self.subject.service, "namespace": self.subject.namespace}
        scrape = {"scrape": _bind(self.metrics.scrape_interval, labels)}
        found = gather(scrape, self.call_timeout, pool=self.pool)
        value = found["scrape"]
        if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            self.scrape_interval = float(value)

    def known_scrape_interval(self) -> float | None:
        """The scrape interval, configured or asked of the source now (None: it cannot say)."""
        self._discover_scrape_interval()
        return self.scrape_interval

    def warmup_s(self) -> float:
        """``analysis.warmup`` in seconds: the plan's; else none against a fresh baseline
        (cold with the canary), one scrape interval (configured, or asked of the source now)
        + 30 s against stable. Waited before the first window, so the evidence of a cold
        canary judged against a warm fleet starts once it is warm."""
        fresh = self.subject.baseline
        if self.spec.warmup is None and not fresh:
            self._discover_scrape_interval()  # only the default against stable needs it
        return self.spec.warmup_for(self.scrape_interval, fresh)

    def window(self, duration: float) -> WindowResult:
        """Measure every ``interval`` for ``duration`` seconds, or until a limit breaches.

        A window that ends with gates still collecting (too little traffic yet, nothing
        failed) goes on measuring, every interval, for up to ``maxExtension`` more seconds:
        waiting decides a low-traffic canary, rolling it back does not.
        """
        started = self.clock.now()
        self._logs_since = started
        if not self.carry_evidence:
            self._sequential = {}  # each window is its own sequential test
            self._log_counts = {}
        for state in self._sequential.values():
            state.new_window()  # a step passes on evidence of its own window too
        interval = self.spec.interval
        rounds = max(1, math.ceil(duration / interval - 1e-9))
        extension = self.spec.max_extension
        deciding = [gate.name for gate in self.spec.deciding_gates]
        measurements: list[Measurement] = []
        verdict = judge_window([], deciding, self.limits, window_over=True)
        round_no = 0
        while True:
            round_no += 1
            extra = max(0, round_no - rounds)
            due = started + min(round_no * interval, duration) + min(extra * interval, extension)
            self.clock.sleep(max(0.0, due - self.clock.now()))
            batch = self.measure(round_no, started)
            measurements.extend(batch)
            over = round_no >= rounds
            verdict = judge_window(measurements, deciding, self.limits, over)
            if over and verdict.still_collecting and extra * interval < extension:
                verdict = judge_window(measurements, deciding, self.limits, window_over=False)
            if self.on_round is not None:
                self.on_round(batch, verdict)
            if verdict.decided:
                break
        extended = min(extra * interval, extension)
        if extended > 0:
            note = f" (window extended by {extended:g}s while gates were still collecting)"
            verdict = dataclasses.replace(verdict, reason=verdict.reason + note)
        detected = self.detection.reason if self.detection else None
        return WindowResult(
            verdict, tuple(measurements), started, self.clock.now(), extended, metrics=detected
        )

    @property
    def flavour(self) -> str:
        """The catalogue flavour the queries are built for: the plan's, or the detected one."""
        if self.spec.metrics != flavours.AUTO:
            return self.spec.metrics
        found = self.detection.flavour if self.detection else None
        return found or flavours.FALLBACK

    def _detect_flavour(self) -> None:
        """``auto``: ask once which flavours' request counters the service has (both tracks),
        until one is found; an unanswered query counts as no series for this round."""
        if self.spec.metrics != flavours.AUTO or (self.detection and self.detection.flavour):
            return
        window = self.query_window
        calls = {
            f"{name}/{track}": _bind(
                self.metrics.instant, render(REQUEST_COUNT[name], self.subject, track, window)
            )
            for name in flavours.DETECTION_ORDER
            for track in ("canary", "stable")
        }
        results = gather(calls, self.call_timeout, pool=self.pool)
        counts: dict[str, float | None] = {}
        for name in flavours.DETECTION_ORDER:
            values = [
                v
                for track in ("canary", "stable")
                if isinstance(answer := results[f"{name}/{track}"], list)
                for v in answer
                if not math.isnan(v)
            ]
            counts[name] = sum(values) if values else None
        self.detection = flavours.choose(counts)

    @property
    def read_subject(self) -> Subject:
        """``subject`` with the fleet's sample (``Subject.fleet_pods``): what a round's
        queries are rendered for."""
        pods = self.fleet_sample.pods
        if pods == self.subject.fleet_pods:
            return self.subject
        return dataclasses.replace(self.subject, fleet_pods=pods)

    def _fleet_gates(self) -> list[SequentialGate]:
        """The gates that read the stable fleet: sequential ones, and comparing logs gates
        whose platform reads the fleet's lines (their fleet requests are counted by
        ``LogCounts``, which takes in a pod joining its read pods itself)."""
        return [
            state
            for gate in self.spec.gates
            if (gate.sequential is not None or (gate.logs is not None and gate.logs.compares))
            and (state := self._sequential_state(gate)).fleet
        ]

    def _sample_fleet(self) -> None:
        """Against a fresh baseline, which of the stable fleet's pods this round reads: the
        pods asked of the source at the first round and every ``FLEET_DISCOVERY_ROUNDS``
        rounds (one instant query, a series per pod), the sample chosen from them
        (``fleet_sample.choose``) and told to every gate that learns from the fleet."""
        gates = self._fleet_gates() if self.subject.separate_fleet else []
        if not gates:
            return
        sample = self.fleet_sample
        if sample.due:
            whole = dataclasses.replace(self.subject, fleet_pods=None)
            selectors = []
            for state in gates:
                template = selector(state.evidence, state.main_role)
                rendered = render(template, whole, FLEET, self.query_window)
                selectors.append((rendered, isinstance(state.evidence, Buckets)))
            query = discovery_query(selectors)
            asked = {"fleet-pods": _bind(self.metrics.vector, query)}
            found = gather(asked, self.call_timeout, self.concurrent, self.pool)
            sample.learn(found["fleet-pods"])
        sample.tick()
        chosen = frozenset(sample.pods) if sample.pods is not None else None
        for state in gates:
            state.read_fleet(chosen, sample.present)

    def measure(self, round_no: int, window_started: float) -> list[Measurement]:
        """One round: every gate measured once, all calls at the same time."""
        self._discover_scrape_interval()
        started = self.clock.now()
        self._window_started = window_started
        self._round_at = started
        self._detect_flavour()
        self._sample_fleet()
        calls, queries = self._calls(started, window_started)
        results = self._by_gate(gather(calls, self.call_timeout, self.concurrent, self.pool))
        self._allocate_alpha(results)
        finished = self.clock.now()
        self._logs_since = started
        too_few = self._traffic(results)
        measurements = []
        for gate in self.spec.gates:
            judgement = self._judge(gate, results)
            # A sequential gate has its own maturity rule; a gate with nothing to judge (no
            # series) stays not applicable however little traffic there was.
            if not _counts(gate) and judgement.outcome is not Outcome.NOT_APPLICABLE:
                judgement = too_few or judgement
            measurements.append(
                Measurement(
                    gate=gate.name,
                    round=round_no,
                    outcome=judgement.outcome,
                    reason=judgement.reason,
                    started=started,
                    finished=finished,
                    dry_run=gate.dry_run,
                    evidence=Evidence(
                        limit=gate.limit.text(),
                        queries=queries.get(gate.name, {}),
                        canary=judgement.canary,
                        stable=judgement.stable,
                        detail=judgement.detail,
                    ),
                )
            )
        return measurements

    def _calls(
        self, now: float, window_started: float
    ) -> tuple[dict[str, Callable[[], Any]], dict[str, dict[str, str]]]:
        spec, subject = self.spec, self.subject
        calls: dict[str, Callable[[], Any]] = {}
        queries: dict[str, dict[str, str]] = {}
        self._batches = {}
        self._count_read = None
        if spec.min_canary_requests > 0:
            count = render(REQUEST_COUNT[self.flavour], subject, "canary", self.query_window)
            calls["requests"] = _bind(self.metrics.instant, count)
        for gate in spec.gates:
            if gate.logs is not None:
                by_pod = gate.logs.compares and isinstance(self.logs, PodLogSource)
                if isinstance(self.logs, StampedLogSource) and by_pod:
                    # Lines by pod, each with the time it was written: counted up to their
                    # pod's requests' last scrape (``log_counts``), read again from the
                    # earliest instant some pod's lines are counted up to.
                    counts = self._lines(gate)
                    since = counts.since(self._logs_since, now)
                    for track, key in self._log_keys(gate):
                        pods = self.fleet_sample.pods if track == FLEET else None
                        calls[f"{gate.name}/{key}"] = _bind(
                            self.logs.stamped_pod_lines_since, track, since, pods
                        )
                    queries[gate.name] = self._exposure_calls(
                        gate, calls, window_started, stamped=now
                    )
                    continue
                if isinstance(self.logs, PodLogSource) and by_pod:
                    # Lines by pod: their over-dispersion is estimated as the counters' is.
                    canary = _bind(self.logs.canary_pod_lines_since, self._logs_since)
                    stable = _bind(self.logs.stable_pod_lines_since, self._logs_since)
                    calls[f"{gate.name}/logs"], calls[f"{gate.name}/stable-logs"] = canary, stable
                    if self._sequential_state(gate).fleet:  # learnt from the stable fleet's
                        assert isinstance(self.logs, FleetLogSource)
                        fleet = _bind(
                            self.logs.fleet_pod_lines_since,
                            self._logs_since,
                            self.fleet_sample.pods,
                        )
                        calls[f"{gate.name}/fleet-logs"] = fleet
                    queries[gate.name] = self._exposure_calls(gate, calls, window_started)
                    continue
                if self.logs is not None:
                    calls[f"{gate.name}/logs"] = _bind(self.logs.lines_since, self._logs_since)
                if gate.logs.compares and isinstance(self.logs, StableLogSource):
                    stable = _bind(self.logs.stable_lines_since, self._logs_since)
                    calls[f"{gate.name}/stable-logs"] = stable
                    queries[gate.name] = self._exposure_calls(gate, calls, window_started)
                continue
            if gate.sequential is not None:
                queries[gate.name] = self._sequential_calls(gate, calls, window_started)
                continue
            template = gate.template(self.flavour) or ""
            # Stable is read for thresholds too: no series on either track = not exported.
            tracks = ("canary", "stable")
            rendered = {t: render(template, subject, t, self.query_window) for t in tracks}
            queries[gate.name] = rendered
            for track, query in rendered.items():
                calls[f"{gate.name}/{track}"] = self._metric_call(gate, query, now, window_started)
        if "requests" in calls and self._batches:
            self._batch_request_count(calls, now)
        self._batched_calls(calls)
        return calls, queries

    def _batch_request_count(self, calls: dict[str, Callable[[], Any]], now: float) -> None:
        """The canary's request count (``minCanaryRequests``) as one more read of the round's
        latest batch, pinned at ``now`` (``@``), instead of a request of its own: the same
        query at the same instant (a replay's ``instant`` evaluates it at its clock's now;
        a live round's used to at the moment Prometheus received it, milliseconds later), one
        request fewer a round. Given back under its own key by ``_by_gate``."""
        flavour, window = self.flavour, self.query_window
        series = render(REQUESTS[flavour], self.subject, "canary", window)
        count = render(REQUEST_COUNT[flavour], self.subject, "canary", window)
        latest = max(self._batches, key=self._group_instant)
        self._count_read = (latest, Pinned(count, series, now))
        del calls["requests"]

    def _batch_group(self, at: float) -> str:
        """Which request of the round a read at ``at`` goes in. Beside a fresh baseline every
        read is small (the canary's pods, as many of the baseline's, at most
        ``FLEET_SAMPLE_PODS`` of the fleet's): all in one request, whose cost to both sides
        (about 1.5 ms of the judge's CPU, 0.4 ms of Prometheus') is then most of what a
        second one would add. Against the stable fleet itself each instant's reads of every
        pod grow with the fleet: one request per instant, which Prometheus evaluates at once
        (it evaluates one query on one core)."""
        return ROUND_GROUP if self.subject.separate_fleet else f"{at:.3f}"

    def _group_instant(self, group: str) -> float:
        """The latest instant a group of this round's batched reads reads at."""
        return max(read.at for batch in self._batches[group].values() for read in batch.values())

    def _batched_calls(self, calls: dict[str, Callable[[], Any]]) -> None:
        """One request per group of batched reads (``_batch_group``: all of them, or those
        at one instant) for every gate of the round, each read keyed by its gate:
        the gates of a release read at the same instants, so their reads are as many
        requests as one gate's instead of one each. Split back by ``_by_gate``."""
        assert not self._batches or isinstance(self.metrics, PinnedVectors)
        for group, gates in self._batches.items():
            merged = {
                f"{gate}/{key}": read
                for gate, batch in gates.items()
                for key, read in batch.items()
            }
            if self._count_read is not None and self._count_read[0] == group:
                merged[COUNT_READ] = self._count_read[1]  # no gate's key: they all hold a "/"
            calls[f"{BATCH}/{group}"] = _bind(self.metrics.vectors, merged)  # type: ignore[union-attr]

    def _by_gate(self, results: dict[str, Any]) -> dict[str, Any]:
        """``results`` with each group's answer given to its gates, as a gate's own batch
        (``_unbatched``): a gate's reads under its keys, or the request's error for each; and
        the canary's request count batched with them (``_batch_request_count``) under
        ``requests``, as ``instant`` answers it (its values, or the request's error)."""
        for group, gates in self._batches.items():
            found = results.pop(f"{BATCH}/{group}", None)
            if self._count_read is not None and self._count_read[0] == group:
                counted = found.get(COUNT_READ, []) if isinstance(found, Mapping) else found
                results["requests"] = (
                    [sample.value for sample in counted] if isinstance(counted, list) else counted
                )
            for gate, batch in gates.items():
                mine: Any = found
                if isinstance(found, Mapping):
                    mine = {key: found.get(f"{gate}/{key}", []) for key in batch}
                results[f"{gate}/{BATCH}/{group}"] = mine
        return results

    @property
    def gate_alpha(self) -> float:
        """A sequential gate's share of the plan's alpha as it stands (see ``AlphaBudget``)."""
        names = self.budget.exported if self.budget.exported is not None else self.budget.gates
        return self.budget.share(names[0]) if names else self.spec.alpha

    def _allocate_alpha(self, results: Mapping[str, Any]) -> None:
        """The first round where any sequential gate has series, and every gate without
        series is past its grace (``_young``), fixes who shares alpha."""
        if self.budget.exported is not None:
            return
        exported = []
        for gate in self.spec.sequential_gates:
            prefix = f"{gate.name}/"
            mine = {k.removeprefix(prefix): v for k, v in results.items() if k.startswith(prefix)}
            mine = _unbatched(mine)
            if any(isinstance(answer, (Exception, _TimedOut)) for answer in mine.values()):
                return  # a query failed: who exports what is not known yet
            if gate.logs is not None:  # compared lines: exported when both tracks log
                if "logs" in mine and "stable-logs" in mine:
                    exported.append(gate.name)
            elif (state := self._sequential_state(gate)).exported(mine):
                exported.append(gate.name)
            elif self._young(state):
                return  # its series may still be on their way: not known to be missing
        self.budget.allocate(exported)

    def _young(self, state: SequentialGate) -> bool:
        """Whether a gate without series may yet have them: its reads lag the look by a
        scrape, and a new pod's (a canary's, a fresh baseline's) first samples reach
        Prometheus a scrape or a service-discovery refresh after it starts. Until the read
        instant is ``series_due_s`` past the window's start, no series is not "not
        exported": taken as that, a gate the service does export (read before its pods had a
        sample, with no warm-up) would get no alpha for the whole release and let a bad
        canary through as not applicable."""
        elapsed = self.clock.now() - self._window_started
        return elapsed - state.lag_s < state.series_due_s

    def sequential_gate(self, gate: GateSpec) -> SequentialGate:
        """The gate's evidence so far, created on first use: what a window's pod resumes
        from the previous window's state and carries on to the next (``analysis.carried``)."""
        return self._sequential_state(gate)

    @property
    def sequential_evidence(self) -> Mapping[str, SequentialGate]:
        return dict(self._sequential)

    def _sequential_state(self, gate: GateSpec) -> SequentialGate:
        state = self._sequential.get(gate.name)
        if state is None:
            if gate.logs is not None:  # matching lines out of requests, both tracks
                evidence: Counts | Buckets | None = Counts("log lines", REQUESTS[self.flavour])
                tolerance = gate.logs.tolerance
            else:
                evidence = METRICS[gate.metric].evidence_for(self.flavour)
                tolerance = gate.sequential.tolerance if gate.sequential is not None else None
            assert evidence is not None and tolerance is not None
            # Against a fresh baseline the over-dispersion is learnt from the stable fleet's
            # pods (``evidence``): for lines only where the logs can be read by its pods.
            fleet = self.subject.separate_fleet and (
                gate.logs is None or isinstance(self.logs, FleetLogSource)
            )
            state = self._sequential[gate.name] = SequentialGate(
                gate.name,
                evidence,
                tolerance,
                self.budget.share(gate.name),
                self.spec.min_canary_requests,
                grace_s=self.query_window,
                unit_s=self.spec.interval,
                scrape_s=self.scrape_interval,  # configured or discovered: else the gate probes
                counted_at_look=gate.logs is not None,  # lines, read as written
                fleet=fleet,
            )
        return state

    def _lines(self, gate: GateSpec) -> LogCounts:
        """A comparing logs gate's lines counted so far: kept with its sequential state (a
        window's pod resumes them from the earlier window's, ``carried``)."""
        state = self._sequential_state(gate)
        if state.lines is None:
            state.lines = LogCounts()
        self._log_counts[gate.name] = state.lines
        return state.lines

    def _sequential_calls(
        self, gate: GateSpec, calls: dict[str, Callable[[], Any]], window_started: float
    ) -> dict[str, str]:
        """Every pod's counters of both tracks around this look's common instant (see
        ``evidence.SequentialGate.plan``), and for a histogram stable's history before the
        window (until its boundary is set)."""
        state = self._sequential_state(gate)
        state.start_at(window_started)  # the release's first window; later ones carry on
        window = self.query_window
        rendered = {}
        reference = None
        if state.needs_reference and isinstance(state.evidence, Buckets):
            stable = render(state.evidence.buckets, self.subject, "stable", window)
            query = reference_query(state.evidence, stable, promql_duration(REFERENCE_LOOKBACK_S))
            rendered["reference"] = query
            reference = _bind(self.metrics.vector, query, window_started)
            if not state.history_read:
                # Asked first, while the history is still to be read: a reference without
                # cuts (a fresh baseline born with the canary) leaves the history unused, so
                # the fleet's ten minutes by pod and bucket are not read for nothing.
                asked = {"reference": reference}
                found = gather(asked, self.call_timeout, self.concurrent, self.pool)
                state.learn_reference(found["reference"])
                reference = _bind(_answer, found["reference"])
        subject = self.read_subject
        selectors = {
            (track, role): render(selector(state.evidence, role), subject, track, window)
            for track in state.tracks
            for role in roles(state.evidence)
        }
        batches: dict[str, dict[str, Pinned]] = {}
        batched = isinstance(self.metrics, PinnedVectors)
        for key, read in state.plan(selectors, self._round_at).items():
            if key.endswith("/now/v1"):
                rendered[key.removesuffix("/now/v1")] = read.query
            if batched and not read.series and read.selector is not None:
                group = self._batch_group(read.at)
                batches.setdefault(group, {})[key] = Pinned(read.query, read.selector, read.at)
                continue
            fetch = self.metrics.series if read.series else self.metrics.vector
            calls[f"{gate.name}/{key}"] = _bind(fetch, read.query, read.at)
        # The look's instant reads in a request or two (``source.batch_query``) instead of a
        # dozen or more: the canary's few pods, a fresh baseline's and the stable fleet's
        # sample beside it ride along with each other, at every instant, or against the
        # stable fleet itself one request per instant (``_batch_group``). The gates of the
        # round share these requests (``_batched_calls``): they read at the same instants.
        for group, batch in batches.items():
            self._batches.setdefault(group, {})[gate.name] = batch
        if reference is not None:
            calls[f"{gate.name}/reference"] = reference
        return rendered

    def _log_keys(self, gate: GateSpec) -> list[tuple[str, str]]:
        """The tracks whose lines a comparing logs gate reads, each with its answer's key."""
        keys = [("canary", "logs"), ("stable", "stable-logs")]
        if self._sequential_state(gate).fleet:  # learnt from the stable fleet's
            assert isinstance(self.logs, FleetLogSource)
            keys.append((FLEET, "fleet-logs"))
        return keys

    def _exposure_calls(
        self,
        gate: GateSpec,
        calls: dict[str, Callable[[], Any]],
        window_started: float,
        stamped: float | None = None,
    ) -> dict[str, str]:
        """Both tracks' request counters now and at the window's start (first look): what a
        comparing logs gate divides each track's matching lines by. ``stamped``: the look's
        time, where the lines come with the times they were written: the counters are then
        read at that instant with their pods' scrape times (``alignment.stamp_query``), at
        the window's start too, so each pod's lines are counted up to its last scrape."""
        state = self._sequential_state(gate)
        rendered = {}
        for track in state.tracks:
            query = render(REQUESTS[self.flavour], self.read_subject, track, self.query_window)
            rendered[f"{track}/exposure"] = query
            if stamped is None:
                calls[f"{gate.name}/{track}/exposure"] = _bind(self.metrics.vector, query)
            else:
                stamps = stamp_query(query)
                rendered[f"{track}/stamps"] = stamps
                calls[f"{gate.name}/{track}/exposure"] = _bind(self.metrics.vector, query, stamped)
                calls[f"{gate.name}/{track}/stamps"] = _bind(self.metrics.vector, stamps, stamped)
                if not state.started:
                    at = f"{gate.name}/{track}/stamps@start"
                    calls[at] = _bind(self.metrics.vector, stamps, window_started)
            if not state.started:
                at = f"{gate.name}/{track}/exposure@start"
                calls[at] = _bind(self.metrics.vector, query, window_started)
            if track == state.dispersion_track and not state.shares_read:
                # The learnt pods' requests before the window: how their lines should split.
                history = history_query(query, False, HISTORY_S, state.unit_span_s)
                rendered["shares/history"] = history
                calls[f"{gate.name}/shares/history"] = _bind(
                    self.metrics.series, history, window_started
                )
        # The scrape interval, from these request counters' samples as a count gate learns it
        # from its own (until known): what the gate's units of stable's pods last.
        counters = {(track, "exposure"): rendered[f"{track}/exposure"] for track in state.tracks}
        for key, read in state.scrape_reads(counters, self._round_at).items():
            calls[f"{gate.name}/{key}"] = _bind(self.metrics.vector, read.query, read.at)
        return rendered

    def _judge_log_comparison(self, gate: GateSpec, mine: Mapping[str, Any]) -> Judgement:
        """Matching lines per request, canary against stable: the lines are counted into a
        counter per track that starts at 0 with the window, then judged as a sequential gate."""
        assert gate.logs is not None
        if "logs" not in mine:
            return Judgement(Outcome.NOT_APPLICABLE, "this platform provides no logs")
        if "stable-logs" not in mine:
            return Judgement(
                Outcome.NOT_APPLICABLE, "this platform provides no stable logs to compare with"
            )
        stable_lines, share = mine["stable-logs"]
        limit = gate.logs
        stamped = isinstance(mine["logs"], tuple)  # (lines by pod, share): with their times
        canary = mine["logs"][0] if stamped else mine["logs"]
        read = [("canary", canary), ("stable", stable_lines)]
        if "fleet-logs" in mine:  # the stable fleet's lines, learnt from (never compared)
            read.append((FLEET, mine["fleet-logs"][0]))
        matched: dict[str, dict[str, int]] = {}
        written: dict[str, dict[str, list[float]]] = {}
        for track, found in read:
            if stamped:
                pods = found.items()
                written[track] = {pod: judge.matching_times(limit, lines) for pod, lines in pods}
            else:
                pods = _pod_lines(found).items()
                matched[track] = {
                    pod: len(judge.matching_lines(limit, lines)) for pod, lines in pods
                }
        state = self._sequential_state(gate)
        state.learn_scrape_interval(mine, self.clock.now() - self._window_started)
        tracks = state.tracks
        exposure = {track: mine.get(f"{track}/exposure") or [] for track in tracks}
        at_start = {track: mine.get(f"{track}/exposure@start") or [] for track in tracks}
        started = any(f"{track}/exposure@start" in mine for track in tracks)
        stamps = {track: mine.get(f"{track}/stamps") or [] for track in tracks}
        stamps_start = {track: mine.get(f"{track}/stamps@start") or [] for track in tracks}
        history = mine.get("shares/history")
        if isinstance(history, list):
            state.read_shares(history)
        counts = self._lines(gate)
        looked = counts.look(
            matched,
            exposure,
            at_start if started else None,
            share,
            written=written if stamped else None,
            stamps=stamps if stamped else None,
            stamps_start=stamps_start if stamped and started else None,
            at=self._round_at if stamped else None,
        )
        state.aligned_tracks = frozenset(t for t, yes in counts.aligned.items() if yes)
        return self._judge_sequential(gate, looked)

    def _judge_sequential(self, gate: GateSpec, mine: Mapping[str, Any]) -> Judgement:
        state = self._sequential_state(gate)
        state.alpha = self.budget.share(gate.name)
        if state.alpha <= 0:
            return Judgement(Outcome.NOT_APPLICABLE, _unshared_reason(state, mine))
        elapsed = self.clock.now() - self._window_started
        if gate.logs is not None:  # lines counted here, requests read at the look: as they are
            now: dict[str, dict[str, Any]] = {track: {} for track in state.tracks}
            start: dict[str, dict[str, Any]] = {track: {} for track in state.tracks}
            for key, value in mine.items():
                track, role = key.split("/", 1)
                if role.endswith("@start"):
                    start[track][role.removesuffix("@start")] = value
                else:
                    now[track][role] = value
            baseline = start if any(start.values()) else None
            return state.observe(now, baseline, None, elapsed, self._round_at)
        return state.observe_reads(mine, self._round_at, mine.get("reference"), elapsed)

    def _metric_call(
        self, gate: GateSpec, query: str, now: float, window_started: float
    ) -> Callable[[], Any]:
        if gate.statistical is None:
            return _bind(self.metrics.instant, query)
        limit = gate.statistical
        window = self.query_window
        # Samples closer than one scrape repeat the same scraped values: never by default.
        step = limit.step or max(1.0, window / limit.min_samples, self.scrape_interval or 0.0)
        # Prometheus answers at most 11,000 points per series: keep the latest 10,000.
        lookback = min(max(window, now - window_started), step * _MAX_SAMPLES)
        return _bind(self.metrics.range, query, now - lookback, now, step)

    def _traffic(self, results: Mapping[str, Any]) -> Judgement | None:
        if "requests" not in results or not isinstance(results["requests"], list):
            return None  # not required, or unmeasurable: each gate shows its own error
        return judge.judge_traffic(results["requests"], self.spec.min_canary_requests)

    def _judge(self, gate: GateSpec, results: Mapping[str, Any]) -> Judgement:
        mine = {k.split("/", 1)[1]: v for k, v in results.items() if k.startswith(f"{gate.name}/")}
        for value in mine.values():
            if isinstance(value, _TimedOut):
                return Judgement(
                    Outcome.ERROR, f"no answer within {self.call_timeout:g}s (source hangs?)"
                )
            if isinstance(value, MeasurementError):
                return Judgement(Outcome.ERROR, str(value))
            if isinstance(value, Exception):
                return Judgement(Outcome.ERROR, f"{type(value).__name__}: {value}")
        if gate.sequential is not None:
            return self._judge_sequential(gate, _unbatched(mine))
        if gate.logs is not None and gate.logs.compares:
            return self._judge_log_comparison(gate, mine)
        unit = METRICS[gate.metric].unit if gate.metric else "value"
        canary, stable = mine.get("canary", []), mine.get("stable")
        # A catalogue metric this service does not export (on either track, or on one):
        # nothing comparable, reported and left out. A plan's own query is never skipped this
        # way (a typo must not pass silently): it stays inconclusive.
        catalogue = gate.logs is None and gate.query is None and gate.metric is not None
        if catalogue and (missing := self._not_comparable(gate, canary, stable)):
            return missing
        if gate.threshold is not None:
            return judge.judge_threshold(gate.threshold, canary, gate.name, unit)
        if gate.relative is not None:
            return judge.judge_relative(gate.relative, canary, stable, gate.name, unit)
        if gate.statistical is not None:
            return judge.judge_statistical(gate.statistical, canary, stable, gate.name, unit)
        if "logs" not in mine:
            return Judgement(Outcome.NOT_APPLICABLE, "this platform provides no logs")
        return judge.judge_logs(gate.logs, mine["logs"])

    def _not_comparable(
        self, gate: GateSpec, canary: Sequence[float], stable: Sequence[float] | None
    ) -> Judgement | None:
        """NOT APPLICABLE when neither track has the metric's series, or only one has them
        where the gate compares tracks (a canary exporting a new metric, a metric dropped);
        COLLECTING while a young canary's series may still be on their way to Prometheus."""
        names = series_names(gate.template(self.flavour) or "")
        if not canary and not stable:
            return Judgement(Outcome.NOT_APPLICABLE, f"no series {names}")
        compares = gate.threshold is None
        if canary and (stable or not compares):
            return None
        if canary:
            return Judgement(
                Outcome.NOT_APPLICABLE,
                f"only the canary has series {names}: nothing on stable to compare with",
            )
        if self.clock.now() - self._window_started < self.query_window:
            return Judgement(Outcome.COLLECTING, f"no canary series {names} yet")
        return Judgement(
            Outcome.NOT_APPLICABLE,
            f"only stable has series {names}: the canary does not export them",
        )


_SERIES = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")


def series_names(template: str) -> str:
    """The metric names a PromQL template selects, for "no series ..." reasons."""
    return ", ".join(dict.fromkeys(_SERIES.findall(template)))


def _counts(gate: GateSpec) -> bool:
    """A gate that counts evidence since the window began (its own maturity rule)."""
    return gate.sequential is not None or (gate.logs is not None and gate.logs.compares)


BATCH = "batch"
"""The key of a gate's batched instant reads among a round's calls."""

ROUND_GROUP = "round"
"""The group of a round's batched reads where they all go in one request (``_batch_group``)."""

COUNT_READ = "requests"
"""The canary's request count's key inside a batch (``AnalysisRun._batch_request_count``)."""


def _unbatched(mine: Mapping[str, Any]) -> dict[str, Any]:
    """A gate's answers with its batched reads in place, each under its own key (a batch
    that failed stays as it is: the gate reports the error)."""
    found = {}
    for key, value in mine.items():
        if key.split("/", 1)[0] == BATCH and isinstance(value, Mapping):
            found.update(value)
        else:
            found[key] = value
    return found


def _pod_lines(found: Any) -> Mapping[str, Sequence[str]]:
    """A log source's answer by pod: a mapping already, or one list (no pods) as one unit."""
    return found if isinstance(found, Mapping) else {TRACK_UNIT: found}


def _answer(value: Any) -> Any:
    """An answer already gathered (an error or a timeout included, judged as ``gather``'s)."""
    return value


def _bind(function: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: function(*args)


def _unshared_reason(state: SequentialGate, answers: Mapping[str, Any]) -> str:
    """Why a gate got no share of the release's alpha: no series at all, or on one track only
    (a metric the canary adds or drops compares with nothing), when alpha was shared."""
    have = [
        track
        for track in ("canary", "stable")
        if any(isinstance(v, list) and v for k, v in answers.items() if k.startswith(f"{track}/"))
    ]
    when = "when the release's alpha was shared among the gates the service exports"
    if len(have) == 1:
        other = "stable" if have == ["canary"] else "the canary"
        return (
            f"series {state.evidence.series} for {have[0]} only, none on {other} to compare "
            f"with {when}"
        )
    return f"no series {state.evidence.series} {when}"
