"""``canaryflow go-build``: a static, stamped, reproducible Go build, for one or more platforms.

Prints ``{"binary", "sha256", "version"}`` as one JSON line per platform; ``--output-file``
also writes the first platform's sha256 alone to a file, which is how Argo reads an output
parameter, and ``--platforms-file`` writes ``{"os/arch": binary}`` for ``image-push``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from canaryflow.build.go import IMAGE_GOARCH, IMAGE_GOOS, GoBuildError, go_build
from canaryflow.commands.arguments import add_json_option, emit
from canaryflow.commands.go_settings import add_go_settings_options, go_settings
from canaryflow.errors import EXIT_OK, EXIT_RELEASE_FAILED, FieldError, InputError, PlatformError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, type=Path, help="the Go module's directory")
    add_go_settings_options(parser)
    parser.add_argument("--out", required=True, type=Path, help="path of the binary to write")
    parser.add_argument("--version", required=True, help="stamped as main.version, e.g. v2")
    parser.add_argument("--package", default=".", help="package to build (default .)")
    parser.add_argument("--goos", default=IMAGE_GOOS, help=f"default {IMAGE_GOOS}")
    parser.add_argument("--goarch", default=IMAGE_GOARCH, help=f"default {IMAGE_GOARCH}")
    parser.add_argument(
        "--platforms-from-plan",
        action="store_true",
        help="build for the plan's build.platforms (instead of --goos/--goarch): the first "
        "to --out, each other to OUT-OS-ARCH",
    )
    parser.add_argument(
        "--platforms-file",
        type=Path,
        help='write {"os/arch": binary, ...} here, for image-push --platforms-file',
    )
    parser.add_argument("--output-file", type=Path, help="also write the sha256 to this file")
    add_json_option(parser)  # one object for all platforms, not a JSON line per binary


def run(args: argparse.Namespace) -> int:
    settings = go_settings(args)
    if args.platforms_from_plan and (prebuilt := _prebuilt(args)) is not None:
        # nothing to build: the output parameter still names what is released
        print(f"build.image: releasing the prebuilt {prebuilt}; nothing to build", file=sys.stderr)
        if args.output_file:
            args.output_file.parent.mkdir(parents=True, exist_ok=True)
            args.output_file.write_text(prebuilt.rpartition("@sha256:")[2])
        emit(args, {"prebuilt": prebuilt, "platforms": {}})
        return EXIT_OK
    platforms = _platforms(args)
    built = {}
    try:
        for index, platform in enumerate(platforms):
            goos, goarch, *variant = platform.split("/")
            out = (
                args.out
                if index == 0
                else args.out.with_name(f"{args.out.name}-{platform.replace('/', '-')}")
            )
            result = go_build(
                args.dir,
                out,
                args.version,
                args.package,
                goos=goos,
                goarch=goarch,
                goarm=variant[0].removeprefix("v") if variant else None,
                settings=settings,
            )
            built[platform] = result
            if not args.json:
                print(json.dumps(result.as_json()))
            print(f"built {result.path} ({platform}) in {result.duration_s:.1f}s", file=sys.stderr)
    except GoBuildError as error:
        if args.json:  # the CLI's JSON error document
            raise PlatformError(str(error)) from None
        print(error, file=sys.stderr)
        return EXIT_RELEASE_FAILED
    first = built[platforms[0]]
    if args.output_file:
        args.output_file.parent.mkdir(parents=True, exist_ok=True)
        args.output_file.write_text(first.sha256)
    if args.platforms_file:
        args.platforms_file.parent.mkdir(parents=True, exist_ok=True)
        paths = {platform: str(result.path) for platform, result in built.items()}
        args.platforms_file.write_text(json.dumps(paths, indent=2) + "\n")
    if args.json:
        platforms = {platform: result.as_json() for platform, result in built.items()}
        emit(args, {**first.as_json(), "platforms": platforms})
    return EXIT_OK


def _platforms(args: argparse.Namespace) -> list[str]:
    if not args.platforms_from_plan:
        return [f"{args.goos}/{args.goarch}"]
    if args.plan is None:
        raise InputError(FieldError("platforms-from-plan", "needs --plan: give the plan"))
    from canaryflow.plan.load import load_plan

    return list(load_plan(args.plan).build.platforms)


def _prebuilt(args: argparse.Namespace) -> str | None:
    if args.plan is None:
        return None
    from canaryflow.plan.load import load_plan

    return load_plan(args.plan).build.image
