"""Where the upstream schemas and CRDs live: ``shared/schemas`` beside the repository.

CI clones the repository with ``shared/`` next to it; ``CANARYFLOW_SCHEMAS`` overrides.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = Path(os.environ.get("CANARYFLOW_SCHEMAS", REPO.parent / "shared" / "schemas"))
