"""The cluster-path figure for ``canaryflow bench``: first failing measurement → weight 0 at
the router, over N bad releases through the cluster in a box.

Each release is a push of the sample service with its error-rate fault on; the time runs from
the ``finished`` stamp of the first measurement that failed a gate (analyze's report) to the
moment the data plane's nginx served a split of 0 % (``DataPlane.history``). Import it from the
repository root with ``tests`` on ``sys.path``::

    from cluster.bench import bad_release_safety_seconds
    seconds = bad_release_safety_seconds(5, Path("out/bench/cluster"))
"""

from __future__ import annotations

from pathlib import Path

from . import observe
from .bed import FAULTY_SOURCE, ClusterInABox, ServiceSpec, short_plan

STEPS = [{"weight": 20, "duration": "4s"}]


def bad_release_safety_seconds(
    releases: int, workdir: Path, router: str = "istio", timeout_s: float = 180.0
) -> list[float]:
    """Seconds from the first failing measurement to weight 0 served, one per bad release.

    Raises if a release does not fail, or never reaches weight 0: a missing figure is an error,
    never a fast one.
    """
    spec = ServiceSpec("checkout", "shop", router)
    with ClusterInABox(Path(workdir)) as bed:
        chart = bed.install_for([spec], "canaryflow")
        service = bed.install(spec, short_plan(spec, bed.prometheus.url, STEPS), chart)
        figures = []
        for index in range(releases):
            workflow = service.push(f"bad {index}", {"release_fault.go": FAULTY_SOURCE})
            if workflow is None:
                raise RuntimeError("the push started no release")
            bed.controller.wait(workflow.name, timeout_s)
            service.commit(f"revert {index}", {"release_fault.go": None})
            measured = observe.safety(service, workflow)
            if workflow.phase != "Failed" or measured is None:
                raise RuntimeError(f"bad release {index}: {workflow.phase}, safety {measured}")
            figures.append(measured.seconds)
        return figures
