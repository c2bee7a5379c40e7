"""Where the upstream schemas and CRDs live: ``shared/schemas`` beside the repository.

CI clones the repository with ``shared/`` next to it; ``CANARYFLOW_SCHEMAS`` overrides. In a
git worktree (``git worktree add ../wt/x``) nothing sits beside the checkout, so the main
checkout's sibling is looked at too: the parent of ``git rev-parse --git-common-dir`` is the
main checkout, and its ``../shared/schemas`` is the same directory CI uses.
"""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _main_checkout() -> Path | None:
    """The main checkout of the worktree ``REPO`` is in (``REPO`` itself outside a worktree)."""
    try:
        common = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(common).parent if common else None


def _schemas() -> Path:
    if "CANARYFLOW_SCHEMAS" in os.environ:
        return Path(os.environ["CANARYFLOW_SCHEMAS"])
    beside = REPO.parent / "shared" / "schemas"
    if beside.is_dir():
        return beside
    main = _main_checkout()
    if main is not None and (main.parent / "shared" / "schemas").is_dir():
        return main.parent / "shared" / "schemas"
    return beside  # absent: the tests that need it say where they looked


SCHEMAS = _schemas()
