"""Pure judgements: values in, a ``Judgement`` out, one evaluator per kind of limit.

No value, NaN or infinity is never a pass and never a failure: it is INCONCLUSIVE (Flagger
#1098: NaN passing a range check; Argo Rollouts #1466: empty results failing a rollout).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from canaryflow.analysis import log_pattern
from canaryflow.analysis.measurement import Judgement, Outcome
from canaryflow.analysis.spec import LogsLimit, RelativeLimit, StatisticalLimit, ThresholdLimit
from canaryflow.analysis.statistics import hodges_lehmann, mann_whitney_u, median


def format_value(value: float, unit: str) -> str:
    """A value as people read it: ratios in %, seconds in ms or s."""
    if not math.isfinite(value):
        return str(value)
    if unit == "ratio":
        return f"{value * 100:.3g}%"
    if unit == "seconds":
        return f"{value * 1000:.3g}ms" if abs(value) < 1 else f"{value:.3g}s"
    return f"{value:.4g}"


def _unusable(values: Sequence[float], track: str) -> Judgement | None:
    if not values:
        return Judgement(Outcome.INCONCLUSIVE, f"no {track} data: the query returned no series")
    bad = next((v for v in values if not math.isfinite(v)), None)
    if bad is not None:
        return Judgement(
            Outcome.INCONCLUSIVE, f"{track} value is {bad} (no traffic in the window?)"
        )
    return None


def _broken_limit(**bounds: float | None) -> Judgement | None:
    """A NaN or infinite bound is an ERROR, never a pass: ``x > nan`` is False for every x.

    The plan validators refuse such limits; this guard keeps a limit built any other way
    (a future caller, a model built without validation) from passing every canary.
    """
    for name, bound in bounds.items():
        if bound is not None and not math.isfinite(bound):
            return Judgement(
                Outcome.ERROR, f"limit {name} is {bound}, not a finite number: fix the gate"
            )
    return None


def judge_threshold(
    limit: ThresholdLimit, canary: Sequence[float], label: str, unit: str
) -> Judgement:
    """Every canary series must lie within [min, max]; the worst one is reported."""
    if broken := _broken_limit(max=limit.max, min=limit.min):
        return broken
    if unusable := _unusable(canary, "canary"):
        return unusable
    if limit.max is not None and max(canary) > limit.max:
        value = max(canary)
        return Judgement(
            Outcome.FAIL,
            f"canary {label} {format_value(value, unit)} > {format_value(limit.max, unit)}",
            canary=value,
        )
    if limit.min is not None and min(canary) < limit.min:
        value = min(canary)
        return Judgement(
            Outcome.FAIL,
            f"canary {label} {format_value(value, unit)} < {format_value(limit.min, unit)}",
            canary=value,
        )
    value = max(canary) if limit.max is not None else min(canary)
    return Judgement(
        Outcome.PASS,
        f"canary {label} {format_value(value, unit)} within {_limit_text(limit, unit)}",
        canary=value,
    )


def _limit_text(limit: ThresholdLimit, unit: str) -> str:
    parts = []
    if limit.min is not None:
        parts.append(f"≥ {format_value(limit.min, unit)}")
    if limit.max is not None:
        parts.append(f"≤ {format_value(limit.max, unit)}")
    return " and ".join(parts)


def judge_relative(
    limit: RelativeLimit,
    canary: Sequence[float],
    stable: Sequence[float] | None,
    label: str,
    unit: str,
) -> Judgement:
    """Canary against stable x ratio; below ``floor`` a maxRatio never fails."""
    broken = _broken_limit(maxRatio=limit.max_ratio, minRatio=limit.min_ratio, floor=limit.floor)
    if broken:
        return broken
    if unusable := _unusable(canary, "canary"):
        return unusable
    if unusable := _unusable(stable or [], "stable"):
        return Judgement(unusable.outcome, f"nothing to compare with: {unusable.reason}")
    pick = max if limit.max_ratio is not None else min
    value, base = pick(canary), pick(stable)
    shown = f"canary {label} {format_value(value, unit)}"
    numbers = {"canary": value, "stable": base}
    if limit.max_ratio is not None:
        bound = max(base * limit.max_ratio, limit.floor)
        if value > bound:
            return Judgement(
                Outcome.FAIL,
                f"{shown} > {format_value(bound, unit)} "
                f"(stable {format_value(base, unit)} x {limit.max_ratio:g})",
                **numbers,
            )
    if limit.min_ratio is not None and value < base * limit.min_ratio:
        return Judgement(
            Outcome.FAIL,
            f"{shown} < {format_value(base * limit.min_ratio, unit)} "
            f"(stable {format_value(base, unit)} x {limit.min_ratio:g})",
            **numbers,
        )
    return Judgement(
        Outcome.PASS, f"{shown} vs stable {format_value(base, unit)}: within limits", **numbers
    )


def judge_statistical(
    limit: StatisticalLimit,
    canary: Sequence[float],
    stable: Sequence[float] | None,
    label: str,
    unit: str,
) -> Judgement:
    """Fail only a shift that is both significant (U test) and larger than the tolerance."""
    canary = [v for v in canary if math.isfinite(v)]  # Kayenta's NaN strategy: remove
    stable = [v for v in stable or [] if math.isfinite(v)]
    for track, samples in (("canary", canary), ("stable", stable)):
        if len(samples) < limit.min_samples:
            return Judgement(
                Outcome.INCONCLUSIVE,
                f"only {len(samples)} {track} samples of {label}, need {limit.min_samples}",
            )
    test = mann_whitney_u(canary, stable)
    shift = hodges_lehmann(canary, stable)
    base = median(stable)
    relative = shift / abs(base) if base else (math.copysign(math.inf, shift) if shift else 0.0)
    alpha = 1 - limit.confidence
    p = {
        "increase": test.p_greater,
        "decrease": test.p_less,
        "either": min(1.0, 2 * min(test.p_greater, test.p_less)),
    }[limit.direction]
    harmful = {
        "increase": relative > limit.tolerance,
        "decrease": -relative > limit.tolerance,
        "either": abs(relative) > limit.tolerance,
    }[limit.direction]
    detail = {
        "p_value": p,
        "shift": shift,
        "relative_shift": relative,
        "canary_samples": len(canary),
        "stable_samples": len(stable),
    }
    numbers = {"canary": median(canary), "stable": base, "detail": detail}
    change = f"shift {relative:+.0%} ({format_value(shift, unit)}), p={p:.2g}"
    if p < alpha and harmful:
        return Judgement(
            Outcome.FAIL,
            f"canary {label} significantly {_moved(relative)} than stable: {change} "
            f"< {alpha:.2g}, tolerance {limit.tolerance:.0%}",
            **numbers,
        )
    return Judgement(
        Outcome.PASS, f"canary {label}: no harmful {limit.direction}: {change}", **numbers
    )


def _moved(relative: float) -> str:
    return "higher" if relative > 0 else "lower"


def matching_lines(limit: LogsLimit, lines: Sequence[str]) -> list[str]:
    """The lines that match any of the limit's patterns, in RE2 semantics (``log_pattern``):
    linear time per line, never a stall with traffic on the canary."""
    return log_pattern.matching_lines(limit.patterns, lines)


def matching_times(limit: LogsLimit, lines: Sequence[tuple[float, str]]) -> list[float]:
    """When each of the stamped lines that match any of the limit's patterns was written."""
    return log_pattern.matching_times(limit.patterns, lines)


def judge_logs(limit: LogsLimit, lines: Sequence[str]) -> Judgement:
    """Count canary log lines matching any pattern; more than ``max`` fails."""
    matching = matching_lines(limit, lines)
    detail: dict[str, float | int | str] = {"lines_read": len(lines)}
    if matching:
        detail["first_match"] = matching[0][:300]
    outcome = Outcome.FAIL if len(matching) > limit.max else Outcome.PASS
    sign = ">" if outcome is Outcome.FAIL else "≤"
    return Judgement(
        outcome,
        f"{len(matching)} canary log lines match {limit.patterns} {sign} {limit.max}",
        canary=float(len(matching)),
        detail=detail,
    )


def judge_traffic(requests: Sequence[float], minimum: int) -> Judgement | None:
    """COLLECTING for the whole round when the canary served too few requests to judge: a
    young canary is not evidence, and a window that ends so is inconclusive, never a pass."""
    served = sum(v for v in requests if math.isfinite(v))
    if served >= minimum:
        return None
    return Judgement(
        Outcome.COLLECTING,
        f"canary served {served:.0f} requests in the query window, need {minimum}",
        detail={"canary_requests": served},
    )
