"""The flag document in a ConfigMap: what flagd (or the service) mounts in Kubernetes."""

from __future__ import annotations

from kubernetes.client import ApiClient

from canaryflow.errors import PlatformError
from canaryflow.flags.document import (
    MAX_CONFIG_MAP_BYTES,
    config_map_data_size,
    document_digest,
    encode_document,
)
from canaryflow.flags.store import PREVIOUS, Edit, parse_document
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.resources import CONFIG_MAP


class ConfigMapFlagStore:
    """The flagd JSON under one key of the user's ConfigMap (the one their pods mount).

    The ConfigMap is shared with the user, so it is read, edited and replaced under its
    resourceVersion (a concurrent edit is re-read, not overwritten), and must already exist:
    canaryflow does not decide where a team's flags live.
    """

    def __init__(self, api_client: ApiClient, namespace: str, name: str, key: str = "flags.json"):
        self.api = ClusterApi(api_client, namespace)
        self.namespace = namespace
        self.name = name
        self.key = key

    def read(self) -> dict | None:
        return self._document(self.key)

    def previous(self) -> dict | None:
        return self._document(self.key + PREVIOUS)

    def update(self, edit: Edit) -> str:
        written: list[str] = []

        def edit_config_map(config_map: dict) -> dict:
            data = config_map.get("data") or {}
            current = data.get(self.key)
            document = None if current is None else parse_document(current, self.describe())
            text = encode_document(edit(document))
            written[:] = [text]
            if text != current:
                if current is not None:
                    data[self.key + PREVIOUS] = current
                data[self.key] = text
                config_map["data"] = data
                size = config_map_data_size(config_map)
                if size > MAX_CONFIG_MAP_BYTES:
                    raise PlatformError(
                        f"{self.describe()}: with this document the ConfigMap's data would be "
                        f"{size} bytes, more than the {MAX_CONFIG_MAP_BYTES} (1 MiB) the API "
                        "server accepts; nothing was written: move other flags or data out of "
                        "this ConfigMap"
                    )
            return config_map

        if self.api.get(CONFIG_MAP, self.name) is None:
            raise self._missing()
        self.api.update(CONFIG_MAP, self.name, edit_config_map)
        return document_digest(written[-1])

    def describe(self) -> str:
        return f"configmap {self.namespace}/{self.name} key {self.key}"

    def _document(self, key: str) -> dict | None:
        config_map = self.api.get(CONFIG_MAP, self.name)
        if config_map is None:
            raise self._missing()
        text = (config_map.get("data") or {}).get(key)
        return None if text is None else parse_document(text, f"{self.describe()} ({key})")

    def _missing(self) -> PlatformError:
        return PlatformError(
            f"configmap {self.namespace}/{self.name} does not exist: create the ConfigMap your "
            f"flagd or service mounts, with the flag document (flag off) under {self.key!r}"
        )
