"""The range step canaryflow sends is one Prometheus' API parses, for every window length.

Prometheus (web/api/v1/api.go, parseDuration) takes ``step`` as a float of seconds or as a
duration with integer parts; anything else is HTTP 400 and every statistical measurement errors.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from canaryflow.analysis.source import prometheus_step

_PROMETHEUS_FLOAT = re.compile(r"\d+(\.\d{1,3})?")


@given(st.floats(min_value=0.0, max_value=7 * 24 * 3600.0, allow_nan=False))
def test_a_step_is_a_positive_decimal_of_seconds_to_the_millisecond(seconds):
    text = prometheus_step(seconds)
    assert _PROMETHEUS_FLOAT.fullmatch(text), text
    assert float(text) >= 0.001
    assert abs(float(text) - max(seconds, 0.001)) <= 0.0005 + 1e-9


def test_the_steps_that_prometheus_rejected_are_written_as_plain_seconds():
    assert prometheus_step(60 / 8) == "7.5"
    assert prometheus_step(30 / 8) == "3.75"
    assert prometheus_step(1.0) == "1"
    assert prometheus_step(0.0) == "0.001"
