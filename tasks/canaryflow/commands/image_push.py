"""``canaryflow image-push``: a static binary as an OCI image, pushed by digest, no Docker."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from canaryflow.commands.arguments import add_json_option, emit, seconds
from canaryflow.errors import EXIT_OK, FieldError, InputError
from canaryflow.image import PushRequest, push_image
from canaryflow.image.reference import SCRATCH


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build an OCI image holding BINARY at /app/NAME (non-root user 65532) and push it "
        "through the registry API; print HOST/REPO@sha256:... as the last line. On scratch "
        "the image also gets a CA bundle and time zones, so the service can call HTTPS APIs."
    )
    parser.add_argument(
        "--binary", type=Path, help="static binary to ship (required without --platforms-file)"
    )
    parser.add_argument(
        "--repository", required=True, help="HOST/REPO, e.g. 127.0.0.1:5000/shop/checkout"
    )
    parser.add_argument("--tag", required=True, help="tag to push under: the commit SHA")
    parser.add_argument(
        "--base",
        default=SCRATCH,
        help="base image HOST/REPO[:TAG][@DIGEST] whose layers are reused, or scratch (default)",
    )
    parser.add_argument("--name", help="file name under /app (default: the binary's name)")
    parser.add_argument(
        "--docker-config",
        type=Path,
        help="docker config.json with registry auths (default: $DOCKER_CONFIG/config.json, "
        "else ~/.docker/config.json); the mounted dockerconfigjson secret. A --docker-config "
        "that does not exist is an error unless --docker-config-optional",
    )
    parser.add_argument(
        "--docker-config-optional",
        action="store_true",
        help="a missing --docker-config means anonymous push (the workflow mounts the "
        "registry Secret with optional: true, so a registry that needs no login needs no "
        "Secret); a registry that then asks for credentials still fails, naming its host",
    )
    parser.add_argument(
        "--digest-file",
        type=Path,
        help="also write the full pinned reference HOST/REPO@sha256:... here, for the next step",
    )
    parser.add_argument("--platform", default="linux/amd64", help="os/arch[/variant] of --binary")
    parser.add_argument(
        "--plan",
        type=Path,
        help="release plan: with build.image set, push nothing and check that the registry "
        "serves that digest, then print it as if pushed",
    )
    parser.add_argument(
        "--platforms-file",
        type=Path,
        help="go-build's {os/arch: binary} file: its first entry replaces --binary/--platform "
        "and the others are pushed as with --platform-binary",
    )
    parser.add_argument(
        "--platform-binary",
        action="append",
        default=[],
        metavar="OS/ARCH=PATH",
        help="another platform's binary (repeatable): the tag then names an OCI index of one "
        "image per platform, e.g. linux/arm64=out/checkout-linux-arm64",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="K=V",
        help="extra image label (repeatable); revision and version default to the tag",
    )
    parser.add_argument("--image-version", help="org.opencontainers.image.version (default: tag)")
    parser.add_argument("--source", help="org.opencontainers.image.source, e.g. the repo URL")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="plain http to the registry (automatic for 127.0.0.1 and localhost)",
    )
    parser.add_argument("--timeout", type=seconds, default=30.0, help="seconds per HTTP request")
    parser.add_argument(
        "--ca-bundle",
        type=Path,
        help="PEM CA bundle for a scratch image's /etc/ssl/certs/ca-certificates.crt "
        "(default: certifi's Mozilla roots); e.g. your company's CA added",
    )
    parser.add_argument(
        "--zoneinfo",
        type=Path,
        help="zoneinfo.zip for a scratch image's time zones (default: the Go toolchain's)",
    )
    parser.add_argument(
        "--no-system-files",
        dest="system_files",
        action="store_false",
        help="a bare scratch image: no CA bundle, no time zones (a base image brings its own)",
    )
    add_json_option(parser)  # {"reference": HOST/REPO@sha256:..., "digest": sha256:...}


def run(args: argparse.Namespace) -> int:
    if args.plan is not None and (prebuilt := _prebuilt(args.plan)) is not None:
        return _release_prebuilt(prebuilt, args)
    binary, platform, more = args.binary, args.platform, _platform_binaries(args.platform_binary)
    if args.platforms_file is not None:
        binary, platform, more = _platforms_file(args.platforms_file, more)
    elif binary is None:
        raise InputError(FieldError("binary", "give --binary PATH (or --platforms-file)"))
    request = PushRequest(
        binary=binary,
        repository=args.repository,
        tag=args.tag,
        base=args.base,
        name=args.name,
        docker_config=args.docker_config,
        docker_config_optional=args.docker_config_optional,
        platform=platform,
        more_platforms=more,
        labels=_labels(args.label),
        version=args.image_version,
        source=args.source,
        insecure=args.insecure,
        timeout_s=args.timeout,
        system_files=args.system_files,
        ca_bundle=args.ca_bundle,
        zoneinfo=args.zoneinfo,
    )
    # A PlatformError is exit 1 and a registry that never answered exit 3 (the CLI's).
    pushed = push_image(request)
    _write_reference(pushed, args, prebuilt=False)
    return EXIT_OK


def _prebuilt(plan: Path) -> str | None:
    from canaryflow.plan.load import load_plan

    return load_plan(plan).build.image


def _release_prebuilt(image: str, args: argparse.Namespace) -> int:
    from canaryflow.image.push import verify_prebuilt

    pushed = verify_prebuilt(
        image, args.docker_config, args.docker_config_optional, args.insecure, args.timeout
    )
    _write_reference(pushed, args, prebuilt=True)
    print(f"build.image: releasing the prebuilt {pushed.reference}", file=sys.stderr)
    return EXIT_OK


def _write_reference(pushed, args: argparse.Namespace, prebuilt: bool) -> None:
    if args.digest_file:
        args.digest_file.parent.mkdir(parents=True, exist_ok=True)
        args.digest_file.write_text(pushed.reference + "\n")
    document = {"reference": pushed.reference, "digest": pushed.digest, "prebuilt": prebuilt}
    emit(args, document, pushed.reference)


def _platforms_file(path: Path, more: dict[str, Path]) -> tuple[Path, str, dict[str, Path]]:
    """The first platform and binary of go-build's file, and the rest with ``more``."""
    from canaryflow.input_file import read_input_file

    try:
        built = json.loads(read_input_file(path, 64 << 10, "platforms"))
        pairs = [(str(platform), Path(binary)) for platform, binary in built.items()]
    except (ValueError, AttributeError, TypeError):
        pairs = []
    if not pairs:
        raise InputError(
            FieldError("platforms-file", f"{path}: not go-build's {{os/arch: binary}} JSON")
        )
    (platform, binary), *rest = pairs
    return binary, platform, {**dict(rest), **more}


def _platform_binaries(pairs: list[str]) -> dict[str, Path]:
    binaries = {}
    for pair in pairs:
        platform, sep, path = pair.partition("=")
        if not sep or not platform or not path:
            raise InputError(FieldError("platform-binary", f"{pair!r} is not OS/ARCH=PATH"))
        binaries[platform] = Path(path)
    return binaries


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(FieldError("label", f"{pair!r} is not k=v"))
        labels[key] = value
    return labels
