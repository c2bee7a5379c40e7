"""The ``canaryflow`` command line.

Verbs are imported lazily: the task pods call one verb each, and ``canaryflow --help`` must not
pay for Hera, the Kubernetes client or Prometheus' client. Each verb module under
``canaryflow.commands`` exposes ``configure(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from canaryflow import __version__
from canaryflow.errors import (
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_RELEASE_FAILED,
    EXIT_UNREACHABLE,
    InputError,
    PlatformError,
    UnreachableError,
)

# verb -> (module under canaryflow.commands, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    # plans and gates
    "validate": ("validate", "check a release plan; exit 2 naming every mistake"),
    "schema": ("schema", "print the release plan's JSON Schema"),
    "analyze": ("analyze", "run the plan's analysis gates for one window"),
    "runbook": ("runbook", "render the service's release runbook (Markdown) from its plan"),
    "gitops-snippet": (
        "gitops_snippet",
        "print the Argo CD ignoreDifferences / Flux ignore rule that keeps router edits",
    ),
    "flag-rollout": ("flag_rollout", "expose a feature flag to a growing segment, gated"),
    "flag-off": ("flag_off", "switch the plan's feature flag off, keeping the exposure"),
    # the local engine
    "run": ("run", "run a whole release of a plan on a platform"),
    "demo": ("demo", "build v1 and v2 of the sample service and release both locally"),
    "bench": ("bench", "measure detection-to-safe time, failed requests, split accuracy"),
    # workflow tasks
    "checkout": ("checkout", "clone a repository at an exact revision"),
    "go-test": ("go_test", "run go test for a Go module"),
    "go-build": ("go_build", "build a static, trimmed, version-stamped Go binary"),
    "image-push": ("image_push", "assemble an OCI image from a binary and push it by digest"),
    "deploy-canary": ("deploy_canary", "start the canary Deployment beside stable"),
    "health-gate": ("health_gate", "wait until the canary is available"),
    "set-weight": ("set_weight", "send N% of traffic to the canary, verified"),
    "promote": ("promote", "make stable run the canary's digest, remove the canary"),
    "rollback": ("rollback", "all traffic to stable (verified), then remove the canary"),
    "notify": ("notify", "post the release's outcome to webhooks and the commit status"),
    # packaging
    "compile": ("compile", "compile the Argo WorkflowTemplates (Hera) to YAML"),
    "chart": ("chart", "generate and package the Helm chart"),
    "doctor": ("doctor", "check a cluster before the first push; each failure names its fix"),
    "completion": ("completion", "print a bash or zsh completion script"),
}
# Verbs a workflow pod runs, one step each; every other verb is for people (and CI).
TASK_VERBS = frozenset(
    {
        "checkout",
        "go-test",
        "go-build",
        "image-push",
        "deploy-canary",
        "health-gate",
        "set-weight",
        "promote",
        "rollback",
        "notify",
    }
)
EXIT_CODES = """\
exit codes (every verb):
  0    done: valid, passed, promoted
  1    the release or the check failed
  2    bad input: every mistake named, nothing changed
  3    infrastructure unreachable (Prometheus, registry, API server, git): try again
  70   internal error (a bug in canaryflow)
  130  interrupted"""


def _verb_listing() -> str:
    """``--help``'s verb list in two groups: what people run, and what workflow pods run."""
    width = max(len(name) for name in VERBS) + 2
    groups = (
        ("verbs", [n for n in VERBS if n not in TASK_VERBS]),
        (
            "task verbs (one workflow step each; usable by hand)",
            [n for n in VERBS if n in TASK_VERBS],
        ),
    )
    blocks = [
        f"{title}:\n" + "\n".join(f"  {name:<{width}}{VERBS[name][1]}" for name in names)
        for title, names in groups
    ]
    return "\n\n".join([*blocks, EXIT_CODES])


def _parser(verb: str | None) -> argparse.ArgumentParser:
    parser = _BoundedParser(
        prog="canaryflow",
        usage="canaryflow [-h] [--version] VERB [options]",
        description="Canary releases for Go services: plan, gates, routers, Argo workflows.",
        epilog=_verb_listing(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"canaryflow {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", help=argparse.SUPPRESS)
    for name, (module, summary) in VERBS.items():
        # argparse %-formats help (not description): escape it there only.
        verb_parser = sub.add_parser(
            name,
            prog=f"canaryflow {name}",
            description=summary,
            epilog=EXIT_CODES,
            formatter_class=_Formatter,
        )
        if name == verb:
            _module(module).configure(verb_parser)
    return parser


def _module(name: str):
    return importlib.import_module(f"canaryflow.commands.{name}")


def _chosen_verb(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = _chosen_verb(argv)
    parser = _parser(verb if verb in VERBS else None)
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return EXIT_INPUT
    try:
        with _sigterm_as_interrupt():
            return int(_module(VERBS[args.verb][0]).run(args) or 0)
    except InputError as error:
        if getattr(args, "json", False):
            _print_json_errors(error.errors, "input")
            return EXIT_INPUT
        for line in error.errors[:MAX_ERROR_LINES]:
            print(f"error: {_bounded(str(line))}", file=sys.stderr)
        if len(error.errors) > MAX_ERROR_LINES:
            print(f"error: ... and {len(error.errors) - MAX_ERROR_LINES} more", file=sys.stderr)
        return EXIT_INPUT
    except UnreachableError as error:
        if getattr(args, "json", False):
            _print_json_errors([error.error], "unreachable")
        else:
            print(f"error: {_bounded(str(error), 4000)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except PlatformError as error:
        if getattr(args, "json", False):
            _print_json_errors([error.error], "failed")
        else:
            print(f"error: {_bounded(str(error), 4000)}", file=sys.stderr)
        return EXIT_RELEASE_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:  # a file or socket the verb needed: say which, no traceback
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {_bounded(f'{where}{error.strerror or error}')}", file=sys.stderr)
        return EXIT_RELEASE_FAILED
    except Exception as error:  # a bug: one bounded line, the traceback only on request
        if os.environ.get("CANARYFLOW_DEBUG"):
            raise
        text = f"{type(error).__name__}: {error}"[:500]
        print(
            f"internal error: {text} (a bug in canaryflow: please report it; "
            "CANARYFLOW_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


MAX_ERROR_LINES = 50


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and the exit-code table as written (line breaks kept)."""


def _print_json_errors(errors: Sequence, kind: str) -> None:
    """``--json``: the errors as one JSON document on stdout, for CI annotations."""
    import json

    document = {
        "ok": False,
        "kind": kind,
        "errors": [
            {"path": e.path, "message": _bounded(e.message)} for e in errors[:MAX_ERROR_LINES]
        ],
        "more": max(0, len(errors) - MAX_ERROR_LINES),
    }
    print(json.dumps(document, indent=2))


class _BoundedParser(argparse.ArgumentParser):
    """argparse quotes the offending argument in its errors (``invalid choice: '...'``): cut
    it like every other error, so a 100,000-character argument is not echoed back whole. The
    verbs' parsers are of this class too (``add_subparsers`` uses the parent's class)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {_bounded(message)}\n")


def _bounded(text: str, limit: int = 1000) -> str:
    """An error as printed: an input quoted in it is never echoed whole (10 MB in, 1 KB out)."""
    return text if len(text) <= limit else f"{text[: limit - 40]}... ({len(text)} characters)"


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``argo stop``, a pod's deletion, ``kill``) unwinds like Ctrl-C.

    Without this Python dies on the spot: a flag rollout could not switch its flag off, nor a
    local run stop the processes it started.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
