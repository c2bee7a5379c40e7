"""The errors canaryflow reports to people.

An ``InputError`` is the user's to fix: the CLI prints every ``FieldError`` as
``field.path: what is wrong and how to fix it`` and exits 2, before anything is changed.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_RELEASE_FAILED = 1
EXIT_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in canaryflow, never the user's input


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


class PlatformError(CanaryflowError):
    """The platform (API server, router, processes) failed; the release must end safe."""
