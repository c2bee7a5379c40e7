"""The release timeline as a PNG: weight, users' error rate and p95 per track, gate verdicts.

matplotlib is imported here only (Agg, no display), so the CLI and the JSON report don't pay
for it.
"""

from __future__ import annotations

from pathlib import Path

from canaryflow.report.timeline import Timeline

TRACK_COLOURS = {"stable": "tab:blue", "canary": "tab:orange"}
OUTCOME_COLOURS = {
    "pass": "tab:green",
    "fail": "tab:red",
    "inconclusive": "tab:gray",
    "collecting": "tab:cyan",
    "not-applicable": "lightgray",
}
OUTCOME_ERROR_COLOUR = "black"


def draw_timeline(timeline: Timeline, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        4, 1, sharex=True, figsize=(10, 8), gridspec_kw={"height_ratios": [2, 2, 2, 1.4]}
    )
    weight_ax, error_ax, latency_ax, gate_ax = axes
    _weights(weight_ax, timeline)
    _per_track(error_ax, timeline, "error rate (%)", lambda b: 100 * b.error_rate)
    _per_track(latency_ax, timeline, "p95 latency (ms)", lambda b: b.p95_ms)
    _gates(gate_ax, timeline)
    for ax in axes:
        _markers(ax, timeline)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8)
    error_ax.legend(loc="upper left", fontsize=8)
    gate_ax.set_xlabel("seconds since the release started")
    gate_ax.set_xlim(0, max(timeline.end, 1.0) + 0.5)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _weights(ax, timeline: Timeline) -> None:
    points = [*timeline.weights, (timeline.end, timeline.weights[-1][1])]
    ax.step([p[0] for p in points], [p[1] for p in points], where="post", color="tab:purple")
    ax.set_ylabel("canary weight (%)")
    ax.set_ylim(-5, 105)


def _per_track(ax, timeline: Timeline, label: str, value) -> None:
    for track, colour in TRACK_COLOURS.items():
        buckets = [b for b in timeline.track(track) if value(b) is not None]
        ax.plot(
            [b.at + 0.5 for b in buckets],
            [value(b) for b in buckets],
            marker=".",
            color=colour,
            label=track,
        )
    ax.set_ylabel(label)
    ax.set_ylim(bottom=0)


def _gates(ax, timeline: Timeline) -> None:
    names = sorted({mark.gate for mark in timeline.gates})
    rows = {name: index for index, name in enumerate(names)}
    for mark in timeline.gates:
        ax.scatter(
            mark.at,
            rows[mark.gate],
            s=14,
            color=OUTCOME_COLOURS.get(mark.outcome, OUTCOME_ERROR_COLOUR),
            marker="x" if mark.outcome == "fail" else "o",
        )
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_ylim(-0.7, max(len(names), 1) - 0.3)
    ax.set_ylabel("gates")


def _markers(ax, timeline: Timeline) -> None:
    lines = [
        (timeline.fault_at, "tab:red", ":", "fault on"),
        (timeline.rollback_at, "tab:red", "--", "rollback"),
        (timeline.safe_at, "darkred", "-", "traffic safe"),
        (timeline.promoted_at, "tab:green", "-", "promoted"),
    ]
    for at, colour, style, label in lines:
        if at is not None:
            ax.axvline(at, color=colour, linestyle=style, linewidth=1.2, label=label)
