"""The on-call runbook of a release plan: what runs, what stops it, and what to do by hand."""

from canaryflow.runbook.bound import DetectionBound, detection_bound
from canaryflow.runbook.render import RunbookContext, render_runbook

__all__ = ["DetectionBound", "RunbookContext", "detection_bound", "render_runbook"]
