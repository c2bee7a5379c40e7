"""The ``flag`` section of a release plan: which flag, its values, and the exposure steps.

Same conventions as the plan (camelCase, unknown keys rejected, frozen). Steps only ever widen
exposure: a user range may grow into a larger range or give way to a percentage, percentages
rise, and full exposure comes after the last step, once every window passed.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from canaryflow.duration import Duration
from canaryflow.flags.document import MAX_LISTED_USERS, Percent, Segment, UserRange, Variants
from canaryflow.spec_model import SpecModel

_USERS = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_FLAG_KEY = r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,62}$"


MAX_VARIANT_JSON_BYTES = 64 * 1024


def json_problem(value: Any, where: str = "the value") -> str | None:
    """Why ``value`` is not plain, finite JSON that reads back as itself; None when it is."""
    if value is None or isinstance(value, bool | str):
        return None
    if isinstance(value, int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r}, not a finite number"
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = json_problem(item, f"{where}[{index}]")
            if problem is not None:
                return problem
        return _too_big(value, where)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has the key {key!r}, which is not a string: quote it"
            problem = json_problem(item, f"{where}.{key}")
            if problem is not None:
                return problem
        return _too_big(value, where)
    kind = type(value).__name__
    return f"{where} is a {kind}, which JSON cannot hold (a YAML date? quote it)"


def _too_big(value: Any, where: str) -> str | None:
    if len(json.dumps(value, allow_nan=False)) > MAX_VARIANT_JSON_BYTES:
        return f"{where} is larger than {MAX_VARIANT_JSON_BYTES // 1024} KiB as JSON"
    return None


class FlagModel(SpecModel):
    """The plan's ``flag`` section, under the rules of every plan section."""


class FlagVariantsSpec(FlagModel):
    on: Any = Field(True, description='Value of the "on" variant (the new behaviour).')
    off: Any = Field(False, description='Value of the "off" variant (the current behaviour).')

    @model_validator(mode="before")
    @classmethod
    def _keys_read_as_booleans(cls, value: Any) -> Any:
        if isinstance(value, dict) and any(isinstance(key, bool) for key in value):
            raise ValueError(
                "YAML 1.1 reads the keys on and off as true and false: quote them, "
                'e.g. {"on": true, "off": false}'
            )
        return value

    @field_validator("on", "off")
    @classmethod
    def _json_safe(cls, value: Any) -> Any:
        """A variant is written into a JSON document the service's flag reader parses: a value
        JSON cannot hold (``.nan``, ``.inf``, a YAML date, a non-string key) would make the
        document unreadable, and a reader that keeps its previous document keeps the flag on."""
        problem = json_problem(value)
        if problem is not None:
            raise ValueError(
                f"{problem}: a variant must be plain JSON (string, number, bool, "
                "null, list, mapping with string keys)"
            )
        return value

    def variants(self) -> Variants:
        return Variants(self.on, self.off)


class FlagStepSpec(FlagModel):
    """One exposure: ``{users: "0-999", duration}`` or ``{percent: 5, duration}``."""

    users: str | None = Field(
        None, description='Numeric user IDs first-last, inclusive, e.g. "0-999".'
    )
    percent: float | None = Field(
        None,
        gt=0,
        description="Share of users below 100, bucketed as flagd's fractional does; 100 % "
        "follows the last step by itself.",
    )
    duration: Duration = Field(gt=0, description="Analysis window, flag-on against flag-off.")

    @field_validator("users")
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _USERS.fullmatch(value)
        if match is None:
            raise ValueError(f"{value!r} is not a user range; write first-last, e.g. 0-999")
        first, last = int(match[1]), int(match[2])
        if first > last:
            raise ValueError(f"{value!r} starts after it ends; write the lower ID first")
        return f"{first}-{last}"

    @field_validator("percent")
    @classmethod
    def _partial(cls, value: float | None) -> float | None:
        if value is not None and value >= 100:
            raise ValueError(
                f"{value:g}% is everyone: drop this step, the rollout switches everyone on "
                "by itself once the last step's window passed"
            )
        return value

    @model_validator(mode="after")
    def _one_segment(self) -> FlagStepSpec:
        if (self.users is None) == (self.percent is None):
            raise ValueError("give exactly one of users or percent")
        return self

    def segment(self, user_id_prefix: str = "") -> Segment:
        if self.users is not None:
            first, last = (int(part) for part in self.users.split("-"))
            return UserRange(first, last, user_id_prefix)
        assert self.percent is not None
        return Percent(self.percent)


class FlagRolloutSpec(FlagModel):
    key: str = Field(pattern=_FLAG_KEY, description="The flag's key in the flagd document.")
    variants: FlagVariantsSpec = Field(default_factory=FlagVariantsSpec)
    user_id_prefix: str = Field(
        "",
        pattern=r"^[^0-9]*$",
        description='What precedes the number in user IDs ("user-" for user-17); empty for '
        f"numeric IDs. Prefixed ranges are listed in the rule: at most {MAX_LISTED_USERS} IDs.",
    )
    steps: list[FlagStepSpec] = Field(
        min_length=1, description="Exposure steps, each analysed; then everyone is switched on."
    )
    applied_metric: str | None = Field(
        "canaryflow_flag_document_info",
        pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$",
        description="Info metric labelled flag and digest (sha256 prefix of the document) that "
        "every instance exports for the document in force; each step waits for it before "
        "judging. null: the service reports nothing, wait applyTimeout after each write.",
    )
    apply_timeout: Duration = Field(
        90.0,
        gt=0,
        description="How long a written document may take to be served (kubelet refreshes a "
        "mounted ConfigMap within about a minute); past it the flag goes back to off.",
    )

    @field_validator("steps")
    @classmethod
    def _exposure_grows(cls, steps: list[FlagStepSpec]) -> list[FlagStepSpec]:
        for index in range(1, len(steps)):
            problem = _narrower(steps[index - 1].segment(), steps[index].segment())
            if problem:
                raise ExposureOrderError(index, problem)
        return steps

    @model_validator(mode="after")
    def _listable(self) -> FlagRolloutSpec:
        if not self.user_id_prefix:
            return self
        for index, step in enumerate(self.steps):
            segment = step.segment()
            if isinstance(segment, UserRange) and segment.last - segment.first >= MAX_LISTED_USERS:
                raise ExposureOrderError(
                    index,
                    f"users {step.users} lists more than {MAX_LISTED_USERS} prefixed IDs",
                    "use a percent step for wide exposure",
                    within=("steps",),
                )
        return self

    def segments(self) -> list[Segment]:
        return [step.segment(self.user_id_prefix) for step in self.steps]


def _narrower(before: Segment, after: Segment) -> str | None:
    """Why ``after`` does not widen ``before``; None when it does."""
    if isinstance(before, UserRange) and isinstance(after, UserRange):
        if after.first <= before.first and after.last >= before.last and after != before:
            return None
        return f"users {after.first}-{after.last} must contain and exceed the previous range"
    if isinstance(before, Percent) and isinstance(after, Percent):
        if after.value > before.value:
            return None
        return f"{after.value:g}% does not rise above the previous {before.value:g}%"
    if isinstance(before, Percent) and isinstance(after, UserRange):
        return "a user range cannot follow a percentage: it may expose fewer users"
    return None


class ExposureOrderError(ValueError):
    """Exposure must widen; ``subpath`` lets the error name ``flag.steps[i]``."""

    def __init__(
        self,
        index: int,
        problem: str,
        fix: str = "each step must expose more users than before",
        within: tuple[str, ...] = (),
    ):
        self.subpath = (*within, index)
        super().__init__(f"{problem}: {fix}")
