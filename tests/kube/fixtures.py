"""Pytest fixtures: a fake API server seeded with a stable ``shop/checkout`` and its routes.

Import the fixtures into a test module (``from kube.fixtures import api_server, cluster``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .fake_apiserver import FakeApiServer

NAMESPACE = "shop"
SERVICE = "checkout"
STABLE_IMAGE = "registry.local/checkout@sha256:" + "1" * 64
CANARY_IMAGE = "registry.local/checkout@sha256:" + "2" * 64

STABLE_DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": {"app": SERVICE}},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": SERVICE, "version": "v1"}},
        "template": {
            "metadata": {"labels": {"app": SERVICE, "version": "v1"}},
            "spec": {
                "containers": [
                    {
                        "name": SERVICE,
                        "image": STABLE_IMAGE,
                        "ports": [{"name": "http", "containerPort": 8080}],
                    }
                ]
            },
        },
    },
}
STABLE_SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": SERVICE, "namespace": NAMESPACE},
    "spec": {
        "selector": {"app": SERVICE, "version": "v1"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
    },
}
VIRTUAL_SERVICE: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": SERVICE, "namespace": NAMESPACE},
    "spec": {
        "hosts": [SERVICE],
        "http": [
            {
                "name": "admin",
                "match": [{"uri": {"prefix": "/admin"}}],
                "route": [{"destination": {"host": "admin"}}],
            },
            {
                "name": "canaryflow-primary",
                "route": [{"destination": {"host": SERVICE, "port": {"number": 80}}}],
            },
        ],
    },
}
INGRESS: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": SERVICE, "namespace": NAMESPACE},
    "spec": {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": "shop.example.com",
                "http": {
                    "paths": [
                        _path := {
                            "path": "/checkout",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": SERVICE, "port": {"number": 80}}},
                        },
                        {
                            "path": "/admin",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "admin", "port": {"number": 80}}},
                        },
                    ]
                },
            }
        ],
    },
}
OTHER_INGRESS: dict[str, Any] = {
    **copy.deepcopy(INGRESS),
    "metadata": {"name": "storefront", "namespace": NAMESPACE},
}
HTTP_ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": SERVICE, "namespace": NAMESPACE},
    "spec": {
        "parentRefs": [{"name": "public"}],
        "hostnames": ["shop.example.com"],
        "rules": [
            {
                "name": "admin",
                "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                "backendRefs": [{"name": "admin", "port": 80}],
            },
            {
                "name": "canaryflow-primary",
                "matches": [{"path": {"type": "PathPrefix", "value": "/checkout"}}],
                "backendRefs": [{"name": SERVICE, "port": 80}],
            },
        ],
    },
}
USER_OBJECTS = [
    STABLE_DEPLOYMENT,
    STABLE_SERVICE,
    VIRTUAL_SERVICE,
    INGRESS,
    OTHER_INGRESS,
    HTTP_ROUTE,
]


def write_kubeconfig(path: Path, server_url: str) -> Path:
    """A kubeconfig pointing the real client at ``server_url``, as a task pod's would."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server_url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
                "current-context": "fake",
            }
        )
    )
    return path


@pytest.fixture
def api_server() -> Iterator[FakeApiServer]:
    """An empty fake API server, stopped after the test."""
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def cluster(api_server: FakeApiServer) -> FakeApiServer:
    """The fake API server holding the user's stable checkout service and its routes."""
    for obj in USER_OBJECTS:
        api_server.seed(obj)
    return api_server
