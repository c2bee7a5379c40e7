"""``canaryflow schema``: print the release plan's JSON Schema."""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation (default 2)")


def run(args: argparse.Namespace) -> int:
    from canaryflow.plan.schema import plan_json_schema

    print(json.dumps(plan_json_schema(), indent=args.indent, sort_keys=False))
    return 0
