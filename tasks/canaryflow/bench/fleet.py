"""Several stable pods on a local stack, within the machine's process budget.

The local platform runs one stable process. The sample service's ``-pods N`` serves N pods from
that process, on its port and N - 1 ports of their own (``GET /admin/pods`` lists them), each
with its own metrics and stall phase. ``StableFleet`` adds the extra pods to Prometheus'
targets with the stable pod's labels (so the judge sees N stable pods, each scraped at its own
offset) and gives each a steady load of its own; the router keeps sending stable's share of the
users to the first pod. All the pods log to the stable process's output, so stable's log lines
are the whole fleet's.
"""

from __future__ import annotations

import json
import time
import urllib.request

from canaryflow.local.load import LoadConfig, LoadGenerator
from canaryflow.local.platform import ScrapeTarget

LOAD_CLIENTS = 2


def load_lasts(load: LoadGenerator, seconds: float, now: float | None = None) -> bool:
    """Whether ``load`` is running and will go on for ``seconds`` more before its maximum
    duration stops it: a load that ends inside a release leaves its last steps without users,
    and every gate then waits for requests that never come."""
    if not load.running or load.started_at is None:
        return False
    now = time.time() if now is None else now
    return load.started_at + load.config.max_duration_s - now > seconds


class StableFleet:
    """The extra stable pods of a ``LocalStack`` whose stable artifact runs ``-pods pods``."""

    def __init__(self, stack, pods: int, rps_per_pod: float):
        self.stack, self.pods, self.rps_per_pod = stack, pods, rps_per_pod
        self.loads: dict[str, LoadGenerator] = {}
        self._notify = None
        self._pods: dict[str, list[str]] = {}

    def start(self) -> StableFleet:
        """Scrape the extra pods from now on (and whenever stable changes), and load them."""
        platform = self.stack.platform
        self._notify = platform.on_targets_changed
        platform.on_targets_changed = self._with_extra
        self._with_extra(platform.targets())
        self.keep_loaded()
        return self

    def extra(self, targets: list[ScrapeTarget]) -> list[ScrapeTarget]:
        """The other pods of each stable target's process, labelled as it is."""
        found = []
        for target in targets:
            if target.labels.get("track") != "stable":
                continue
            found += [ScrapeTarget(pod, dict(target.labels)) for pod in self._others(target)]
        return found

    def _others(self, target: ScrapeTarget) -> list[str]:
        if target.address not in self._pods:
            url = f"http://{target.address}/admin/pods"
            with urllib.request.urlopen(url, timeout=5) as answer:
                pods = [str(pod) for pod in json.load(answer)["pods"]]
            if len(pods) != self.pods - 1:
                raise RuntimeError(f"{url}: {len(pods)} other pods, expected {self.pods - 1}")
            self._pods[target.address] = pods
        return self._pods[target.address]

    def _with_extra(self, targets: list[ScrapeTarget]) -> None:
        assert self._notify is not None
        self._notify(list(targets) + self.extra(targets))

    def keep_loaded(self, lasting_s: float = 0.0) -> None:
        """A load per current extra pod: started for new pods (after a promotion moved stable),
        stopped for gone ones, restarted when one would end by its maximum duration within
        ``lasting_s`` (the next release's longest span)."""
        wanted = {t.address for t in self.extra(self.stack.platform.targets())}
        for address in list(self.loads):
            if address not in wanted or not load_lasts(self.loads[address], lasting_s):
                self.loads.pop(address).stop()
        for address in sorted(wanted - set(self.loads)):
            config = LoadConfig(f"http://{address}", rate=self.rps_per_pod, clients=LOAD_CLIENTS)
            self.loads[address] = LoadGenerator(config).start()

    def stop(self) -> None:
        for load in self.loads.values():
            load.stop()
        self.loads.clear()
