"""The window's verdict: Argo Rollouts' limits, decided at the first breach, never fooled by
errors or missing data. Examples first, then properties over any sequence of measurements."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from canaryflow.analysis.measurement import Evidence, Measurement, Outcome
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.analysis.verdict import Limits, judge_window

P, F, N, E = Outcome.PASS, Outcome.FAIL, Outcome.INCONCLUSIVE, Outcome.ERROR
LIMITS = Limits(failure_limit=0, consecutive_error_limit=2, inconclusive_limit=3)


def measured(outcome: Outcome, round_no: int, gate: str = "error-rate", dry_run=False):
    return Measurement(
        gate=gate,
        round=round_no,
        outcome=outcome,
        reason=f"{gate} {outcome.value} in round {round_no}",
        started=float(round_no),
        finished=float(round_no),
        evidence=Evidence(limit="≤ 1%"),
        dry_run=dry_run,
    )


def rounds(*outcomes: Outcome, gate: str = "error-rate") -> list[Measurement]:
    return [measured(outcome, n, gate) for n, outcome in enumerate(outcomes, start=1)]


def verdict(measurements, gates=("error-rate",), limits=LIMITS, over=True):
    return judge_window(measurements, list(gates), limits, window_over=over)


def test_a_failure_beyond_the_limit_decides_at_once():
    result = verdict(rounds(P, P, F, P), over=False)
    assert (result.outcome, result.decided, result.decided_in_round) == (F, True, 3)
    assert result.reason == ("error-rate: 1 failed (failureLimit 0): error-rate fail in round 3")


def test_failures_within_the_limit_are_tolerated():
    lenient = Limits(failure_limit=1)
    assert verdict(rounds(P, F, P), limits=lenient).outcome is P
    assert verdict(rounds(P, F, P, F), limits=lenient).decided_in_round == 4


def test_errors_in_a_row_beyond_the_limit_end_the_window_as_error():
    result = verdict(rounds(P, E, E, E, P), over=False)
    assert (result.outcome, result.decided_in_round) == (E, 4)
    assert "3 errors in a row (consecutiveErrorLimit 2)" in result.reason


def test_errors_that_are_not_consecutive_are_tolerated():
    assert verdict(rounds(E, E, P, E, E, P)).outcome is P


def test_a_window_where_every_measurement_errored_never_passes():  # Argo Rollouts #4479
    result = verdict(rounds(E, E), limits=Limits(consecutive_error_limit=5))
    assert result.outcome is E
    assert "every measurement errored" in result.reason


def test_too_many_inconclusive_measurements_end_the_window_inconclusive():
    result = verdict(rounds(N, P, N, N, N), over=False)
    assert (result.outcome, result.decided_in_round) == (N, 5)


def test_no_pass_or_no_measurement_at_all_is_inconclusive():
    assert verdict(rounds(N, N)).outcome is N
    assert verdict([]).outcome is N
    assert verdict([]).reason == "error-rate: never measured"


def test_before_the_end_the_verdict_is_provisional():
    result = verdict(rounds(P), over=False)
    assert (result.outcome, result.decided) == (P, False)


def test_every_gate_needs_a_pass_and_the_worst_gate_wins():
    two = ("error-rate", "p95")
    both = [*rounds(P, P), *rounds(P, N, gate="p95")]
    assert verdict(both, gates=two).outcome is P
    one_silent = rounds(P, P)
    assert verdict(one_silent, gates=two).outcome is N
    breach = [*rounds(P, E, E, E, gate="p95"), *rounds(P, P, P, F)]
    result = verdict(breach, gates=two)
    assert (result.outcome, result.decided_in_round) == (F, 4)  # FAIL outranks ERROR


def test_dry_run_gates_are_reported_but_never_decide():
    spec = AnalysisSpec.model_validate(
        {"gates": [{"metric": "error-rate"}, {"metric": "latency-p99", "dryRun": True}]}
    )
    deciding = [gate.name for gate in spec.deciding_gates]
    measurements = [*rounds(P, P), *rounds(F, F, gate="latency-p99")]
    assert verdict(measurements, gates=deciding).outcome is P


# Properties -------------------------------------------------------------------------------

outcomes = st.sampled_from([P, F, N, E])
limits = st.builds(
    Limits,
    failure_limit=st.integers(0, 3),
    consecutive_error_limit=st.integers(0, 4),
    inconclusive_limit=st.integers(0, 4),
)
sequences = st.lists(outcomes, max_size=12)


@given(st.lists(st.sampled_from([N, E]), max_size=12), limits)
def test_errors_and_inconclusives_alone_never_pass(sequence, limits):
    assert verdict(rounds(*sequence), limits=limits).outcome is not P


@given(sequences, st.integers(0, 12), limits)
def test_adding_a_failure_never_turns_a_failure_into_a_pass(sequence, position, limits):
    before = verdict(rounds(*sequence), limits=limits).outcome
    after = verdict(rounds(*sequence[:position], F, *sequence[position:]), limits=limits).outcome
    if before is F:
        assert after is F


@given(sequences, limits)
def test_a_later_failure_never_turns_a_non_pass_into_a_pass(sequence, limits):
    # Inserted earlier, a tolerated failure may break an error streak (Argo Rollouts counts
    # consecutive errors the same way); appended, it can only make things worse.
    before = verdict(rounds(*sequence), limits=limits).outcome
    if before is not P:
        assert verdict(rounds(*sequence, F), limits=limits).outcome is not P


@given(sequences, sequences, limits)
def test_nothing_after_the_first_breach_changes_the_verdict(sequence, suffix, limits):
    early = verdict(rounds(*sequence), limits=limits, over=False)
    if early.decided:
        cut = sequence[: early.decided_in_round]
        later = verdict(rounds(*cut, *suffix), limits=limits, over=True)
        assert (later.outcome, later.decided_in_round) == (early.outcome, early.decided_in_round)


@given(sequences, limits)
def test_the_decision_round_is_the_first_breach(sequence, limits):
    result = verdict(rounds(*sequence), limits=limits, over=False)
    if result.decided:
        before = verdict(rounds(*sequence[: result.decided_in_round - 1]), limits=limits)
        assert before.decided_in_round is None


@given(sequences, limits)
def test_a_pass_needs_a_passing_measurement_and_no_breach(sequence, limits):
    result = verdict(rounds(*sequence), limits=limits)
    if result.outcome is P:
        assert P in sequence
        assert result.decided_in_round is None
        assert sequence.count(F) <= limits.failure_limit


@given(sequences, st.lists(outcomes, max_size=12), limits)
def test_dry_run_measurements_never_change_the_verdict(sequence, dry, limits):
    plain = rounds(*sequence)
    noise = [measured(o, n, gate="dry", dry_run=True) for n, o in enumerate(dry, start=1)]
    assert verdict(plain, limits=limits) == verdict(
        [*plain, *noise], gates=("error-rate",), limits=limits
    )


# Maturity and applicability -------------------------------------------------------------------

C, NA = Outcome.COLLECTING, Outcome.NOT_APPLICABLE


def test_collecting_counts_against_no_limit_however_long_it_lasts():
    young = verdict(rounds(C, C, C, C, C, C, P), over=False)
    assert not young.decided
    assert verdict(rounds(C, C, C, C, C, C, P)).outcome is P


def test_a_window_that_ends_while_still_collecting_is_inconclusive_never_a_pass():
    result = verdict(rounds(C, C, C))
    assert result.outcome is N
    assert "window ended while still collecting data" in result.reason


def test_a_gate_not_applicable_in_every_round_is_named_once_and_left_out():
    measurements = rounds(NA, NA, NA, gate="cache-miss-rate") + rounds(P, P, P)
    result = verdict(measurements, gates=("error-rate", "cache-miss-rate"))
    assert result.outcome is P
    assert result.reason == (
        "all 1 gates passed (cache-miss-rate: not applicable: cache-miss-rate not-applicable "
        "in round 3)"
    )


def test_a_window_in_which_no_gate_could_judge_is_inconclusive():
    result = verdict(rounds(NA, NA))
    assert result.outcome is N
    assert result.reason.startswith("no gate could judge this window")


@given(st.lists(st.sampled_from([P, F, N, E, C, NA]), max_size=12))
def test_collecting_and_not_applicable_never_make_a_window_pass_on_their_own(outcomes):
    result = verdict(rounds(*outcomes))
    assert result.outcome in {P, F, N, E}
    if result.outcome is P:
        assert P in outcomes


# The last state decides -----------------------------------------------------------------------


def test_not_applicable_once_established_is_not_overturned_by_an_earlier_collecting():
    # Round 1 came before Prometheus had scraped anything: too few requests, so collecting.
    measurements = rounds(C, NA, NA, gate="cpu-throttling") + rounds(C, P, P)
    result = verdict(measurements, gates=("error-rate", "cpu-throttling"))
    assert result.outcome is P, result.reason
    assert "cpu-throttling: not applicable" in result.reason


def test_a_pass_some_rounds_ago_is_not_a_pass_when_the_gate_is_collecting_again():
    result = verdict(rounds(P, P, C))
    assert result.outcome is N
    assert result.still_collecting
    assert "window ended while still collecting data" in result.reason


def test_a_gate_judging_at_the_end_decides_even_if_it_was_not_applicable_before():
    assert verdict(rounds(NA, C, P)).outcome is P


def test_only_collecting_gates_make_a_window_worth_extending():
    gates = ("error-rate", "latency-p99")
    waiting = verdict(rounds(P, P) + rounds(C, C, gate="latency-p99"), gates=gates)
    assert waiting.outcome is N and waiting.still_collecting
    unsure = verdict(rounds(N, N) + rounds(C, C, gate="latency-p99"), gates=gates)
    assert unsure.outcome is N and not unsure.still_collecting, "more time cures no missing data"
    assert not verdict(rounds(E, E)).still_collecting
    nothing_yet = verdict(rounds(NA, NA))
    assert nothing_yet.outcome is N and nothing_yet.still_collecting, "series may still come"


states = st.sampled_from([P, C, NA])


@given(st.lists(st.sampled_from([P, F, N, E, C, NA]), max_size=10), states, limits)
def test_the_last_state_decides_an_unbreached_window(sequence, last, limits):
    result = verdict(rounds(*sequence, last), limits=limits)
    if result.decided_in_round is not None:
        return  # a breach decides first
    expected = {P: P, C: N, NA: N}[last]  # a window with nothing judged is inconclusive
    assert result.outcome is expected
    assert result.still_collecting is (last is not P)  # collecting, or nothing judged yet


@given(st.lists(st.sampled_from([C, NA]), max_size=10))
def test_collecting_before_not_applicable_never_keeps_a_gate_in_the_window(prefix):
    measurements = rounds(*prefix, NA, gate="cpu-throttling") + rounds(*prefix, P)
    result = verdict(measurements, gates=("error-rate", "cpu-throttling"))
    assert result.outcome is P


@given(st.lists(st.sampled_from([P, F, N, E, C, NA]), max_size=12), limits)
def test_a_pass_needs_a_passing_last_state(sequence, limits):
    result = verdict(rounds(*sequence), limits=limits)
    if result.outcome is P:
        settled = [o for o in sequence if o in (P, C, NA)]
        assert settled and settled[-1] is P
