"""Service accounts of a workflow pod, and the executor's token Secret, as the controller sets them.

Upstream (argoproj/argo-workflows, identical in v3.5.15, v3.6.19, v3.7 and v4.1):

- ``workflow/controller/workflowpod.go`` ``setupServiceAccount``: the pod runs as the template's
  ``serviceAccountName``, else the workflow's; ``automountServiceAccountToken: false`` (template,
  else workflow) is copied to the pod. When ``executor.serviceAccountName`` is set (template,
  else workflow), the controller reads that ServiceAccount and adds the volume
  ``exec-sa-token`` from the Secret ``getServiceAccountTokenName`` names (a missing account fails
  the pod's creation: the node errors); the executor's containers mount it
  (``newExecContainer``, the same rule). Without an executor account,
  ``automountServiceAccountToken: false`` is refused: "executor.serviceAccountName must not be
  empty if automountServiceAccountToken is false".
- ``operator.go`` ``getServiceAccountTokenName`` and ``util/secrets/secret_name.go``
  ``TokenNameForServiceAccount``: the account's first ``secrets`` entry, else its annotation
  ``workflows.argoproj.io/service-account-token.name``, else ``<account>.service-account-token``
  (docs/service-account-secrets.md: on Kubernetes 1.24+ nobody creates it but you).
- Kubernetes' token controller (``pkg/controller/serviceaccount/tokens_controller.go``) fills a
  Secret of type ``kubernetes.io/service-account-token`` annotated
  ``kubernetes.io/service-account.name`` with ``token``, ``ca.crt`` and ``namespace`` once that
  account exists. The kubelet does not start a pod whose Secret volume is missing: it retries
  the mount (FailedMount) and the pod stays ContainerCreating (see ``argo.pods``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
TOKEN_VOLUME = "exec-sa-token"
TOKEN_NAME_ANNOTATION = "workflows.argoproj.io/service-account-token.name"
SERVICE_ACCOUNT_ANNOTATION = "kubernetes.io/service-account.name"
TOKEN_TYPE = "kubernetes.io/service-account-token"

ServiceAccounts = Callable[[str, str], Obj | None]


class PodCreationError(ValueError):
    """The controller could not create the pod: the node errors with this message."""


def token_name_for(account: Obj) -> str:
    """``TokenNameForServiceAccount``."""
    if account.get("secrets"):
        return account["secrets"][0]["name"]
    annotations = account.get("metadata", {}).get("annotations") or {}
    if TOKEN_NAME_ANNOTATION in annotations:
        return annotations[TOKEN_NAME_ANNOTATION]
    return f"{account['metadata']['name']}.service-account-token"


def executor_volumes(
    template: Obj, spec: Obj, namespace: str, service_accounts: ServiceAccounts
) -> list[Obj]:
    """The volumes ``setupServiceAccount`` adds to the pod (the executor's token), or
    ``PodCreationError`` as upstream."""
    automount = template.get("automountServiceAccountToken")
    if automount is None:
        automount = spec.get("automountServiceAccountToken")
    executor = (template.get("executor") or {}).get("serviceAccountName") or (
        spec.get("executor") or {}
    ).get("serviceAccountName")
    if not executor:
        if automount is False:
            raise PodCreationError(
                "executor.serviceAccountName must not be empty if automountServiceAccountToken "
                "is false"
            )
        return []
    account = service_accounts(namespace, executor)
    if account is None:
        raise PodCreationError(f'serviceaccounts "{executor}" not found')
    return [{"name": TOKEN_VOLUME, "secret": {"secretName": token_name_for(account)}}]


def every_account_exists(namespace: str, name: str) -> Obj:
    """For workflows run without a cluster: an account with no Secret and no annotation."""
    return {"metadata": {"name": name, "namespace": namespace}}


def token_controller(secret: Obj, service_accounts: ServiceAccounts, namespace: str) -> Obj:
    """A Secret's data once the token controller has seen it (others unchanged)."""
    data = dict(secret.get("data") or {})
    annotations = secret.get("metadata", {}).get("annotations") or {}
    account = annotations.get(SERVICE_ACCOUNT_ANNOTATION)
    if secret.get("type") == TOKEN_TYPE and account and service_accounts(namespace, account):
        data.update(
            {"token": f"token-of-{namespace}-{account}", "ca.crt": "ca", "namespace": namespace}
        )
    return data
