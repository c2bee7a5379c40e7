"""The plan's JSON Schema, for editors (yaml-language-server) and CI linters."""

from __future__ import annotations

from typing import Any

from canaryflow.plan.model import API_VERSION, ReleasePlan

SCHEMA_ID = "https://canaryflow.dev/schemas/release-plan-v1alpha1.json"


def plan_json_schema() -> dict[str, Any]:
    schema = ReleasePlan.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": f"canaryflow ReleasePlan ({API_VERSION})",
    }
