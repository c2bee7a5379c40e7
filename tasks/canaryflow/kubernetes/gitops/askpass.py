"""The ``GIT_ASKPASS`` program: answers git's prompts from the mounted credentials Secret.

git runs ``$GIT_ASKPASS "Username for 'https://host': "`` (then ``Password for ...``) and
reads the answer from stdout (git's ``prompt.c``, ``do_askpass``). The answers are the files
``username`` and ``password`` of the directory ``CANARYFLOW_ASKPASS_CREDENTIALS`` names: the keys
of a ``kubernetes.io/basic-auth`` Secret mounted as a volume. So the token is never in an argv,
an environment variable or a URL, and never printed anywhere but to git's pipe.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CREDENTIALS_ENV = "CANARYFLOW_ASKPASS_CREDENTIALS"
DEFAULT_USERNAME = "x-access-token"
"""What GitHub (app tokens) and most forges accept as the user of a token-only Secret."""


def answer(prompt: str, credentials: Path) -> str:
    """The answer to one prompt: the username for ``Username ...``, else the password."""
    if prompt.lstrip().lower().startswith("username"):
        path = credentials / "username"
        return path.read_text().strip() if path.is_file() else DEFAULT_USERNAME
    return (credentials / "password").read_text().strip()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    directory = os.environ.get(CREDENTIALS_ENV)
    if not directory:
        print("canaryflow askpass: no credentials directory", file=sys.stderr)
        return 1
    try:
        sys.stdout.write(answer(argv[0] if argv else "", Path(directory)) + "\n")
    except OSError as error:
        print(f"canaryflow askpass: {error.strerror}: {error.filename}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
