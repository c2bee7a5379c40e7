"""BENCHMARKS.md from ``canaryflow bench`` results: medians, ratios and the targets beside them."""

from __future__ import annotations

import statistics

from canaryflow.bench.scenarios import BenchResults
from canaryflow.report.figures import percentile

DETECTION_TARGET_P95_S = 10.0
DETECTION_REQUIRED_S = 30.0
SPLIT_TARGET_POINTS = 1.0
HELP_TARGET_S = 0.3


def render_markdown(results: BenchResults) -> str:
    return "\n\n".join([_header(results), *render_sections(results)]) + "\n"


def render_sections(results: BenchResults) -> list[str]:
    """The ``## `` sections ``results`` holds figures for, in the document's order (a run of
    some of them, ``canaryflow bench --only``, renders only those)."""
    sections = [
        _detection(results) if results.bad else "",
        _flags(results),
        _healthy(results),
        _split(results),
        _reload(results),
        _analysis(results),
        _cli(results),
    ]
    return [s for s in sections if s]


def with_run_header(section: str, header: str) -> str:
    """``section`` with ``header`` (the run's date, machine, load and commit) as its first
    paragraph, under its title: a section measured alone names its own run."""
    title, _, body = section.partition("\n")
    return f"{title}\n\n{header}\n{body}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _header(results: BenchResults) -> str:
    m = results.machine
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "Measured by `canaryflow bench` (`make bench`) with real processes: the sample Go "
            "service behind the nginx router, a real Prometheus and the load generator's users. "
            "Re-run it to refresh this file.",
            "",
            f"- Date: {m['date_utc']}",
            f"- Commit: {m.get('commit', 'unknown')}",
            f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory']} memory, {m['os']}",
            f"- `uname -a`: {m.get('uname', 'unknown')}",
            f"- Versions: Python {m['python']}, nginx {m['nginx']}, Prometheus "
            f"{m['prometheus']}, Go {m['go']}",
            f"- Whole bench: {results.seconds:.0f} s",
        ]
    )


def _detection(results: BenchResults) -> str:
    # A release made safe before its fault took effect was rolled back for something else
    # (noise): a false rollback, not a fast detection.
    found = [b.detection_to_safe_s for b in results.bad if b.detection_to_safe_s is not None]
    times = [t for t in found if t >= 0]
    early = len(found) - len(times)
    rolled = sum(b.phase == "rolled-back" for b in results.bad)
    lines = [
        "## Bad releases: detection to safe",
        "",
        f"{len(results.bad)} releases of a canary that starts answering 30 % of requests with "
        "500 two to three seconds into its first window (10 % weight; the delay is spread over "
        "one analysis interval), switched on through the canary's "
        "`PUT /admin/faults`; the time runs from the moment the service reports the fault "
        "took effect to canary weight 0 confirmed at the router (`traffic-safe`).",
        "",
    ]
    if not times:
        return "\n".join([*lines, "No release reached `traffic-safe` after its fault."])
    p95 = percentile(times, 95)
    shares = [100 * b.failed_share for b in results.bad]
    failed = [b.failed for b in results.bad]
    lines += [
        "| measure | value | target |",
        "|---|---|---|",
        f"| rolled back | {rolled} of {len(results.bad)} | all |",
        f"| rolled back before the fault took effect (not timed) | {early} | 0 |",
        f"| detection to safe, median | {statistics.median(times):.2f} s | |",
        f"| detection to safe, p95 | {p95:.2f} s | ≤ {DETECTION_TARGET_P95_S:.0f} s "
        f"({_verdict(p95 <= DETECTION_TARGET_P95_S)}); required ≤ "
        f"{DETECTION_REQUIRED_S:.0f} s ({_verdict(p95 <= DETECTION_REQUIRED_S)}) |",
        f"| detection to safe, min / max | {min(times):.2f} s / {max(times):.2f} s | |",
        f"| failed user requests per bad release, median | {statistics.median(failed):.0f} "
        f"({statistics.median(shares):.2f} % of that release's requests) | |",
        f"| failed share, worst release | {max(shares):.2f} % | |",
    ]
    return "\n".join(lines)


def _flags(results: BenchResults) -> str:
    if not results.bad_flags:
        return ""
    flags = results.bad_flags
    detected = [f.detection_to_off_s for f in flags if f.detection_to_off_s is not None]
    served = [f.off_served_s for f in flags if f.off_served_s is not None]
    total = [f.fault_to_served_off_s for f in flags if f.fault_to_served_off_s is not None]
    lines = [
        "## Bad flag rollouts: fault to flag off",
        "",
        f"{len(flags)} rollouts of a flag at 50 % whose flag-on requests start failing (30 % "
        "answered 500, flag-off requests unharmed) two to three seconds into the window, "
        "switched on through `PUT /admin/faults` with `flag_on_only`. Written: from the fault "
        'taking effect to the flag document holding "off". Served: from that write to every '
        "instance reporting the off document's digest through Prometheus.",
        "",
    ]
    if not total:
        return "\n".join([*lines, "No rollout confirmed its flag off after the fault."])
    switched = sum(f.phase == "rolled-back" for f in flags)
    p95 = percentile(total, 95)
    lines += [
        "| measure | value | target |",
        "|---|---|---|",
        f"| switched off | {switched} of {len(flags)} | all |",
        f"| fault to off written, median | {statistics.median(detected):.2f} s | |",
        f"| written to off served, median | {statistics.median(served):.2f} s | |",
        f"| fault to off served, median / p95 | {statistics.median(total):.2f} s / "
        f"{p95:.2f} s | ≤ {DETECTION_REQUIRED_S:.0f} s, as a traffic rollback "
        f"({_verdict(p95 <= DETECTION_REQUIRED_S)}) |",
        "",
        "Locally the service re-reads its file every 0.5 s and Prometheus scrapes every second. "
        "In Kubernetes a mounted ConfigMap reaches the pods on kubelet's sync (up to about a "
        "minute), which this machine cannot measure.",
    ]
    return "\n".join(lines)


def _healthy(results: BenchResults) -> str:
    if not results.healthy:
        return ""
    requests = sum(h.requests for h in results.healthy)
    failed = sum(h.failed for h in results.healthy)
    changes = sum(h.weight_changes for h in results.healthy)
    promoted = sum(h.phase == "promoted" for h in results.healthy)
    return "\n".join(
        [
            "## Healthy releases: requests failed by weight shifts and promotion",
            "",
            "| releases promoted | weight changes | requests | failed | target |",
            "|---|---|---|---|---|",
            f"| {promoted} of {len(results.healthy)} | {changes} | {requests} | {failed} | "
            f"0 ({_verdict(failed == 0)}) |",
            *_not_promoted(results.healthy),
        ]
    )


def _not_promoted(healthy: list) -> list[str]:
    """Each healthy release that was not promoted, with the judge's reason: a false rollback
    is a finding to explain, not a count."""
    reasons = [f"- {h.phase}: {h.reason}" for h in healthy if h.phase != "promoted"]
    return ["", "Not promoted:", "", *reasons] if reasons else []


def _split(results: BenchResults) -> str:
    if not results.split:
        return ""
    rows = [
        f"| {s.weight} % | {s.requests} | {s.observed:.2f} % | {s.error_points:.2f} | "
        f"{_verdict(s.error_points <= SPLIT_TARGET_POINTS)} |"
        for s in results.split
    ]
    return "\n".join(
        [
            "## Split accuracy",
            "",
            "The two-tier router with fixed-text nginx backends, loaded as fast as the load "
            "generator goes; observed share of answered requests served by the canary. Target: "
            f"within {SPLIT_TARGET_POINTS:.0f} point of the weight set.",
            "",
            "| weight set | requests | observed | error (points) | target |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )


def _reload(results: BenchResults) -> str:
    if not results.reload:
        return ""
    rows = [
        f"| {r['design']} | {r['weight_changes']} | {r['requests']} | {r['failed']} | "
        f"{r['failed_percent']:.3f} % |"
        for r in results.reload
    ]
    by_design = {r["design"]: r["failed"] for r in results.reload}
    note = ""
    if "single" in by_design and "two-tier" in by_design:
        note = (
            f"\n\nA plain single-nginx reload lost {by_design['single']} requests where the "
            f"two-tier router lost {by_design['two-tier']}."
            if any(by_design.values())
            else "\n\nNeither design lost a request in this run."
        )
    return (
        "\n".join(
            [
                "## Zero-drop weight changes (router reload under keep-alive load)",
                "",
                "8 keep-alive clients at 200 requests/s while the weight changes every 0.15 s "
                "(`canaryflow.bench.reload`); a failure is a reset, refusal, timeout or 5xx.",
                "",
                "| design | weight changes | requests | failed | failed share |",
                "|---|---|---|---|---|",
                *rows,
            ]
        )
        + note
    )


def _analysis(results: BenchResults) -> str:
    timing = results.analysis_round
    if not timing:
        return ""
    return "\n".join(
        [
            "## One analysis round",
            "",
            f"Every Prometheus gate of the catalogue ({timing['gates']} gates, "
            f"{timing['queries']} queries), canary and stable, against the bench's Prometheus "
            f"right after the last release: median {timing['median_ms']:.1f} ms, p90 "
            f"{timing['p90_ms']:.1f} ms, max {timing['max_ms']:.1f} ms over "
            f"{timing['rounds']} rounds.",
        ]
    )


def _cli(results: BenchResults) -> str:
    cli = results.cli_help
    if not cli:
        return ""
    heavy = ", ".join(cli["heavy_imports"]) or "none"
    return "\n".join(
        [
            "## `canaryflow --help`",
            "",
            f"Median wall time of {cli['runs']} runs of the console script: "
            f"{cli['median_s'] * 1000:.0f} ms (target ≤ {HELP_TARGET_S * 1000:.0f} ms, "
            f"{_verdict(cli['median_s'] <= HELP_TARGET_S)}). Heavy modules imported "
            f"(Hera, Kubernetes client, Prometheus client, matplotlib, pydantic): {heavy}.",
        ]
    )


def replace_section(document: str, heading: str, section: str) -> str:
    """``document`` with the section under ``heading`` (to the next ``## ``) replaced, or
    ``section`` appended when there is none."""
    start = document.find(f"\n{heading}\n")
    if start < 0:
        return document.rstrip("\n") + "\n\n" + section if document else section
    end = document.find("\n## ", start + 1)
    rest = "" if end < 0 else "\n" + document[end + 1 :]
    return document[: start + 1] + section + rest


def keep_other_sections(old: str, new: str) -> str:
    """``new`` followed by every ``## `` section of ``old`` that ``new`` does not have: a run
    that measures some sections leaves the others' figures (each naming its own run) alone."""
    titles = {line for line in new.splitlines() if line.startswith("## ")}
    kept = []
    for part in old.split("\n## ")[1:]:
        title = "## " + part.split("\n", 1)[0]
        if title not in titles:
            kept.append("## " + part.rstrip("\n"))
    return new.rstrip("\n") + "".join("\n\n" + section for section in kept) + "\n"
