"""What one analysis round reads from a real Prometheus holding a backfilled fleet: counted in
numbers returned and requests made, never in seconds.

A sequential gate sums each pod's series in PromQL before they leave Prometheus, so ten label
values per pod read exactly as much as one; and each round makes one request per instant for
all its gates, however many reads (gates, roles, values, scrape times, restarted series) it
holds, the canary's request count included; beside a fresh baseline, whose reads are all
small (the stable fleet's through a sample), one request for the whole round.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from canaryflow.bench.cost import Shape, measure

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def costs(tmp_path_factory: pytest.TempPathFactory):
    """One release on a fleet of 5 stable pods, with one and with ten label values each, and
    with one label value read one request per read (as before reads were batched); the same
    beside a fresh baseline, batched and not."""
    found = {}
    for labels in (1, 10):
        workdir: Path = tmp_path_factory.mktemp(f"cost-{labels}")
        found[labels] = measure(Shape(1, 5, labels, minutes=6), workdir, rounds=3)
    workdir = tmp_path_factory.mktemp("cost-unbatched")
    found["unbatched"] = measure(Shape(1, 5, 1, minutes=6), workdir, rounds=3, batched=False)
    workdir = tmp_path_factory.mktemp("cost-fresh")
    found["fresh"] = measure(Shape(1, 5, 1, minutes=6, fresh=True), workdir, rounds=3)
    workdir = tmp_path_factory.mktemp("cost-fresh-unbatched")
    fresh = Shape(1, 5, 1, minutes=6, fresh=True)
    found["fresh-unbatched"] = measure(fresh, workdir, rounds=3, batched=False)
    return found


def test_the_fleet_has_ten_times_the_series_with_ten_label_values(costs):
    assert costs[10].shape.series == 10 * costs[1].shape.series


def test_the_rounds_judged_data_not_empty_answers(costs):
    for cost in costs.values():  # canary and stable pods count alike in the backfill
        assert cost.outcomes == ("error-rate: pass", "latency-p99: pass")


def test_a_round_reads_as_many_numbers_with_ten_label_values_as_with_one(costs):
    # Per gate: every pod's sum (by bucket bound for the histogram) at two instants, and its
    # scrape time at both, read from one role (a pod's series are scraped at once); what
    # restarted series lost is empty here. 6 pods, 9 bucket bounds.
    pods, stable, buckets = 6, 5, 9
    # error-rate: each pod's 5xx and other requests apart (its events and the rest of its
    # exposure, read in one), at two instants, then its times
    counts = 2 * (2 * pods) + 2 * pods
    histogram = 2 * pods * buckets + 2 * pods  # latency-p99: bucket sums, times
    canary_requests = 1  # the plan's minimum of canary requests: one number
    assert stable + 1 == pods
    expected = counts + histogram + canary_requests
    assert costs[1].samples_per_round == costs[10].samples_per_round == expected


def test_a_rounds_gates_ask_prometheus_once_per_instant_together(costs):
    # The canary's reads ride along with stable's, the two gates' with each other's, and the
    # canary's request count (minCanaryRequests) with the later instant's.
    instants = 2
    assert costs[1].requests_per_round == costs[10].requests_per_round == instants


def test_one_query_per_instant_reads_what_one_request_per_read_did(costs):
    batched, unbatched = costs[1], costs["unbatched"]
    assert batched.samples_per_round == unbatched.samples_per_round
    assert batched.outcomes == unbatched.outcomes
    # Per track and role read: the value at 2 instants and what restarted series lost since
    # the previous one (3 reads), and per track the scrape times at 2 instants. error-rate's
    # events (5xx) are read inside its exposure's reads (``alignment.Marker``): 2 tracks x 1
    # role read, latency-p99 2 x 1, and the canary's request count is one more.
    assert unbatched.requests_per_round == 3 * (2 + 2) + 2 * (2 + 2) + 1
    assert batched.requests_per_round == 2  # per instant, both gates and the count together


def test_beside_a_fresh_baseline_a_round_is_one_request(costs):
    fresh = costs["fresh"]
    assert fresh.outcomes == ("error-rate: pass", "latency-p99: pass")
    # The compared tracks' reads, the fleet sample's and the canary's request count, at both
    # instants: one request (5 a round before: one per instant, the fleet's apart, the count
    # on its own).
    assert fresh.requests_per_round == 1
    unbatched = costs["fresh-unbatched"]  # every read a request of its own
    assert fresh.samples_per_round == unbatched.samples_per_round
    assert fresh.outcomes == unbatched.outcomes


def test_beside_a_fresh_baseline_the_fleet_reads_no_bucket_but_the_cuts_and_inf(costs):
    # The fleet's 5 pods: error-rate as against stable; latency-p99's bucket sums at the
    # cuts and +Inf only (this fleet's p50 and p99 fall at 0.025 and 1: 3 of 9 bounds). The
    # canary and the baseline (one pod each) are read in full.
    fleet, compared, buckets, read = 5, 2, 9, 3
    counts = 2 * (2 * (fleet + compared)) + 2 * (fleet + compared)
    histogram = 2 * (compared * buckets + fleet * read) + 2 * (fleet + compared)
    assert costs["fresh"].samples_per_round == counts + histogram + 1
