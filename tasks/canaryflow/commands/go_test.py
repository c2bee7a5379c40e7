"""``canaryflow go-test``: run a Go module's tests; exit 1 when they fail."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from canaryflow.build.go import go_test
from canaryflow.commands.arguments import add_json_option, emit, seconds
from canaryflow.commands.go_settings import add_go_settings_options, go_settings
from canaryflow.errors import EXIT_OK, EXIT_RELEASE_FAILED


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, type=Path, help="the Go module's directory")
    add_go_settings_options(parser)
    parser.add_argument(
        "--packages", default="./...", help="package pattern inside the module (default ./...)"
    )
    parser.add_argument("--timeout", type=seconds, default=300, help="seconds before giving up")
    add_json_option(parser)  # {"ok": passed, "passed": ..., "durationS": ..., "output": ...}


def run(args: argparse.Namespace) -> int:
    result = go_test(args.dir, args.packages, timeout_s=args.timeout, settings=go_settings(args))
    if args.json:
        duration = round(result.duration_s, 3)
        document = {"ok": result.passed, "passed": result.passed, "durationS": duration}
        emit(args, {**document, "packages": args.packages, "output": result.output})
    else:
        sys.stdout.write(result.output)
    verdict = "passed" if result.passed else "FAILED"
    print(f"go test {verdict} in {result.duration_s:.1f}s", file=sys.stderr)
    return EXIT_OK if result.passed else EXIT_RELEASE_FAILED
