"""The one base of every typed model read from a plan: its rules hold in every section.

camelCase keys in YAML (Argo Rollouts' and Flagger's spelling), unknown keys rejected (a
misspelt key is a mistake, not a default), immutable once loaded, and no NaN or infinity: a NaN
limit passes every comparison, so it is refused where it is read.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        frozen=True,
        allow_inf_nan=False,
    )
