"""The name canaryflow gives the route it owns inside a user's routing object.

The Kubernetes routers write it, and the runbook's manual commands find it again, so it
lives here, apart from the routers (whose package loads the Kubernetes client): rendering a
runbook or validating a plan must not need a cluster client.
"""

from __future__ import annotations

HEADER_ROUTE_NAME = "canaryflow-header"
"""The route that sends requests carrying the plan's header to the canary."""
