"""The Go settings a build runs with: Go's defaults, the platform's, the service's, and never a
value that reaches ``go`` as a flag it did not ask for.

Precedence, lowest first: Go's own defaults (``GOPROXY=https://proxy.golang.org,direct``, a
``vendor/`` directory honoured as ``-mod=vendor`` by Go itself), ``GOTOOLCHAIN=local`` (the
image's Go builds; no toolchain download mid-build), the task's environment (the chart's
``go.env``: a company's proxy, ``GOPRIVATE``...), then the plan's ``build.go``. ``CGO_ENABLED=0``
is the one setting nobody overrides: the image is ``scratch``, the binary must be static.

Private modules: a netrc file (``NETRC``, read by ``cmd/go/internal/auth``) for proxies and
HTTPS fetches, or a git-credentials file (``credential.helper=store``) for ``direct`` git
fetches, each from a mounted Secret. Only their paths are handled here, never their contents.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from canaryflow.errors import FieldError, InputError

ALWAYS: Mapping[str, str] = {"CGO_ENABLED": "0"}
DEFAULTS: Mapping[str, str] = {"GOTOOLCHAIN": "local"}

# GOFLAGS a plan may set: module mode, build tags, VCS stamping, cache permissions. Flags that run
# other programs (-toolexec, -exec, -overlay...) are not settings a release plan needs.
_GOFLAG = re.compile(
    r"-mod=(mod|vendor|readonly)|-modcacherw|-trimpath|-buildvcs=(true|false|auto)"
    r"|-tags=[A-Za-z0-9_.,]+|-p=[1-9][0-9]{0,2}"
)
_PATTERN_LIST = re.compile(r"[A-Za-z0-9._~/*?\[\]-]+(,[A-Za-z0-9._~/*?\[\]-]+)*")
_PROXY_LIST = re.compile(r"(https?://[^\s,|]+|direct|off)([,|](https?://[^\s,|]+|direct|off))*")


class GoBuildSpec(BaseModel):
    """Plan ``build.go``: the service's Go module settings (each maps to one Go variable)."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )

    proxy: str | None = Field(
        None, description="GOPROXY, e.g. https://goproxy.corp.example,direct."
    )
    private: str | None = Field(
        None, description="GOPRIVATE: module path patterns fetched directly, unchecked by sumdb."
    )
    no_proxy: str | None = Field(None, description="GONOPROXY: patterns never fetched via proxy.")
    no_sum_db: str | None = Field(None, description="GONOSUMDB: patterns not checked by sumdb.")
    sum_db: str | None = Field(
        None, pattern=r"^[A-Za-z0-9.+:/_-]+( [A-Za-z0-9.+:/_-]+)*$", description="GOSUMDB."
    )
    flags: list[str] = Field(
        default_factory=list,
        description="GOFLAGS, one flag per item: -mod=vendor|mod|readonly, -tags=a,b, "
        "-modcacherw, -trimpath, -buildvcs=..., -p=N.",
    )
    toolchain: str | None = Field(
        None, pattern=r"^(local|auto|go1\.[0-9]+(\.[0-9]+)?(\+auto)?)$", description="GOTOOLCHAIN."
    )

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if value is not None and not _PROXY_LIST.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a GOPROXY list: use URLs, direct or off separated by , or |"
            )
        return value

    @field_validator("private", "no_proxy", "no_sum_db")
    @classmethod
    def _patterns(cls, value: str | None) -> str | None:
        if value is not None and not _PATTERN_LIST.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a list of module path patterns: use e.g. "
                "git.corp.example/*,github.com/acme/*"
            )
        return value

    @field_validator("flags")
    @classmethod
    def _flags(cls, flags: list[str]) -> list[str]:
        for flag in flags:
            if not _GOFLAG.fullmatch(flag):
                raise ValueError(
                    f"{flag!r} is not an allowed GOFLAGS entry: use -mod=vendor|mod|readonly, "
                    "-tags=a,b, -modcacherw, -trimpath, -buildvcs=true|false|auto or -p=N"
                )
        return flags

    def env(self) -> dict[str, str]:
        values = {
            "GOPROXY": self.proxy,
            "GOPRIVATE": self.private,
            "GONOPROXY": self.no_proxy,
            "GONOSUMDB": self.no_sum_db,
            "GOSUMDB": self.sum_db,
            "GOFLAGS": " ".join(self.flags) or None,
            "GOTOOLCHAIN": self.toolchain,
        }
        return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class GoSettings:
    """Everything a ``go`` run gets besides its arguments."""

    plan: Mapping[str, str] = field(default_factory=dict)
    """The plan's ``build.go`` as variables (``GoBuildSpec.env``)."""
    netrc: Path | None = None
    git_credentials: Path | None = None

    def __post_init__(self) -> None:
        errors = [
            FieldError(name, f"{path} is not a readable file: mount the Secret there or fix it")
            for name, path in (("netrc", self.netrc), ("git-credentials", self.git_credentials))
            if path is not None and not (Path(path).is_file() and os.access(path, os.R_OK))
        ]
        if errors:
            raise InputError(errors)

    def environment(self, inherited: Mapping[str, str], extra: Mapping[str, str] = ()) -> dict:
        env = {**DEFAULTS, **inherited, **self.plan, **dict(extra), **ALWAYS}
        env["GIT_TERMINAL_PROMPT"] = "0"  # a missing credential fails, never waits for a tty
        if self.netrc is not None:
            env["NETRC"] = str(Path(self.netrc).absolute())
        if self.git_credentials is not None:
            index = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
            env["GIT_CONFIG_COUNT"] = str(index + 1)
            env[f"GIT_CONFIG_KEY_{index}"] = "credential.helper"
            store = Path(self.git_credentials).absolute()
            env[f"GIT_CONFIG_VALUE_{index}"] = f"store --file={store}"
        return env

    @classmethod
    def from_environment(
        cls,
        plan: Mapping[str, str] | None = None,
        netrc: Path | None = None,
        git_credentials: Path | None = None,
    ) -> GoSettings:
        """Options win; else ``CANARYFLOW_GO_NETRC`` / ``CANARYFLOW_GIT_CREDENTIALS`` (set by the
        chart where it mounts the Secret)."""
        netrc = netrc or _path_from_env("CANARYFLOW_GO_NETRC")
        git_credentials = git_credentials or _path_from_env("CANARYFLOW_GIT_CREDENTIALS")
        return cls(dict(plan or {}), netrc, git_credentials)


def _path_from_env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


_PACKAGE = re.compile(r"(\.|\.\.\.|\./[A-Za-z0-9_.~+/-]*|[A-Za-z0-9][A-Za-z0-9_.~+/-]*)")


def check_package_pattern(name: str, pattern: str) -> None:
    """A package pattern ``go`` can only read as a package inside the module: ``.``, ``./...``,
    ``./cmd/server``, ``example.com/svc/...``. Never a flag (leading ``-``), never outside the
    module (``..``), no spaces, quotes, ``$``, backticks or newlines."""
    parts = pattern.split("/")
    if not _PACKAGE.fullmatch(pattern or "") or ".." in parts or pattern.startswith("/"):
        raise InputError(
            FieldError(
                name,
                f"{pattern!r} is not a package pattern inside the module: use ., ./..., "
                "./cmd/server or an import path like example.com/svc/...",
            )
        )
