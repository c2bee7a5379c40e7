"""Identical canary and stable, judged through a real Prometheus that scrapes the way clusters
do: every 15 s (the chart's PodMonitor default), or every second with a 1 s interval, the canary
appearing only when its window starts, and a service that does not export every catalogue
metric. An identical canary must pass; nothing it cannot compare may roll it back.

Each module fixture starts one Prometheus and several identical releases (one canary and one
stable ``SimulatedService`` per app) and judges every window at once, so the many releases cost
the time of one.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from prom_fixtures import BUCKETS, NAMESPACE, SimulatedService, Traffic

from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.run import AnalysisRun, WindowResult
from canaryflow.analysis.source import PrometheusSource
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.local.process import ProcessGroup
from canaryflow.local.prometheus import PrometheusServer

pytestmark = pytest.mark.slow

RELEASES = 6
"""Identical releases judged per scrape interval."""

NO_CADVISOR = Traffic(error_share=0.001, cadvisor=False)
"""A service as a local run sees it: no cAdvisor, so cpu-throttling has no series at all."""

USUAL_GATES = [{"metric": "error-rate"}, {"metric": "latency-p95"}, {"metric": "cpu-throttling"}]
"""Two sequential gates and a threshold gate whose metric the service does not export."""


@dataclass(frozen=True)
class Release:
    app: str
    spec: Mapping[str, object]
    duration_s: float
    canary: Traffic = NO_CADVISOR
    stable: Traffic = NO_CADVISOR


def judge_releases(
    workdir: Path, scrape_interval: float, releases: list[Release]
) -> dict[str, WindowResult]:
    """Start every stable, let Prometheus scrape it, then deploy every canary and judge each
    release's window at once, the way a release starts a window right after the canary is up."""
    results: dict[str, WindowResult] = {}
    stables, canaries = {}, {}
    with ProcessGroup(workdir) as group:
        try:
            for release in releases:
                stables[release.app] = SimulatedService(release.stable).start()
            server = PrometheusServer(group, workdir / "prom", scrape_interval=scrape_interval)
            server.start(_targets(stables, "stable"))
            server.wait_targets_up(len(stables), timeout_s=scrape_interval * 3 + 10)
            for release in releases:
                canaries[release.app] = SimulatedService(release.canary).start()
            server.set_targets(_targets(stables, "stable") + _targets(canaries, "canary"))

            def judge(release: Release) -> None:
                spec = AnalysisSpec.model_validate(release.spec)
                source = PrometheusSource(server.url, timeout=5)
                run = AnalysisRun(spec, source, release.app, NAMESPACE)
                results[release.app] = run.window(release.duration_s)

            threads = [threading.Thread(target=judge, args=(r,), daemon=True) for r in releases]
            for thread in threads:
                thread.start()
            longest = max(r.duration_s + 60 + 30 for r in releases)  # window + maxExtension
            deadline = time.monotonic() + longest
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        finally:
            for service in [*stables.values(), *canaries.values()]:
                service.stop()
    return results


def _targets(services: Mapping[str, SimulatedService], track: str):
    labels = {"namespace": NAMESPACE, "track": track, "version": track}
    return [(s.address, {"app": app, **labels}) for app, s in services.items()]


def passed(results: Mapping[str, WindowResult], prefix: str) -> tuple[int, int]:
    mine = [r for app, r in results.items() if app.startswith(prefix)]
    return sum(r.verdict.outcome is Outcome.PASS for r in mine), len(mine)


def explain(results: Mapping[str, WindowResult]) -> str:
    return "\n".join(f"{app}: {r.verdict.outcome}: {r.reason}" for app, r in results.items())


# A 15 s scrape ------------------------------------------------------------------------------

FIFTEEN = {"interval": "5s"}  # the plan's other defaults: queryWindow 30s, minCanaryRequests 20
MISSING_CUTS = tuple(b for b in BUCKETS if b not in (0.05, 0.1))
"""A new version's latency histogram without the 50 ms and 100 ms buckets stable has."""


@pytest.fixture(scope="module")
def fifteen_second_scrape(tmp_path_factory: pytest.TempPathFactory) -> dict[str, WindowResult]:
    releases = [
        Release(f"same-{n}", {**FIFTEEN, "gates": USUAL_GATES}, 45) for n in range(RELEASES)
    ]
    releases += [
        Release(  # one scrape per queryWindow: increase(...[15s]) holds one sample
            "short-range",
            {
                **FIFTEEN,
                "queryWindow": "15s",
                "gates": [
                    {"name": "error-share", "metric": "error-rate", "threshold": {"max": 0.01}}
                ],
            },
            45,
        ),
        Release(
            "new-buckets",
            {**FIFTEEN, "gates": [{"metric": "error-rate"}, {"metric": "latency-p95"}]},
            45,
            canary=dataclasses.replace(NO_CADVISOR, buckets=MISSING_CUTS),
        ),
        Release(
            "only-canary-cache",
            {**FIFTEEN, "gates": [{"metric": "error-rate"}, {"metric": "cache-miss-rate"}]},
            45,
            stable=dataclasses.replace(NO_CADVISOR, cache=False),
        ),
    ]
    return judge_releases(tmp_path_factory.mktemp("fifteen"), 15.0, releases)


def test_identical_releases_with_a_15s_scrape_pass(fifteen_second_scrape):
    results = fifteen_second_scrape
    assert passed(results, "same-") == (RELEASES, RELEASES), explain(results)
    for app, result in results.items():
        if app.startswith("same-"):
            gates = {g.gate: g.outcome for g in result.verdict.gates}
            assert gates["cpu-throttling"] is Outcome.NOT_APPLICABLE, app
            assert "cpu-throttling: not applicable: no series" in result.reason


def test_every_range_spans_four_scrapes_read_from_prometheus(fifteen_second_scrape):
    result = fifteen_second_scrape["short-range"]
    assert result.verdict.outcome is Outcome.PASS, result.reason
    last = result.measurements[-1]
    assert "[60s]" in last.evidence.queries["canary"], "4 x 15 s, not the plan's 15 s"


def test_a_bucket_layout_stable_lacks_is_judged_at_the_cuts_both_have(fifteen_second_scrape):
    result = fifteen_second_scrape["new-buckets"]
    assert result.verdict.outcome is Outcome.PASS, result.reason
    [latency] = [g for g in result.verdict.gates if g.gate == "latency-p95"]
    assert latency.outcome is Outcome.PASS, latency.reason
    last = [m for m in result.measurements if m.gate == "latency-p95"][-1]
    cuts = str(last.evidence.detail["cuts"]).split(", ")
    assert cuts and not {"0.05", "0.1"} & set(cuts), "only bounds both layouts have"


def test_a_metric_only_the_canary_exports_is_reported_never_a_rollback(fifteen_second_scrape):
    result = fifteen_second_scrape["only-canary-cache"]
    assert result.verdict.outcome is Outcome.PASS, result.reason
    assert "cache-miss-rate: not applicable" in result.reason
    assert "for canary only" in result.reason


# A 1 s scrape with a 1 s interval -----------------------------------------------------------


@pytest.fixture(scope="module")
def one_second_scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    spec = {"interval": "1s", "queryWindow": "4s", "gates": USUAL_GATES}
    releases = [Release(f"same-{n}", spec, 6) for n in range(RELEASES)]
    yield judge_releases(tmp_path_factory.mktemp("one"), 1.0, releases)


def test_identical_releases_with_a_1s_interval_pass(one_second_scrape):
    results = one_second_scrape
    assert passed(results, "same-") == (RELEASES, RELEASES), explain(results)
    for result in results.values():
        gates = {g.gate: g.outcome for g in result.verdict.gates}
        assert gates["cpu-throttling"] is Outcome.NOT_APPLICABLE
