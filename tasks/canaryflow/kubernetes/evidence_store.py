"""The release's carried evidence as an annotation on the canary Deployment.

The same in Argo and Tekton (no output parameter or result size limit to fit in), it survives
a pod's retry, and it is removed with the canary. Written with a JSON merge patch whose body
carries the resourceVersion read before the window: the API server refuses it (409) when the
Deployment moved on. Another writer's change to the Deployment (the weight recorded, a scale)
is re-read and the patch tried again; a change to the evidence itself is an error, never
overwritten.
"""

from __future__ import annotations

from canaryflow.analysis.carried import ANNOTATION
from canaryflow.errors import PlatformError
from canaryflow.kubernetes.api import ClusterApi, Conflict
from canaryflow.kubernetes.resources import DEPLOYMENT
from canaryflow.platform.evidence_store import Stored

ATTEMPTS = 5
"""Writes tried when other fields of the Deployment keep changing in between."""


class DeploymentEvidenceStore:
    def __init__(self, api: ClusterApi, deployment: str):
        self.api = api
        self.deployment = deployment
        self.where = f"annotation {ANNOTATION} of deployment {api.namespace}/{deployment}"

    def _get(self) -> dict:
        found = self.api.get(DEPLOYMENT, self.deployment)
        if found is None:
            raise PlatformError(f"{self.where}: the canary Deployment does not exist")
        return found

    def read(self) -> Stored:
        meta = self._get()["metadata"]
        return Stored((meta.get("annotations") or {}).get(ANNOTATION), meta["resourceVersion"])

    def write(self, text: str, read: Stored) -> None:
        patch = {"metadata": {"annotations": {ANNOTATION: text}}}
        version = read.version
        for _ in range(ATTEMPTS):
            try:
                self.api.merge_patch_at(DEPLOYMENT, self.deployment, patch, version)
                return
            except Conflict:
                now = self.read()
                if now.text != read.text:
                    raise PlatformError(
                        f"{self.where}: another writer changed the evidence during this "
                        "window; not overwritten"
                    ) from None
                version = now.version
        raise PlatformError(f"{self.where}: still conflicting after {ATTEMPTS} attempts")
