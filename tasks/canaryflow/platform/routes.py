"""The names canaryflow gives the routes it owns inside a user's routing object.

The Kubernetes routers write them, and the runbook's manual commands find them again, so they
live here, apart from the routers (whose package loads the Kubernetes client): rendering a
runbook or validating a plan must not need a cluster client.
"""

from __future__ import annotations

HEADER_ROUTE_NAME = "canaryflow-header"
"""The route that sends requests carrying the plan's header to the canary."""
MANAGED_ROUTE_NAME = "canaryflow-primary"
"""The weighted route (Istio ``http[]``) or rule (Gateway API ``rules[]``) canaryflow splits."""
