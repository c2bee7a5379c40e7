"""The task pod's termination grace: one number the compiled templates give the pod and the verb.

Light on purpose (no Kubernetes client): the workflow compilers (``canaryflow_workflows``) read
it to write the pods' ``terminationGracePeriodSeconds`` and the matching
``CANARYFLOW_TERMINATION_GRACE_S``, and ``kubernetes.platform`` to bound what an interrupted
promotion or rollback does after a SIGTERM.
"""

from __future__ import annotations

TERMINATION_GRACE_S = 30.0
"""A pod's ``terminationGracePeriodSeconds`` unless its spec sets one (``k8s.io/api``
core/v1 ``DefaultTerminationGracePeriodSeconds``): between the SIGTERM (``argo stop``, the
pod's deletion) and the SIGKILL. Argo's executor follows the same rule for the main
container (argo-workflows ``docs/sidecar-injection.md``, "How We Kill Sidecars")."""
EXIT_MARGIN_S = 5.0
"""Of that grace, what an interrupted promotion keeps for after its restore: the error, the
record's last lines and the process's exit, before the SIGKILL."""
TERMINATION_GRACE_ENV = "CANARYFLOW_TERMINATION_GRACE_S"
"""The task pod's ``terminationGracePeriodSeconds``, told to the verb (the pod's own spec is
not readable from inside it without extra rights). The compiled templates set both from one
setting (``WorkflowSettings.termination_grace_seconds``, the chart's
``workflows.terminationGracePeriodSeconds``); unset, the default above."""
