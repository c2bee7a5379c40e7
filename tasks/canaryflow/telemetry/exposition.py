"""The ``canaryflow_release_*`` metric families and the Prometheus text format they are sent in.

Pure: values in, text out. The text format is Prometheus' exposition format 0.0.4
(prometheus/docs ``content/docs/instrumenting/exposition_formats.md``): ``# HELP`` with ``\\``
and newline escaped, ``# TYPE``, then one sample a line with label values escaping ``\\``,
``"`` and newline. Every family is a gauge: each push states the release's current value, and
a Pushgateway keeps the last value of each group (a counter would restart in every pod).

One group per service (grouping key job, namespace, service): a release's pods overwrite
each other's families, never another service's. Families:

=============================================  ============================================
``canaryflow_release_phase{phase}``            1 for the current phase (one-hot over PHASES)
``canaryflow_release_weight``                  canary percent of traffic, as last verified
``canaryflow_release_gate_verdict{gate,verdict}``  1 for each gate's verdict of the last window
``canaryflow_release_detection_to_safe_seconds``   first failing measurement to weight 0 verified
``canaryflow_release_detection_timestamp_seconds`` when the last failing window was detected
``canaryflow_release_rollback_timestamp_seconds``  when the last rollback finished (safe)
``canaryflow_release_last_update_timestamp_seconds`` when any release pod last reported
=============================================  ============================================
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PREFIX = "canaryflow_release_"
PHASES = ("deploying", "progressing", "promoted", "rolling-back", "rolled-back")
"""The phases a release pod reports; ``phase`` is one-hot over exactly these."""


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    samples: tuple[Sample, ...] = field(default_factory=tuple)
    type: str = "gauge"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def exposition(families: Iterable[Family]) -> str:
    """The families in the text format, ending with a newline (the format requires it)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample in family.samples:
            labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(sample.labels.items()))
            selector = f"{{{labels}}}" if labels else ""
            lines.append(f"{family.name}{selector} {_number(sample.value)}")
    return "\n".join(lines) + "\n"


def _gauge(name: str, help_text: str, value: float) -> Family:
    return Family(PREFIX + name, help_text, (Sample({}, value),))


def phase(current: str) -> Family:
    """``phase`` one-hot: every known phase present, 1 for ``current`` (alerts can join on 0)."""
    if current not in PHASES:
        raise ValueError(f"unknown release phase {current!r}: one of {', '.join(PHASES)}")
    samples = tuple(Sample({"phase": p}, 1.0 if p == current else 0.0) for p in PHASES)
    return Family(PREFIX + "phase", "The release's current phase (1) among all phases.", samples)


def weight(percent: float) -> Family:
    return _gauge("weight", "Canary share of traffic in percent, as last verified.", percent)


def gate_verdicts(verdicts: Mapping[str, str]) -> Family:
    """The last window's verdict of each gate (``pass``, ``fail``, ``inconclusive``, ...)."""
    samples = tuple(
        Sample({"gate": gate, "verdict": verdict}, 1.0)
        for gate, verdict in sorted(verdicts.items())
    )
    return Family(PREFIX + "gate_verdict", "Each gate's verdict in the last window (1).", samples)


def detection_to_safe(seconds: float) -> Family:
    return _gauge(
        "detection_to_safe_seconds",
        "Seconds from the first failing measurement to canary weight 0 verified.",
        seconds,
    )


def detection_timestamp(at: float) -> Family:
    return _gauge("detection_timestamp_seconds", "When the last failing window was detected.", at)


def rollback_timestamp(at: float) -> Family:
    return _gauge(
        "rollback_timestamp_seconds", "When the last rollback finished, stable serving all.", at
    )


def last_update(at: float) -> Family:
    return _gauge(
        "last_update_timestamp_seconds", "When a release pod of this service last reported.", at
    )
