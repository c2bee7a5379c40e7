"""What ``go-test`` and ``go-build`` share: the Go settings from the plan and the Secrets."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_go_settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plan", type=Path, help="release plan whose build.go settings apply (GOPROXY, ...)"
    )
    parser.add_argument(
        "--netrc",
        type=Path,
        help="netrc file for private modules (default: $CANARYFLOW_GO_NETRC)",
    )
    parser.add_argument(
        "--git-credentials",
        type=Path,
        help="git-credentials file for private modules (default: $CANARYFLOW_GIT_CREDENTIALS)",
    )


def go_settings(args: argparse.Namespace):
    """The plan's ``build.go`` and the credential files, validated (exit 2 when wrong)."""
    from canaryflow.build.settings import GoSettings

    plan_env = {}
    if args.plan is not None:
        from canaryflow.plan.load import load_plan

        plan_env = load_plan(args.plan).build.go.env()
    return GoSettings.from_environment(plan_env, args.netrc, args.git_credentials)
