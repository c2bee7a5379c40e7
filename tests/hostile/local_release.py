"""What the real-process hostile releases share: a short local plan judged every second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def short_plan(first_step_s: int, rate: int) -> dict[str, Any]:
    """30 % for ``first_step_s`` then 60 % for 4 s after a 2 s warm-up, an error-rate gate,
    ``rate`` requests/s."""
    return {
        "service": {"name": "checkout", "namespace": "e2e", "healthTimeout": "15s"},
        "steps": [
            {"weight": 30, "duration": f"{first_step_s}s"},
            {"weight": 60, "duration": "4s"},
        ],
        "analysis": {
            "interval": "1s",
            "queryWindow": "4s",
            "minCanaryRequests": 5,
            "inconclusiveLimit": 20,
            # CI-sized: two scrapes, not the default one scrape + 30 s; what these releases are
            # about (a fault mid-window) starts with the first window, after the warm-up.
            "warmup": "2s",
            "gates": [{"metric": "error-rate", "threshold": {"max": 0.5}}],
        },
        "local": {"load": {"rate": rate, "clients": 4}},
    }


@pytest.fixture(scope="session")
def build_dir(sample_builds) -> Path:
    """The run's sample-service builds (tests/conftest.py): each version is built once."""
    return sample_builds
