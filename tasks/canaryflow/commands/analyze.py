"""``canaryflow analyze``: one analysis window of a plan's gates against a live Prometheus.

Prints every measurement as it is taken and the verdict with its reason (``--json``: one JSON
document instead). The exit code is the plan's decision (``canaryflow.release.decision``): 0
when the window passed, or was inconclusive under ``rollback.onInconclusive: hold`` (the
verdict still says inconclusive: a person decides next); 1 when the release must roll back
(failed, errored, inconclusive otherwise); 2 for bad input (nothing measured); 3 when the
window errored because Prometheus never answered a single call (refused, no such host, no
connection): the same rollback decision as 1, traffic made safe first under ``--fail-safe``
(exit 3 only once that is verified; else 1), so a person or CI can tell "Prometheus is down"
from "the canary is bad". The workflow treats 1 and 3 alike: analyze is never retried, and
what follows reads the ``verdict`` output (``error``), not the exit code.

``--step N`` takes the window's length from the plan's step N (``--duration`` overrides it),
so the plan stays the one source of its durations. ``--fail-safe`` (the workflow's analyze
task) makes traffic safe in this very pod: when the window ends in a rollback, errors, or the
pod is told to stop (SIGTERM), it sets the canary weight to 0 and withdraws the header route,
and waits until the router object shows both before exiting 1, so no request, with or without
the header, reaches the failing canary. No other pod has to be scheduled first, and no drain
is waited for (nothing is removed: the rollback pod drains, then removes the canary and
restores the user's route). The report records the seconds from the first failing measurement
to no canary traffic verified (``failSafe``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from canaryflow.commands.arguments import add_json_option
from canaryflow.errors import (
    EXIT_OK,
    EXIT_RELEASE_FAILED,
    EXIT_UNREACHABLE,
    FieldError,
    InputError,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plan", type=Path, required=True, help="the release plan (YAML)")
    parser.add_argument(
        "--duration",
        help="length of the window, e.g. 60s or 5m (default: the --step's duration, else 60s)",
    )
    parser.add_argument(
        "--prometheus",
        metavar="URL",
        help="Prometheus base URL (default: $CANARYFLOW_PROMETHEUS_URL, else the plan's); "
        "credentials come from the CANARYFLOW_PROMETHEUS_* variables, never the plan",
    )
    parser.add_argument("--service", help="service to analyse (default: the plan's)")
    parser.add_argument("--namespace", help="its namespace (default: the plan's)")
    parser.add_argument(
        "--canary-log",
        type=Path,
        metavar="PATH",
        help="file the canary appends its log to, for logs gates",
    )
    parser.add_argument(
        "--stable-log",
        type=Path,
        metavar="PATH",
        help="file stable appends its log to, for logs gates that compare with stable",
    )
    add_json_option(parser, "print one JSON document")
    parser.add_argument("--step", type=int, help="the plan step this window belongs to")
    parser.add_argument("--report-file", type=Path, help="also write the JSON result here")
    parser.add_argument(
        "--verdict-file", type=Path, help="also write the verdict alone (pass, fail, ...) here"
    )
    parser.add_argument(
        "--cluster-logs",
        action="store_true",
        help="read the canary's pod logs for logs gates (the default inside a pod)",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig for --cluster-logs outside a pod")
    parser.add_argument(
        "--carry-evidence",
        action="store_true",
        help="go on with the release's sequential tests from the earlier steps' windows and "
        "leave them for the next (the canary Deployment's annotation canaryflow.dev/evidence); "
        "needs --step",
    )
    parser.add_argument(
        "--evidence-file",
        type=Path,
        metavar="PATH",
        help="--carry-evidence, kept in this file instead (outside a cluster)",
    )
    parser.add_argument(
        "--fail-safe",
        action="store_true",
        help="on a failing or erroring window (or SIGTERM) set the canary weight to 0, "
        "withdraw the header route and verify both at the router before exiting 1 (Kubernetes)",
    )


def run(args: argparse.Namespace) -> int:
    with _StopsHeld(args.fail_safe) as stops:
        return _analyze(args, stops)


def _analyze(args: argparse.Namespace, stops: _StopsHeld) -> int:
    from canaryflow.analysis.carried import judging_windows
    from canaryflow.analysis.prometheus_auth import ENV_URL, OperatorPrometheus
    from canaryflow.analysis.run import AnalysisRun
    from canaryflow.analysis.source import PrometheusSource
    from canaryflow.plan.load import load_plan
    from canaryflow.plan.promql import plan_subject
    from canaryflow.release.decision import Action, after_window

    plan = load_plan(args.plan)
    spec = plan.analysis
    duration = _window_length(plan, args)
    endpoint = OperatorPrometheus.from_environment(args.prometheus).endpoint_for(spec.prometheus)
    if not endpoint.url:
        raise InputError(
            FieldError(
                "--prometheus",
                f"no Prometheus to ask: pass --prometheus URL, set {ENV_URL} "
                "(the chart's analysis.prometheus.url) or analysis.prometheus.url in the plan",
            )
        )
    carry = _Carry.open(plan, args)
    safety = _FailSafe(plan, args.kubeconfig) if args.fail_safe else None
    try:
        stops.release()  # a stop that came while loading arrives here, where traffic is made safe
        source = PrometheusSource.for_endpoint(endpoint)
        _reject_bad_promql(plan, source)
        service, namespace = (
            args.service or plan.service.name,
            args.namespace or plan.service.namespace,
        )
        # The plan's contract: metrics by its app label, stable's pods by its Deployment's name.
        subject = dataclasses.replace(
            plan_subject(plan), service=service, namespace=namespace, track_label=spec.track_label
        )
        analysis = AnalysisRun(
            spec,
            source,
            service,
            namespace,
            subject=subject,
            logs=_log_source(plan, args),
            on_round=_each_round(None if args.json else _print_round, safety),
            # Without carried evidence each step that can judge spends its share of alpha.
            windows=judging_windows([step.weight for step in plan.traffic_steps]),
            carry_evidence=carry is not None,
        )
        # How long the baseline's first scrape may take: asked only where it is waited for.
        first_look = _baseline_runs(plan) and _first_traffic_step(plan, args)
        scrape = analysis.known_scrape_interval() if first_look else None
        found, waited = _wait_for_baseline(plan, args, source, subject, scrape_interval=scrape)
        refused = None
        if found:
            analysis.subject = dataclasses.replace(subject, baseline=True)
        else:
            refused = _baseline_never_scraped(plan, args, subject, waited)
        if refused is None:
            _warm_up(plan, args, analysis, waited)  # by default none against a fresh baseline
            refused = carry.resume(analysis) if carry is not None else None
        result = refused or analysis.window(duration)
    except BaseException:  # bad queries, an error, SIGTERM (argo stop) or a bug: traffic safe
        if safety is not None:
            safety.make_safe(first_failing=None)
        raise
    action = after_window(result.verdict.outcome, plan.rollback.on_inconclusive)
    if carry is not None and refused is None:
        result = carry.finish(analysis, result, keep=action is not Action.ROLLBACK)
        action = after_window(result.verdict.outcome, plan.rollback.on_inconclusive)
    report = {"step": args.step, **result.to_dict()}
    if _baseline_runs(plan):
        report["baseline"] = {"scraped": found, "waitedForFirstScrape": round(waited, 3)}
    if carry is not None:
        report["evidence"] = carry.report
    if action is Action.ROLLBACK and safety is not None:
        report["failSafe"] = safety.make_safe(first_failing_at(result))
    unreachable = _never_answered(source, result, action is Action.ROLLBACK, safety, report)
    if unreachable:
        report["unreachable"] = {"path": "--prometheus", "message": unreachable}
    _write_outputs(args, result, report)
    _report_metrics(plan, result, action is Action.ROLLBACK, report.get("failSafe"))
    if unreachable:
        print(f"error: --prometheus: {unreachable}", file=sys.stderr)
        return EXIT_UNREACHABLE
    return EXIT_RELEASE_FAILED if action is Action.ROLLBACK else EXIT_OK


def _never_answered(source, result, rolling_back: bool, safety, report: dict) -> str | None:
    """What to say when the window is an ERROR because Prometheus never answered any call,
    and traffic is safe (the fail-safe verified it, or none was asked for): exit 3 then.
    None otherwise: a window with any answer, or a fail-safe not verified, stays exit 1."""
    from canaryflow.analysis.measurement import Outcome

    if not rolling_back or result.verdict.outcome is not Outcome.ERROR:
        return None
    if source.reached or source.never_answered is None:
        return None
    if safety is not None and not report.get("failSafe", {}).get("verified"):
        return None
    from canaryflow.transport import without_userinfo

    return (
        f"Prometheus at {without_userinfo(source.url)} did not answer "
        f"({source.never_answered}): the window "
        "is an error, nothing was judged; check the URL and that Prometheus is up, then run "
        "the release again"
    )


def _each_round(show, safety: _FailSafe | None):
    """Each round: with the workflow's ``--fail-safe`` (this pod may write the routes),
    stable's share follows a stable Deployment rolled mid-release (``follow_stable``), then
    the round is shown."""
    from canaryflow.release.windows import keep_up

    if safety is None:
        return show

    def each_round(batch, verdict) -> None:
        keep_up(safety.platform.follow_stable)
        if show is not None:
            show(batch, verdict)

    return each_round


def _report_metrics(plan, result, rolling_back: bool, fail_safe: dict | None) -> None:
    """Each gate's verdict; on a failing window when it was detected and, when this pod made
    traffic safe itself, how long that took from the first failing measurement."""
    from canaryflow.commands.release_metrics import report
    from canaryflow.telemetry import exposition as metrics

    families = [metrics.gate_verdicts({g.gate: g.outcome.value for g in result.verdict.gates})]
    if rolling_back:
        families.append(metrics.detection_timestamp(time.time()))
    if fail_safe and fail_safe.get("verified"):
        families += [metrics.detection_to_safe(fail_safe["seconds"]), metrics.weight(0)]
    report(plan, *families)


def _write_outputs(args: argparse.Namespace, result, report: dict) -> None:
    if args.report_file:
        args.report_file.parent.mkdir(parents=True, exist_ok=True)
        args.report_file.write_text(json.dumps(report, indent=2))
    if args.verdict_file:
        args.verdict_file.parent.mkdir(parents=True, exist_ok=True)
        args.verdict_file.write_text(result.verdict.outcome.value)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        if result.metrics:
            print(result.metrics)  # analysis.metrics: auto, what was detected
        print(f"verdict: {result.verdict.outcome.value.upper()}: {result.reason}")
        if "failSafe" in report:
            print(f"fail-safe: {report['failSafe']['summary']}")


def first_failing_at(result) -> float | None:
    """When the first failing measurement of the window was taken (a breach, else an error);
    None when the window ended without one (inconclusive under ``onInconclusive: rollback``).
    """
    from canaryflow.analysis.measurement import Outcome

    for outcome in (Outcome.FAIL, Outcome.ERROR):
        taken = [m.started for m in result.measurements if not m.dry_run and m.outcome is outcome]
        if taken:
            return min(taken)
    return None


class _Carry:
    """The release's sequential evidence across the workflow's analyze pods: read before the
    window (a state that cannot be trusted ends the window as ERROR: fail safe, nothing
    measured), written after it unless the release rolls back (a write that fails is an
    ERROR too: the next step must not go on without this window's evidence)."""

    def __init__(self, plan, step: int, store):
        self.plan = plan
        self.step = step
        self.store = store
        self.read = None
        self.beginning = None
        self.report: dict = {"store": store.where}

    @classmethod
    def open(cls, plan, args: argparse.Namespace) -> _Carry | None:
        if not (args.carry_evidence or args.evidence_file):
            return None
        flag = "--evidence-file" if args.evidence_file else "--carry-evidence"
        if args.step is None:
            raise InputError(FieldError(flag, "needs --step: the step this window belongs to"))
        if args.evidence_file is not None:
            from canaryflow.platform.evidence_store import FileEvidenceStore

            return cls(plan, args.step, FileEvidenceStore(args.evidence_file))
        from canaryflow.kubernetes.evidence_store import DeploymentEvidenceStore
        from canaryflow.kubernetes.from_plan import platform_for
        from canaryflow.kubernetes.platform import api_client_from_environment

        platform = platform_for(plan, api_client_from_environment(args.kubeconfig, None))
        return cls(plan, args.step, DeploymentEvidenceStore(platform.api, platform.canary))

    def resume(self, analysis):
        """None when the window may run (the tests resumed or begun); else its ERROR result."""
        from canaryflow.analysis import carried
        from canaryflow.errors import PlatformError

        spec = self.plan.analysis
        first = min((i for i, s in enumerate(self.plan.steps) if s.is_traffic), default=0)
        weights = [step.weight for step in self.plan.traffic_steps]
        try:
            self.read = self.store.read()
            self.beginning = carried.begin_window(
                analysis, self.read.text, spec, self.step, first, weights
            )
        except carried.CarriedStateError as error:
            return self._refused(f"carried evidence in {self.store.where} refused: {error}")
        except PlatformError as error:
            return self._refused(f"carried evidence could not be read: {error}")
        begun = self.beginning
        self.report |= {
            "resumedFrom": begun.state.step if begun.state is not None else None,
            "alphaSplit": begun.windows,
            **({"note": begun.note} if begun.note else {}),
        }
        return None

    def finish(self, analysis, result, keep: bool):
        """Write the tests for the next step (unless rolling back); the verdict says how
        this window's tests began when not from the release's start."""
        import dataclasses

        from canaryflow.analysis import carried
        from canaryflow.errors import PlatformError

        begin = self.beginning
        verdict = result.verdict
        if begin.note:
            verdict = dataclasses.replace(verdict, reason=f"{verdict.reason} ({begin.note})")
        if keep:
            state = carried.snapshot(
                self.plan.analysis,
                self.step,
                analysis.budget,
                analysis.sequential_evidence,
                begin.restarted_at,
                carried.reference_of(analysis),
            )
            try:
                self.store.write(state.to_text(), self.read)
                self.report["written"] = True
            except PlatformError as error:
                return self._refused(
                    f"this window's evidence could not be kept for the next step: {error}",
                    result,
                )
        return dataclasses.replace(result, verdict=verdict)

    def _refused(self, reason: str, result=None):
        import time as clock

        from canaryflow.analysis.measurement import Outcome
        from canaryflow.analysis.run import WindowResult
        from canaryflow.analysis.verdict import WindowVerdict

        self.report["error"] = reason
        verdict = WindowVerdict(Outcome.ERROR, True, reason, ())
        if result is not None:
            verdict = WindowVerdict(Outcome.ERROR, True, reason, result.verdict.gates)
            return WindowResult(verdict, result.measurements, result.started, result.finished)
        now = clock.time()
        return WindowResult(verdict, (), now, now)


class _StopsHeld:
    """SIGTERM and SIGINT held, not lost, while the plan and the router load (seconds of imports
    on a busy node): ``argo stop`` right after the pod starts would otherwise end it before the
    fail-safe guard exists. ``release`` delivers a held stop inside that guard.

    The handlers are swapped rather than the signals masked: CPython runs a signal's handler
    in the main thread whichever thread the kernel delivered it to, so a mask on one thread
    holds nothing once another thread exists."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, hold: bool):
        self.holding = hold and threading.current_thread() is threading.main_thread()
        self.held: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopsHeld:
        if self.holding:
            self._previous = {sig: signal.signal(sig, self._hold) for sig in self.SIGNALS}
        return self

    def _hold(self, signum, frame) -> None:
        self.held = signum

    def _restore(self) -> None:
        if self.holding:
            self.holding = False
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)

    def release(self) -> None:
        """Back to the usual handlers; a stop that came meanwhile is raised here, now."""
        self._restore()
        if self.held is not None:
            raise KeyboardInterrupt(f"signal {self.held}, held while loading")

    def __exit__(self, *exc) -> None:
        self._restore()  # set-up failed: its own error goes on, exit 2 rather than 130


class _FailSafe:
    """No canary traffic (weight 0, header route withdrawn) from the analyze pod itself,
    verified at the router, timed.

    The platform is built before the window starts, so a broken service account shows up as
    an error at once rather than when traffic must be made safe.
    """

    def __init__(self, plan, kubeconfig: str | None):
        from canaryflow.kubernetes.from_plan import platform_for
        from canaryflow.kubernetes.platform import api_client_from_environment

        self.platform = platform_for(plan, api_client_from_environment(kubeconfig, None))

    def make_safe(self, first_failing: float | None) -> dict:
        started = time.time()
        try:
            self.platform.make_traffic_safe()
        except Exception as error:  # the rollback task tries again; say so and go on failing
            print(f"warning: fail-safe could not verify it: {error}", file=sys.stderr)
            return {"verified": False, "error": str(error), "summary": f"not verified: {error}"}
        verified = time.time()
        since = first_failing if first_failing is not None else started
        seconds = round(verified - since, 3)
        print(
            f"fail-safe: canary weight 0 and header route withdrawn, verified {seconds:g}s "
            "after the first failure"
        )
        return {
            "verified": True,
            "firstFailingMeasurementAt": first_failing,
            "weightZeroVerifiedAt": verified,
            "seconds": seconds,
            "headerRouteWithdrawn": True,
            "summary": f"weight 0 and no header route verified {seconds:g}s after the first "
            "failing measurement",
        }


def _baseline_scraped(plan, source, subject) -> bool:
    """Whether Prometheus scrapes the fresh baseline (``release.first_scrape``). Asked only
    where one runs (``_baseline_runs``): this pod needs no cluster access to know."""
    from canaryflow.release.first_scrape import baseline_scraped

    return _baseline_runs(plan) and baseline_scraped(source, subject)


def _baseline_runs(plan) -> bool:
    """Whether deploy-canary ran a fresh baseline: decided from the plan alone, as it did
    (``kubernetes.baseline.runs_in_cluster``). ``baseline: stable``, or a router that cannot
    split three ways (nginx-ingress, which ``validate`` warns of): none, so nothing to wait for."""
    from canaryflow.kubernetes.baseline import runs_in_cluster

    return runs_in_cluster(plan)


def _first_traffic_step(plan, args: argparse.Namespace) -> bool:
    first = next((i for i, s in enumerate(plan.steps) if s.is_traffic and s.weight), None)
    return args.step is not None and args.step == first


def baseline_patience(plan, scrape_interval: float | None = None) -> float:
    """How long the first step's pod waits for the fresh baseline's first scrape
    (``release.first_scrape.baseline_patience``: one scrape interval + 30 s)."""
    from canaryflow.release import first_scrape

    return first_scrape.baseline_patience(plan.analysis, scrape_interval)


def _wait_for_baseline(
    plan,
    args: argparse.Namespace,
    source,
    subject,
    sleep=time.sleep,
    clock=time.monotonic,
    scrape_interval: float | None = None,
) -> tuple[bool, float]:
    """Whether to judge against the fresh baseline, and how long this pod waited to know.

    No baseline runs (``_baseline_runs``): stable at once, Prometheus not even asked. At the
    first traffic step the baseline was deployed moments ago: its first scrape is waited for
    (``baseline_patience``, polling; ``release.first_scrape``, the same wait ``run --platform
    kubernetes`` does), since judging before it would be judging against nothing. At a later
    step it is asked once: no baseline then, stable (gone, or never). The first step's caller
    treats (False, waited) as a broken setup (``_baseline_never_scraped``), not as stable: a
    cold canary against the warm fleet, without the warm-up, is no verdict."""
    from canaryflow.release.first_scrape import wait_for_first_scrape

    if not _baseline_runs(plan):
        return False, 0.0
    first = _first_traffic_step(plan, args)
    patience = baseline_patience(plan, scrape_interval) if first else 0.0

    def announce(patience: float) -> None:
        print(
            f"waiting up to {patience:g}s for Prometheus' first scrape of the fresh "
            "baseline: the canary is judged against it",
            file=sys.stderr,
            flush=True,
        )

    return wait_for_first_scrape(source, subject, patience, sleep, clock, announce)


def _baseline_never_scraped(plan, args: argparse.Namespace, subject, waited: float):
    """The first step's ERROR window (a rollback) when the fresh baseline deploy-canary ran was
    not scraped within ``baseline_patience`` (``release.first_scrape.never_scraped``); None
    otherwise. A baseline Prometheus does not scrape is a broken setup (the PodMonitor misses
    ``canaryflow.dev/track: baseline``, or the pod crash-loops): judging against stable instead
    would compare a cold canary with the warm fleet without the warm-up the plan left out, so
    this is said, not papered over."""
    from canaryflow.release.first_scrape import never_scraped

    if not (_baseline_runs(plan) and _first_traffic_step(plan, args)):
        return None
    return never_scraped(subject, waited)


def _warm_up(plan, args: argparse.Namespace, analysis, waited: float = 0.0) -> None:
    """The first traffic step's window starts after ``analysis.warmup``, as the engine's does
    (``waited``: spent already, waiting for the baseline's first scrape)."""
    if not _first_traffic_step(plan, args):
        return
    seconds = analysis.warmup_s() - waited
    if seconds > 0:
        print(f"warm-up: {seconds:g}s before the first window", file=sys.stderr, flush=True)
        time.sleep(seconds)


def _window_length(plan, args: argparse.Namespace) -> float:
    """``--duration``, else the plan's step ``--step``, else 60 s."""
    if args.duration is not None:
        return _duration(args.duration)
    if args.step is None:
        return 60.0
    if not 0 <= args.step < len(plan.steps):
        raise InputError(
            FieldError("--step", f"{args.step} is not a step of the plan (0-{len(plan.steps) - 1})")
        )
    step = plan.steps[args.step]
    if step.duration is None:
        raise InputError(
            FieldError("--step", f"steps[{args.step}] is an approval, not an analysis window")
        )
    return step.duration


def _log_source(plan, args: argparse.Namespace):
    from canaryflow.analysis.logfile import LogFileSource, TrackLogFiles

    if args.canary_log and args.stable_log:
        return TrackLogFiles(args.canary_log, args.stable_log)
    if args.canary_log:
        return LogFileSource(args.canary_log)
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if not (args.cluster_logs or in_pod):
        return None
    from canaryflow.kubernetes.from_plan import platform_for
    from canaryflow.kubernetes.platform import api_client_from_environment
    from canaryflow.platform.protocol import log_source

    return log_source(platform_for(plan, api_client_from_environment(args.kubeconfig, None)))


def _duration(text: str) -> float:
    from canaryflow.duration import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise InputError(FieldError("--duration", str(error))) from None
    if seconds <= 0:
        raise InputError(FieldError("--duration", "must be longer than 0s, e.g. 60s"))
    return seconds


def _reject_bad_promql(plan, source) -> None:
    """Queries Prometheus cannot parse are the plan's mistake: exit 2 before measuring."""
    from canaryflow.analysis.source import MeasurementError
    from canaryflow.plan.promql import check_queries

    try:
        errors = check_queries(plan, source)
    except MeasurementError as error:  # down: the window will show it as ERROR measurements
        print(f"warning: queries not checked: {error}", file=sys.stderr)
        return
    if errors:
        raise InputError(errors)


def _print_round(batch: Sequence, verdict) -> None:
    width = max(len(m.gate) for m in batch)
    for m in batch:
        dry = " (dry run)" if m.dry_run else ""
        print(
            f"round {m.round:<3} {m.gate:<{width}}  {m.outcome.value.upper():<12} {m.reason}{dry}"
        )
    sys.stdout.flush()
