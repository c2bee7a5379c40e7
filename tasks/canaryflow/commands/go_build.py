"""``canaryflow go-build``: a static, stamped, reproducible Go build.

Prints ``{"binary", "sha256", "version"}`` as one JSON line; ``--output-file`` also writes the
sha256 alone to a file, which is how Argo reads an output parameter.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from canaryflow.build.go import IMAGE_GOARCH, IMAGE_GOOS, GoBuildError, go_build
from canaryflow.commands.go_settings import add_go_settings_options, go_settings
from canaryflow.errors import EXIT_OK, EXIT_RELEASE_FAILED


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, type=Path, help="the Go module's directory")
    add_go_settings_options(parser)
    parser.add_argument("--out", required=True, type=Path, help="path of the binary to write")
    parser.add_argument("--version", required=True, help="stamped as main.version, e.g. v2")
    parser.add_argument("--package", default=".", help="package to build (default .)")
    parser.add_argument("--goos", default=IMAGE_GOOS, help=f"default {IMAGE_GOOS}")
    parser.add_argument("--goarch", default=IMAGE_GOARCH, help=f"default {IMAGE_GOARCH}")
    parser.add_argument("--output-file", type=Path, help="also write the sha256 to this file")


def run(args: argparse.Namespace) -> int:
    try:
        result = go_build(
            args.dir,
            args.out,
            args.version,
            args.package,
            goos=args.goos,
            goarch=args.goarch,
            settings=go_settings(args),
        )
    except GoBuildError as error:
        print(error, file=sys.stderr)
        return EXIT_RELEASE_FAILED
    if args.output_file:
        args.output_file.parent.mkdir(parents=True, exist_ok=True)
        args.output_file.write_text(result.sha256)
    print(json.dumps(result.as_json()))
    print(f"built {result.path} in {result.duration_s:.1f}s", file=sys.stderr)
    return EXIT_OK
