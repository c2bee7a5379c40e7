"""Fixtures shared across the suite, registered once so tests just name them.

This machine reaches no Go module proxy, so every Go run of the tests is offline: the tests set
``GOPROXY=off`` here, and their Go modules are stdlib-only or vendored. The product itself runs
Go with its defaults and the user's settings (``canaryflow.build.settings``).
"""

import os

os.environ["GOPROXY"] = "off"

pytest_plugins = ["kube.fixtures"]
