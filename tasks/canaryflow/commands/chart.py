"""``canaryflow chart [--generate] [--out DIR]``: regenerate and package the Helm chart."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from canaryflow.commands.arguments import add_json_option, emit
from canaryflow.errors import EXIT_OK, FieldError, InputError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chart",
        type=Path,
        default=Path("charts/canaryflow"),
        metavar="DIR",
        help="the chart directory (default: charts/canaryflow)",
    )
    parser.add_argument(
        "--generate",
        action="store_true",
        help="rewrite the chart's generated templates and files from the code",
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="lint and package the chart into DIR"
    )
    add_json_option(parser)  # {"generated": [...], "package": PATH or null}


def run(args: argparse.Namespace) -> int:
    if not (args.chart / "Chart.yaml").is_file():
        raise InputError(
            FieldError("--chart", f"{args.chart} has no Chart.yaml: run from the repository root")
        )
    if not args.generate and args.out is None:
        raise InputError(FieldError("", "nothing to do: give --generate, --out DIR or both"))
    generated: list[str] = []
    if args.generate:
        # Compiling the workflows takes seconds: say so before, not only after.
        print(f"generating {args.chart} from the workflow code ...", file=sys.stderr, flush=True)
        from canaryflow.chart.generate import write_generated

        for path in write_generated(args.chart):
            generated.append(str(path))
            print(f"generated {path}", file=sys.stderr)
    package = None
    if args.out is not None:
        from canaryflow.chart.package import package_chart

        print(f"linting and packaging {args.chart} ...", file=sys.stderr, flush=True)
        package = str(package_chart(args.chart, args.out))
    emit(args, {"generated": generated, "package": package}, *([package] if package else []))
    return EXIT_OK
