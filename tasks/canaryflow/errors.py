"""The errors canaryflow reports to people.

An ``InputError`` is the user's to fix: the CLI prints every ``FieldError`` as
``field.path: what is wrong and how to fix it`` and exits 2, before anything is changed.

Exit codes, the same for every verb (README "Exit codes"; the workflows read them: a task is
retried unless it exited 2, since running bad input again cannot help):

====  =====================================================================================
0     done: the plan is valid, the step passed, the release promoted
1     the release or the check failed (a gate said fail, a step's platform call failed)
2     bad input (plan, flags, parameters): every mistake named, nothing changed
3     infrastructure unreachable (Prometheus, a registry, the API server, a git remote never
      answered): the input may be fine, try again
70    internal error: a bug in canaryflow (``EX_SOFTWARE``)
130   interrupted (Ctrl-C, SIGTERM)
====  =====================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_RELEASE_FAILED = 1
EXIT_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in canaryflow, never the user's input
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class CanaryflowError(Exception):
    """Base class; anything else escaping the CLI is a bug."""


class InputError(CanaryflowError):
    """Bad input (plan, flags, parameters): exit 2, nothing changed."""

    def __init__(self, errors: list[FieldError] | FieldError | str):
        if isinstance(errors, str):
            errors = [FieldError("", errors)]
        elif isinstance(errors, FieldError):
            errors = [errors]
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class _AtField(CanaryflowError):
    """An error that may name the input field it is about: ``path: message`` (no path: the
    message alone), kept as ``error`` for ``--json``'s ``{"path", "message"}``."""

    def __init__(self, message: object = "", path: str = ""):
        self.error = FieldError(path, str(message))  # some wrap another error as it is
        super().__init__(str(self.error))


class PlatformError(_AtField):
    """The platform (API server, router, processes) failed; the release must end safe."""


class ServiceError(PlatformError):
    """A service the verb needs answered, but with an error that is neither the input's
    mistake nor "never answered" (Prometheus refusing the operator's credentials, a 5xx, a
    proxy's error page): exit 1, the message says what to fix."""


class UnreachableError(_AtField):
    """A service the verb needs did not answer (exit 3): not the input's fault, so a caller
    (CI, a workflow's retry) can tell "try again later" from "fix the plan"."""


class PlatformUnreachable(PlatformError, UnreachableError):
    """A platform service (the Kubernetes API server, a registry, a git remote) that never
    answered: connection refused, a name that does not resolve, no connection within the
    timeout, a TLS handshake cut off. Exit 3, like ``UnreachableError``; and still a
    ``PlatformError``, so every handler that makes a release safe on a platform failure
    (promotion's restore, rollback's attempts, analyze's fail-safe) treats it as before."""
