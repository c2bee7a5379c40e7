"""Fixtures shared across the suite, registered once so tests just name them."""

pytest_plugins = ["kube.fixtures"]
