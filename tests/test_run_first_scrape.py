"""``canaryflow run --platform kubernetes`` waits for a fresh baseline's first scrape as the
workflow's analyze pod does (one code path: ``release.first_scrape``): the first window opens
only once Prometheus has the baseline's first sample, and a baseline never scraped ends the
first step as an ERROR naming the broken setup (a rollback), never a judgement against nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from test_fresh_baseline import BaselineCapable

from canaryflow.commands import run as run_command
from canaryflow.release import first_scrape
from canaryflow.release.decision import Phase
from canaryflow.release.events import EventKind
from canaryflow.release.record import ReleaseRecord

PLAN = {
    "service": {"name": "svc", "namespace": "shop"},
    "router": {"kind": "gateway-api"},  # splits three ways: a fresh baseline runs
    "steps": [{"weight": 10, "duration": "1s"}],
    "analysis": {
        "prometheus": {"url": "http://prometheus.invalid:9090"},
        "interval": "1s",
        "maxExtension": "0s",
    },
}
BASELINE_UP = 'count(up{app="svc",namespace="shop",track="baseline"})'


class Prometheus:
    """Answers ``up`` of the baseline once it has been asked ``scraped_after`` times (None:
    never); every other query has no data. Keeps every query, in order."""

    def __init__(self, scraped_after: int | None):
        self.scraped_after = scraped_after
        self.asked: list[str] = []

    def instant(self, query: str, *args, **kwargs):
        self.asked.append(query)
        if query == BASELINE_UP:
            ups = self.asked.count(BASELINE_UP)
            return [1.0] if self.scraped_after is not None and ups > self.scraped_after else []
        return []

    def scrape_interval(self, labels) -> None:
        """How often the service is scraped (``ScrapeTiming``): it cannot say."""
        return None

    def __getattr__(self, name):  # any other read: no data
        def nothing(*args, **kwargs):
            self.asked.append(name)
            return []

        return nothing


def run_on_cluster(
    tmp_path: Path,
    monkeypatch,
    prometheus: Prometheus,
    plan: dict = PLAN,
    platform: BaselineCapable | None = None,
):
    """``run --platform kubernetes``'s own path (``_run_cluster``) with the cluster and
    Prometheus stood in for; the wait shortened (0.5 s, polled every 0.05 s)."""
    plan_file = tmp_path / "canaryflow.yaml"
    plan_file.write_text(yaml.safe_dump(plan))
    platform = platform or BaselineCapable()
    monkeypatch.setattr(
        "canaryflow.kubernetes.from_plan.platform_for", lambda plan, client: platform
    )
    monkeypatch.setattr(
        "canaryflow.kubernetes.platform.api_client_from_environment", lambda *a, **k: None
    )
    monkeypatch.setattr(
        "canaryflow.analysis.source.PrometheusSource.for_endpoint",
        classmethod(lambda cls, endpoint: prometheus),
    )
    monkeypatch.setattr(first_scrape, "baseline_patience", lambda spec, scrape=None: 0.5)
    monkeypatch.setattr(first_scrape, "BASELINE_POLL_S", 0.05)
    from canaryflow.plan.load import load_plan

    args = argparse.Namespace(
        plan=plan_file,
        platform="kubernetes",
        version="v2",
        image="registry.example/svc@sha256:" + "2" * 64,
        kubeconfig=None,
        context=None,
    )
    record = ReleaseRecord("svc", "v2", "kubernetes")
    result = run_command._run_cluster(load_plan(plan_file), args, record, {})
    return result, record, platform


def kinds(record: ReleaseRecord) -> list[str]:
    return [str(event.kind) for event in record.events]


def test_a_baseline_never_scraped_ends_the_first_step_as_an_error_naming_the_setup(
    tmp_path, monkeypatch
):
    prometheus = Prometheus(scraped_after=None)

    result, record, platform = run_on_cluster(tmp_path, monkeypatch, prometheus)

    assert result.phase == Phase.ROLLED_BACK
    assert "fresh baseline not scraped by Prometheus after" in result.reason
    assert 'track="baseline"' in result.reason and "analysis.baseline: stable" in result.reason
    assert set(prometheus.asked) == {BASELINE_UP}, "nothing judged: no gate was asked"

    assert prometheus.asked.count(BASELINE_UP) > 1, "polled, not asked once"
    (scraped,) = [e for e in record.events if e.kind == EventKind.BASELINE_SCRAPED]
    assert scraped.data["scraped"] is False and scraped.data["waited"] >= 0.5
    assert kinds(record).index(EventKind.BASELINE_WAIT) < kinds(record).index(
        EventKind.BASELINE_SCRAPED
    )
    (ended,) = [e for e in record.events if e.kind == EventKind.WINDOW_ENDED]
    assert str(ended.data["verdict"]) == "error"
    assert ("rollback",) in platform.router.calls and platform.router.weight == (0, 0)


def test_the_first_window_opens_only_once_prometheus_has_scraped_the_baseline(
    tmp_path, monkeypatch
):
    prometheus = Prometheus(scraped_after=3)

    result, record, _ = run_on_cluster(tmp_path, monkeypatch, prometheus)

    (scraped,) = [e for e in record.events if e.kind == EventKind.BASELINE_SCRAPED]
    assert scraped.data["scraped"] is True
    ups = [i for i, q in enumerate(prometheus.asked) if q == BASELINE_UP]
    assert len(ups) == 4, "asked until the first yes, then no more"
    assert prometheus.asked[: ups[-1] + 1] == [BASELINE_UP] * 4, "no gate asked before it"
    assert len(prometheus.asked) > len(ups), "then the window measured"
    assert "fresh baseline not scraped" not in result.reason


@pytest.mark.parametrize("baseline", ["stable", "fresh"])
def test_without_a_baseline_to_wait_for_prometheus_is_not_asked_about_one(
    tmp_path, monkeypatch, baseline
):
    """``baseline: stable``, or a platform that cannot run one: nothing to wait for."""
    analysis = {**PLAN["analysis"], "baseline": baseline, "warmup": "0s"}  # no 45 s wait
    plan = {**PLAN, "analysis": analysis}
    platform = BaselineCapable(problem="splits two ways" if baseline == "fresh" else None)
    prometheus = Prometheus(scraped_after=None)

    _, record, _ = run_on_cluster(tmp_path, monkeypatch, prometheus, plan, platform)

    assert BASELINE_UP not in prometheus.asked
    assert EventKind.BASELINE_SCRAPED not in kinds(record)
