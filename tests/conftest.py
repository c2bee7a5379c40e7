"""Fixtures shared across the suite, registered once so tests just name them.

This machine reaches no Go module proxy, so every Go run of the tests is offline: the tests set
``GOPROXY=off`` here, and their Go modules are stdlib-only or vendored. The product itself runs
Go with its defaults and the user's settings (``canaryflow.build.settings``).
"""

import os
from pathlib import Path

import pytest
from hypothesis import settings

os.environ["GOPROXY"] = "off"

# Speed is the benchmarks' business, not the tests': no per-example deadline (a loaded 2-core
# machine made a verdict property miss hypothesis' 200 ms default). CI replays a fixed sequence
# of examples so a landing never depends on the draw; `make fuzz` and local runs explore.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

pytest_plugins = ["kube.fixtures", "cpu_report"]


# -- how `make test` spreads the suite over its workers ----------------------------------------
#
# `make test` runs `pytest -n 4 --dist loadfile --no-loadscope-reorder`: a test file stays on one
# worker, so its module
# fixtures, real processes and builds are set up once. The files in SPREAD_FILES are long and
# each of their tests sets up what it needs (its own stack or run in tmp_path, the session's
# sample builds), so they go test by test to whichever worker is free: a file of nine 25 s
# releases is not one worker's 225 s. The other long files are handed out first, so they do not
# start last and leave the other workers idle at the end; short units fill in after them.
# (xdist's `--dist loadgroup` would say this with marks, but its group suffix does not reach
# the node ids of pytest 9.)

SPREAD_FILES = frozenset(
    {
        "tests/hostile/test_broken_router.py",
        "tests/hostile/test_record_survives.py",
        "tests/test_flavour_releases.py",
        "tests/test_local_release.py",
        "tests/test_local_router.py",
    }
)


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile``, except that SPREAD_FILES are scheduled test by test."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SpreadingFileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = _file_of(nodeid)
            return nodeid if path in SPREAD_FILES else path

    return SpreadingFileScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with slow tests, except SPREAD_FILES, first (the order is the scheduler's)."""
    long_files = {
        item.nodeid.split("::", 1)[0]
        for item in items
        if item.get_closest_marker("slow") and _file_of(item.nodeid) not in SPREAD_FILES
    }
    items.sort(key=lambda item: _file_of(item.nodeid) not in long_files)  # stable


@pytest.fixture(scope="session")
def sample_builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of sample-service builds for the whole run, shared by the xdist workers.

    ``build_sample_service`` names a binary by the hash of its sources and toolchain and
    publishes it by an atomic rename, so a worker reuses what another built and two builds of
    one binary at once cannot clash.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    path = root / "sample-builds"
    path.mkdir(exist_ok=True)
    return path
