"""A count gate's events that are its exposure's series narrowed by one matcher (5xx among
requests) are read inside the exposure's read: one evaluation of the series per pod and instant
instead of two of overlapping series, and the same numbers per pod (``alignment.Marker``).

The counts themselves, against a real Prometheus with a series restarting on its own, are held
by ``test_aligned_reads_prometheus.py`` and the recorded round (``test_round_answers.py``).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from canaryflow.analysis.alignment import EVENT_LABEL, Marker, lost_query, value_query
from canaryflow.analysis.catalogue import METRICS
from canaryflow.analysis.evidence import SequentialGate, roles, selector
from canaryflow.analysis.query import FLEET, Subject, render
from canaryflow.analysis.source import Sample

REQUESTS = 'http_requests_total{ app="shop",namespace="prod",track!="canary" }'
ERRORS = 'http_requests_total{ app="shop",namespace="prod",track!="canary",code=~"5.." }'


def test_events_narrowing_the_exposure_by_one_matcher_are_marked_within_it():
    marker = Marker.of(ERRORS, REQUESTS)
    assert marker == Marker("code", "5..")
    assert value_query(REQUESTS, False, marker) == (
        f"sum by (instance, pod, {EVENT_LABEL}) (label_replace({REQUESTS}, "
        f'"{EVENT_LABEL}", "1", "code", "5.."))'
    )
    lost = lost_query(REQUESTS, False, 10.0, marker)
    assert lost.startswith("sum(label_replace(") and lost.endswith(
        f"by (instance, pod, {EVENT_LABEL})"
    )


def test_an_equality_matcher_is_marked_by_its_value_taken_literally():
    cache = 'cache_requests_total{ app="a",result="a.b" }'
    assert Marker.of(cache, 'cache_requests_total{ app="a" }') == Marker("result", "a\\\\.b")


def test_events_of_another_metric_or_narrowed_otherwise_are_read_apart():
    gc = 'go_gc_duration_seconds_count{ app="a" }'
    assert Marker.of(gc, 'http_requests_total{ app="a" }') is None
    two = 'http_requests_total{ app="a",code=~"5..",method="GET" }'
    assert Marker.of(two, 'http_requests_total{ app="a" }') is None
    negated = 'http_requests_total{ app="a",code!~"2.." }'
    assert Marker.of(negated, 'http_requests_total{ app="a" }') is None
    again = 'http_requests_total{ app="a",code!="",code=~"5.." }'
    assert Marker.of(again, 'http_requests_total{ app="a",code!="" }') is None


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)),
        min_size=1,
    )
)
def test_a_marked_answer_splits_into_each_pods_events_and_all_its_requests(pods):
    answer = []
    for pod, (errors, others) in pods.items():
        labels = {"instance": pod, "pod": pod}
        if errors:
            answer.append(Sample({**labels, EVENT_LABEL: "1"}, float(errors)))
        answer.append(Sample(labels, float(others)))
    events, exposure = Marker.split(answer)
    assert {s.labels["pod"]: s.value for s in events} == {
        pod: errors for pod, (errors, _) in pods.items() if errors
    }
    assert {s.labels["pod"]: s.value for s in exposure} == {
        pod: errors + others for pod, (errors, others) in pods.items()
    }
    assert all(EVENT_LABEL not in s.labels for s in events + exposure)


def test_a_look_of_error_rate_reads_no_events_apart_on_any_track():
    evidence = METRICS["error-rate"].evidence["go"]
    gate = SequentialGate("error-rate", evidence, 0.2, 0.05, 1, scrape_s=15.0, fleet=True)
    subject = Subject("shop", "prod", baseline=True)
    selectors = {
        (track, role): render(selector(evidence, role), subject, track, 60.0)
        for track in gate.tracks
        for role in roles(evidence)
    }
    reads = gate.plan(selectors, 1_000_000.0)
    assert not [key for key in reads if "/events/" in key and "/history" not in key]
    for track in ("canary", "stable", FLEET):
        assert EVENT_LABEL in reads[f"{track}/exposure/now/v1"].query
