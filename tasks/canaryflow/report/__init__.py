"""What a release looked like, after the fact: its JSON report and its PNG timeline."""

from canaryflow.report.release import ReleaseSummary, build_report, summarize, write_report
from canaryflow.report.timeline import Bucket, Timeline, timeline_of

__all__ = [
    "Bucket",
    "ReleaseSummary",
    "Timeline",
    "build_report",
    "summarize",
    "timeline_of",
    "write_report",
]
