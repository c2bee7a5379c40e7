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


HEADING = "## Cluster path: first failing measurement → weight 0 at the router"


def section(
    figures: list[float], router: str, started: dict[str, str] | None = None, load: float = 0.0
) -> str:
    """The BENCHMARKS.md section for one run of ``bad_release_safety_seconds``: ``started`` is
    ``machine()`` as the run began (its commit), ``load`` the load average then; the machine
    is shared, so its timings are only comparable with the load beside them."""
    import os

    from canaryflow.bench.scenarios import machine
    from canaryflow.report.figures import percentile

    m = started or machine()
    median, p95 = percentile(figures, 50), percentile(figures, 95)
    runs = ", ".join(f"{s:.2f}" for s in figures)
    nice = os.nice(0)
    when = " (start)" if started else ""
    return "\n".join(
        [
            HEADING,
            "",
            f"`make bench` (tests/cluster/bench.py), {m['date_utc']}{when}, commit "
            f"{m['commit']}, {m['cpu']}, {m['cores']} cores, `{m['uname']}`, load average "
            f"{load:.0f} at the start, {os.getloadavg()[0]:.0f} at the end"
            f"{f', niceness {nice}' if nice else ''}. {len(figures)} bad releases of "
            "the sample service (error-rate "
            f"fault on) pushed through the cluster in a box ({router} router: rendered chart, "
            "Argo Events and Argo Workflows stand-ins, fake API server, real Prometheus, nginx "
            "data plane): from the first failing measurement in `analyze`'s report to the data "
            "plane serving weight 0, made safe by `analyze --fail-safe` in the same pod.",
            "",
            "| releases | median | p95 | max | bound (interval + 2 s) |",
            "| --- | --- | --- | --- | --- |",
            f"| {len(figures)} | {median:.2f} s | {p95:.2f} s | {max(figures):.2f} s | 3 s |",
            "",
            f"Each run (s): {runs}.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os

    from canaryflow.bench.markdown import replace_section
    from canaryflow.bench.scenarios import machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=5)
    parser.add_argument(
        "--router", default="istio", choices=["istio", "nginx-ingress", "gateway-api"]
    )
    parser.add_argument("--out", type=Path, default=Path("out/bench/cluster"))
    parser.add_argument("--write", type=Path, help="BENCHMARKS.md to update")
    args = parser.parse_args(argv)
    started, load = machine(), os.getloadavg()[0]
    figures = bad_release_safety_seconds(args.releases, args.out.resolve(), args.router)
    text = section(figures, args.router, started, load)
    print(text)
    if args.write:
        document = args.write.read_text() if args.write.exists() else ""
        args.write.write_text(replace_section(document, HEADING, text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
