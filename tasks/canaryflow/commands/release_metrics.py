"""What the release verbs report to the Pushgateway, when the chart names one.

The URL comes from the pod's environment (``CANARYFLOW_PUSHGATEWAY_URL``, set by the chart's
``monitoring.pushgateway.url``), never from a plan. A metric that cannot be pushed is a
warning on stderr and nothing else: watching a release must never change its outcome.
"""

from __future__ import annotations

import os
import sys
import time

from canaryflow.errors import UnreachableError

ENV = "CANARYFLOW_PUSHGATEWAY_URL"


def report(plan, *families) -> bool:
    """Push ``families`` (and the time of this report) into the service's group; True if sent."""
    from canaryflow.telemetry.exposition import exposition, last_update
    from canaryflow.telemetry.pushgateway import push

    url = os.environ.get(ENV, "").strip()
    if not url:
        return False
    grouping = {"namespace": plan.service.namespace, "service": plan.service.name}
    text = exposition([*families, last_update(time.time())])
    try:
        push(url, grouping, text)
    except UnreachableError as error:
        print(f"warning: release metrics not pushed: {error}", file=sys.stderr)
        return False
    return True
