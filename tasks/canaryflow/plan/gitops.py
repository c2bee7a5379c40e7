"""``promotion.gitops``: promotion written to the configuration repository, not patched live.

With Argo CD or Flux reconciling the stable Deployment from Git (self-heal, drift correction),
a live patch of its image is reverted at the next sync. In GitOps mode the promote step writes
the released digest into the file the plan names (a kustomization ``images[]`` entry, a Helm
values key, or a plain manifest's container image), commits and pushes it (or pushes a branch
for a merge request), then waits until the Deployment in the cluster runs that digest.

Every value here reaches ``git`` as one argv element or a file path inside a checkout, so each
is spelled conservatively: no leading ``-`` (never read as a flag), no ``..`` path segment, no
credentials in the URL (they come from the chart's credentials Secret).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from canaryflow.duration import Duration
from canaryflow.spec_model import SpecModel

# https:// (production), http:// and git:// (a server on loopback, as the tests run one); the
# user and password never in the URL: `git` would store and print them.
REPOSITORY_URL = r"^(https|http|git)://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%+-]+)*/?$"
# A forge's REST API (the chart's gitops.apiUrl): http(s) only, no credentials in it.
API_URL = r"^(https|http)://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%+-]+)*/?$"
# A branch git accepts (git check-ref-format) and that cannot be read as an option.
_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$")
_REPO_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,1023}\.ya?ml$")
_KEY_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,252}$")
_IMAGE_NAME = r"^[a-z0-9][a-z0-9._/:-]{0,254}$"
_CONTAINER = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# owner/repo (GitHub) or group/subgroup/project (GitLab): path segments, never a '..'.
_PROJECT = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}){1,20}$"
DEFAULT_OBSERVE_TIMEOUT_S = 600.0
# Set by the chart on the promote task (values gitops.repository, gitops.credentialsSecret).
REPOSITORY_ENV = "CANARYFLOW_GITOPS_REPOSITORY"
API_URL_ENV = "CANARYFLOW_GITOPS_API_URL"
BRANCH_ENV = "CANARYFLOW_GITOPS_BRANCH"
DEFAULT_BRANCH = "main"
CREDENTIALS_ENV = "CANARYFLOW_GITOPS_CREDENTIALS"
CREDENTIALS_DIR = "/var/run/canaryflow/gitops"


class GitOpsSpec(SpecModel):
    """Where the released digest is written, and how long Argo CD / Flux get to roll it out."""

    tool: Literal["argocd", "flux"] = Field(
        "argocd",
        description="What reconciles the service from Git: argocd or flux (the "
        "`canaryflow gitops-snippet` default and the event wording).",
    )
    repository: Annotated[str, Field(pattern=REPOSITORY_URL, max_length=2048)] | None = Field(
        None,
        description="The configuration repository (https://). Default: the chart's "
        "gitops.repository. Credentials never go here: they come from the chart's "
        "gitops.credentialsSecret.",
    )
    branch: str | None = Field(
        None,
        description="The branch Argo CD / Flux follow. Default: the chart's gitops.branch, "
        "else main.",
    )
    mode: Literal["commit", "merge-request"] = Field(
        "commit",
        description="commit: push to `branch`; merge-request: push the change to the branch "
        "`canaryflow/<service>/<version>` and open a merge request into `branch` (with "
        "`provider`; without it the branch is only pushed); either way promote waits until "
        "the cluster runs the digest.",
    )
    provider: Literal["github", "gitlab"] | None = Field(
        None,
        description="merge-request: the forge whose API opens it (github: a pull request, "
        "gitlab: a merge request), at the chart's gitops.apiUrl (default: derived from the "
        "repository URL), with the token of the chart's credentials Secret.",
    )
    project: Annotated[str, Field(pattern=_PROJECT)] | None = Field(
        None,
        description="merge-request: the project on the forge, owner/repo (GitHub) or the "
        "group/project path (GitLab). Default: the repository URL's path without .git.",
    )
    path: str = Field(description="The file in the repository, e.g. apps/checkout/values.yaml.")
    format: Literal["kustomization", "helm-values", "manifest"] = Field(
        description="kustomization: an images[] entry (newName, digest); helm-values: the "
        "dotted `key`; manifest: the container image of the Deployment named like the service."
    )
    image: Annotated[str, Field(pattern=_IMAGE_NAME)] | None = Field(
        None,
        description="kustomization: the images[].name to set (default: the released image's "
        "repository).",
    )
    key: str | None = Field(
        None, description="helm-values: the dotted key, e.g. image.digest or checkout.image."
    )
    value: Literal["reference", "digest"] = Field(
        "reference",
        description="helm-values: what the key receives, the whole reference "
        "(repo@sha256:...) or the digest alone (sha256:...).",
    )
    container: Annotated[str, Field(pattern=_CONTAINER)] | None = Field(
        None,
        description="manifest: the container to set (default: the one named like the service, "
        "else the only one).",
    )
    timeout: Duration = Field(
        DEFAULT_OBSERVE_TIMEOUT_S,
        gt=0,
        le=24 * 3600,
        description="How long promote waits for the Deployment to run the digest (rolled "
        "out); then the canary is removed and the release reports the promotion not observed.",
    )

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _BRANCH.fullmatch(value) or ".." in value or "//" in value:
            raise ValueError(
                f"{value[:60]!r} is not a usable branch: use letters, digits and ._/- , "
                "starting with a letter or digit, without '..', e.g. main"
            )
        if value.endswith((".lock", "/", ".")):
            raise ValueError(f"{value[:60]!r} cannot end with .lock, '/' or '.': e.g. main")
        return value

    def branch_or(self, chart_branch: str | None) -> str:
        """The followed branch: the plan's, else the chart's, else ``DEFAULT_BRANCH``."""
        return self.branch or chart_branch or DEFAULT_BRANCH

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        parts = value.split("/")
        if not _REPO_PATH.fullmatch(value) or any(p in ("", ".", "..") for p in parts):
            raise ValueError(
                f"{value[:60]!r} is not a file inside the repository: give a relative path "
                "to a .yaml file without '..', e.g. apps/checkout/kustomization.yaml"
            )
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None and not all(_KEY_PART.fullmatch(p) for p in value.split(".")):
            raise ValueError(
                f"{value[:60]!r} is not a dotted values key: use names of letters, digits, "
                "'_' and '-' joined by '.', e.g. image.digest"
            )
        return value

    @model_validator(mode="after")
    def _fits_format(self) -> GitOpsSpec:
        if self.format == "helm-values" and self.key is None:
            raise _KeyError("key", "helm-values needs the dotted key to set: e.g. image.digest")
        if self.project is not None and ".." in self.project:
            raise _KeyError("project", "'..' is not a project path: e.g. platform/config")
        if self.provider == "github" and self.project is not None and self.project.count("/") != 1:
            raise _KeyError("project", "a GitHub project is owner/repo: e.g. platform/config")
        misplaced = {
            "provider": (
                self.mode != "merge-request" and self.provider is not None,
                "applies to mode merge-request only: remove it or set mode: merge-request",
            ),
            "project": (
                self.provider is None and self.project is not None,
                "names the project on the forge: set provider (github or gitlab) or remove it",
            ),
        }
        for name, (wrong, fix) in misplaced.items():
            if wrong:
                raise _KeyError(name, fix)
        by_format = {
            "key": self.format != "helm-values" and self.key is not None,
            "image": self.format != "kustomization" and self.image is not None,
            "container": self.format != "manifest" and self.container is not None,
        }
        for name, wrong in by_format.items():
            if wrong:
                raise _KeyError(name, f"does not apply to format {self.format}: remove it")
        return self


class _KeyError(ValueError):
    """A rule about one key; ``subpath`` lets the error name ``promotion.gitops.<key>``."""

    def __init__(self, key: str, message: str):
        self.subpath = (key,)
        super().__init__(message)
