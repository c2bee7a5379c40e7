"""``canaryflow bench``: measure this machine and write BENCHMARKS.md.

Bad releases, bad flag rollouts, healthy releases, the router's split and reload behaviour, one
analysis round and the CLI's start-up, each with real processes; the raw figures go to
``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from canaryflow.errors import InputError

ONLY: dict[str, str] = {
    "cli": "`canaryflow --help`",
    "split": "Split accuracy",
    "reload": "Zero-drop weight changes",
    "releases": "Bad releases, Healthy releases and One analysis round (one stack)",
    "flags": "Bad flag rollouts",
}
"""``--only``'s choices and the sections of BENCHMARKS.md each measures and replaces."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out/bench"), help="raw results folder")
    parser.add_argument("--write", type=Path, default=Path("BENCHMARKS.md"), help="Markdown file")
    parser.add_argument("--releases", type=int, default=10, help="bad releases (at least 1)")
    parser.add_argument("--healthy", type=int, default=2, help="healthy releases")
    parser.add_argument("--flag-rollouts", type=int, default=5, help="bad flag rollouts")
    parser.add_argument("--reload-changes", type=int, default=150, help="weight changes per design")
    parser.add_argument(
        "--judgement",
        action="store_true",
        help="only the judgement benchmark: default gates on a noisy fleet (4 stable pods, 1 "
        "canary pod) against each fault class (one per metric flavour among them) and good "
        "canaries; replaces BENCHMARKS.md's judgement section",
    )
    parser.add_argument(
        "--warm-canary",
        action="store_true",
        help="judgement: pods start warm (no cold start); writes its own section",
    )
    parser.add_argument("--runs", type=int, default=1, help="judgement: releases per fault class")
    parser.add_argument("--good", type=int, default=2, help="judgement: good canaries")
    parser.add_argument(
        "--only",
        choices=sorted(ONLY),
        help="only one group of the whole run's sections, each written with its own run "
        "header (date, machine, load, commit); the others are left as they are: "
        + "; ".join(f"{key}: {value}" for key, value in ONLY.items()),
    )
    parser.add_argument(
        "--replay",
        type=int,
        metavar="N",
        help="only the offline replay: N simulated A/A releases of a production-shaped fleet "
        "(N/5 per fault class, N/10 per class of the contrast fleets) judged offline; "
        "replaces BENCHMARKS.md's replay section",
    )
    parser.add_argument(
        "--fleet",
        action="append",
        dest="fleets",
        metavar="NAME",
        help="replay: only this fleet (repeatable; N releases of each class on each chosen "
        "fleet, no carry or cold-start comparison); one of: " + ", ".join(_fleet_keys()),
    )
    parser.add_argument(
        "--class",
        action="append",
        dest="classes",
        metavar="NAME",
        help="replay: only this class (repeatable; 'aa' alone: false rollbacks only); one of: "
        + ", ".join(_class_keys())
        + ". With --fleet or --class the run writes BENCHMARKS.md's section "
        f"'{SELECTED_TITLE}' instead of the whole replay section",
    )
    parser.add_argument(
        "--cost",
        action="store_true",
        help="only the cost of an analysis round on a big backfilled fleet (200 stable pods x "
        "10 label values; 50 services at once); replaces BENCHMARKS.md's cost section",
    )


SELECTED_TITLE = "Offline replay: selected fleets and classes"
"""The section a replay of some fleets or classes writes (the whole run's stays as it is)."""


def _fleet_keys() -> list[str]:
    from canaryflow.bench.offline import FLEET_KEYS

    return list(FLEET_KEYS)


def _class_keys() -> list[str]:
    from canaryflow.bench.offline import CLASS_KEYS

    return list(CLASS_KEYS)


def _check_selection(args: argparse.Namespace) -> None:
    """``--fleet``/``--class``: only with ``--replay``, known names, each once."""
    for flag, given, known in (
        ("--fleet", args.fleets, _fleet_keys()),
        ("--class", args.classes, _class_keys()),
    ):
        if given is None:
            continue
        if args.replay is None:
            raise InputError(
                f"{flag}: selects what the offline replay judges; give it with --replay, "
                f"e.g. --replay 500 {flag} {known[0]}"
            )
        for name in given:
            if name not in known:
                raise InputError(f"{flag}: unknown name {name!r}; give one of {', '.join(known)}")
        if len(set(given)) != len(given):
            twice = next(n for n in given if given.count(n) > 1)
            raise InputError(f"{flag}: {twice!r} given twice; give each name once")


def run(args: argparse.Namespace) -> int:
    _check_selection(args)
    if args.releases < 1:
        raise InputError("--releases: must be at least 1 bad release; give e.g. --releases 10")
    if args.healthy < 0 or args.reload_changes < 1 or args.flag_rollouts < 0:
        raise InputError(
            "--healthy and --flag-rollouts: >= 0, --reload-changes: >= 1; give e.g. 2, 5 and 150"
        )
    if args.runs < 0 or args.good < 0 or args.runs + args.good == 0:
        raise InputError("--runs and --good: >= 0, not both 0; give e.g. --runs 10 --good 30")
    others = [flag for flag, on in _exclusive(args).items() if on]
    if args.only and others:
        raise InputError(
            f"--only: measures sections of the whole run, not {others[0]}'s; give one of them"
        )
    if args.replay is not None:
        return _replay_only(args)
    if args.cost:
        return _cost_only(args)
    if args.judgement:
        return _judgement_only(args)
    if args.only:
        return _sections_only(args)
    from canaryflow.bench import scenarios as bench
    from canaryflow.bench.judgement import markdown as judgement_markdown
    from canaryflow.bench.markdown import keep_other_sections, render_markdown

    began = time.monotonic()
    results = bench.BenchResults(machine=bench.machine())
    say("CLI start-up")
    results.cli_help = bench.cli_help()
    say("split accuracy")
    results.split = bench.split_accuracy()
    say("router reloads: two-tier vs single nginx")
    results.reload = bench.reload_comparison(args.reload_changes)
    with tempfile.TemporaryDirectory(prefix="canaryflow-bench-") as tmp:
        build = args.out / "build"
        results.bad, results.healthy, results.analysis_round = bench.releases(
            Path(tmp), build, args.releases, args.healthy, say
        )
        results.bad_flags = bench.flag_rollouts(Path(tmp), build, args.flag_rollouts, say)
        judged = _judge(args, Path(tmp), build)
    results.seconds = time.monotonic() - began
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(results.to_dict(), indent=2) + "\n")
    old = args.write.read_text() if args.write.exists() else ""
    command = f"canaryflow bench --runs {args.runs} --good {args.good}"
    header = _run_header(command, results.seconds, results.machine["commit"])
    new = render_markdown(results) + "\n" + judgement_markdown(judged, header)
    args.write.write_text(keep_other_sections(old, new))
    say(f"wrote {args.write} and {args.out / 'bench.json'} in {results.seconds:.0f}s")
    return 0


def _judge(args: argparse.Namespace, workdir: Path, build: Path):
    from canaryflow.bench.judgement import judgement

    cold = not args.warm_canary
    results = judgement(workdir, build, args.runs, args.good, say, cold_start=cold)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "judgement.json").write_text(json.dumps(results.to_dict(), indent=2) + "\n")
    return results


def _judgement_only(args: argparse.Namespace) -> int:
    from canaryflow.bench.judgement import markdown
    from canaryflow.bench.markdown import replace_section

    commit, load = _commit(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="canaryflow-judgement-") as tmp:
        results = _judge(args, Path(tmp), args.out / "build")
    warm = " --warm-canary" if args.warm_canary else ""
    command = f"canaryflow bench --judgement{warm} --runs {args.runs} --good {args.good}"
    section = markdown(results, _run_header(command, results.seconds, commit, load))
    old = args.write.read_text() if args.write.exists() else ""
    args.write.write_text(replace_section(old, section.split("\n", 1)[0], section))
    say(f"wrote the judgement section of {args.write} in {results.seconds:.0f}s")
    return 0


def _exclusive(args: argparse.Namespace) -> dict[str, bool]:
    return {
        "--judgement": args.judgement,
        "--replay": args.replay is not None,
        "--cost": args.cost,
    }


def _sections_only(args: argparse.Namespace) -> int:
    """Measure ``args.only``'s sections alone and replace just those in ``args.write``."""
    from canaryflow.bench import scenarios as bench
    from canaryflow.bench.markdown import render_sections, replace_section, with_run_header

    commit, load = _commit(), os.getloadavg()[0]
    began = time.monotonic()
    results = bench.BenchResults(machine=bench.machine())
    if args.only == "cli":
        results.cli_help = bench.cli_help()
    elif args.only == "split":
        results.split = bench.split_accuracy()
    elif args.only == "reload":
        results.reload = bench.reload_comparison(args.reload_changes)
    else:
        with tempfile.TemporaryDirectory(prefix="canaryflow-bench-") as tmp:
            build = args.out / "build"
            if args.only == "releases":
                results.bad, results.healthy, results.analysis_round = bench.releases(
                    Path(tmp), build, args.releases, args.healthy, say
                )
            else:
                results.bad_flags = bench.flag_rollouts(Path(tmp), build, args.flag_rollouts, say)
    results.seconds = time.monotonic() - began
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / f"bench-{args.only}.json"
    raw.write_text(json.dumps(results.to_dict(), indent=2) + "\n")
    header = _run_header(_only_command(args), results.seconds, commit, load)
    text = args.write.read_text() if args.write.exists() else ""
    for section in render_sections(results):
        title = section.split("\n", 1)[0]
        text = replace_section(text, title, with_run_header(section, header) + "\n")
    args.write.write_text(text)
    say(f"wrote {ONLY[args.only]} to {args.write} and {raw} in {results.seconds:.0f}s")
    return 0


def _only_command(args: argparse.Namespace) -> str:
    """The command line of an ``--only`` run, with the counts that shaped its figures."""
    counts = {
        "reload": f" --reload-changes {args.reload_changes}",
        "releases": f" --releases {args.releases} --healthy {args.healthy}",
        "flags": f" --flag-rollouts {args.flag_rollouts}",
    }
    return f"canaryflow bench --only {args.only}{counts.get(args.only, '')}"


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _replay_only(args: argparse.Namespace) -> int:
    from canaryflow.bench.offline import (
        carry_comparison,
        carry_markdown,
        cold_start_all,
        cold_start_markdown,
        replay_benchmark,
        replay_markdown,
    )

    if args.replay < 1:
        raise InputError("--replay: at least 1 release; give e.g. --replay 1000")
    say = lambda text: print(text, file=sys.stderr)  # noqa: E731
    started, commit, load = time.monotonic(), _commit(), os.getloadavg()[0]
    selected = args.fleets is not None or args.classes is not None
    result = replay_benchmark(args.replay, say=say, fleets=args.fleets, classes=args.classes)
    if not selected:
        result["carry"] = carry_comparison(max(1, args.replay // 10), say=say)
        result["cold_start"] = cold_start_all(max(1, args.replay // 5), say=say)
    result["seconds"] = time.monotonic() - started
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / ("replay-selected.json" if selected else "replay.json")
    raw.write_text(json.dumps(result, indent=2, default=str) + "\n")
    command = f"canaryflow bench --replay {args.replay}"
    command += "".join(f" --fleet {name}" for name in args.fleets or ())
    command += "".join(f" --class {name}" for name in args.classes or ())
    header = _run_header(command, result["seconds"], commit, load)
    if selected:
        section = replay_markdown(result, header, SELECTED_TITLE)
    else:
        cold = cold_start_markdown(result["cold_start"]["good"], result["cold_start"]["bad"])
        section = replay_markdown(result, header) + carry_markdown(result["carry"]) + cold
    _replace_section(args.write, section)
    say(f"wrote {section.split(chr(10), 1)[0][3:]!r} to {args.write} in {result['seconds']:.0f}s")
    return 0


def _cost_only(args: argparse.Namespace) -> int:
    from canaryflow.bench.cost import COST_SHAPES, markdown, measure

    say = lambda text: print(text, file=sys.stderr)  # noqa: E731
    started, load, commit = time.monotonic(), os.getloadavg()[0], _commit()
    costs = []
    for shape, batched in COST_SHAPES:
        with tempfile.TemporaryDirectory(prefix="canaryflow-cost-") as tmp:
            cost = measure(shape, Path(tmp), batched=batched)
        say(
            f"{shape} (batched: {batched}): round median {cost.median_ms:.0f} ms, "
            f"p95 {cost.p95_ms:.0f} ms, "
            f"{cost.samples_per_round:.0f} samples, {cost.requests_per_round:.0f} requests"
        )
        costs.append(cost)
    args.out.mkdir(parents=True, exist_ok=True)
    raw = [{**c.__dict__, "shape": c.shape.__dict__} for c in costs]
    (args.out / "cost.json").write_text(json.dumps(raw, indent=2) + "\n")
    header = _run_header("canaryflow bench --cost", time.monotonic() - started, commit, load)
    _replace_section(args.write, markdown(costs, header))
    return 0


def _commit() -> str:
    """The checked-out commit, and whether tracked files differ from it."""
    import subprocess

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "tasks"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (commit or "unknown") + (" with uncommitted changes" if dirty else "")


def _run_header(
    command: str, seconds: float, commit: str | None = None, load_at_start: float | None = None
) -> str:
    """Date, machine, load, niceness, commit (at the run's start, when given) and command of a
    run, for the section it writes: on a shared machine its timings are only comparable with
    the load they were measured under."""
    import datetime
    import platform

    commit = commit or _commit()
    uname = " ".join(os.uname())
    start = f"{load_at_start:.0f} at the start, " if load_at_start is not None else ""
    nice = os.nice(0)
    return (
        f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC (end) on `{uname}`, "
        f"{os.cpu_count()} cores ({platform.python_implementation()} "
        f"{platform.python_version()}), load average {start}{os.getloadavg()[0]:.0f} at the "
        f"end{f', niceness {nice}' if nice else ''}, commit {commit}, "
        f"`{command}`, {seconds:.0f} s."
    )


def _replace_section(path: Path, section: str) -> None:
    """Put ``section`` (starting with its ``## `` title) in place of the one of the same
    title in ``path``, or at the end."""
    text = path.read_text() if path.exists() else ""
    marker = section.split("\n", 1)[0]
    if marker in text:
        before, _, after = text.partition(marker)
        rest = after.split("\n## ", 1)
        text = before + section + ("\n## " + rest[1] if len(rest) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
