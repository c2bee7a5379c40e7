"""The cluster in a box: canaryflow's cluster path, from a Git push to a promoted or rolled-back
service, with every part real that can run on one machine.

One module per stand-in, each naming the upstream behaviour it follows:

- ``eventsource`` -- Argo Events' EventSource admission (v1.9 ``validate.go`` of the reconciler,
  github, gitlab and webhook): an invalid EventSource serves no webhook.
- ``events`` -- Argo Events: the rendered Sensor's data filters and trigger parameters turn a
  GitHub or GitLab push payload into the Workflow the k8s trigger would create.
- ``argo`` -- Argo Workflows: ``controller`` (DAG, steps, recursion, suspend/resume, retries,
  deadlines, exit handler, ``argo stop``, mutex), ``templates`` (workflowTemplateRef,
  templateRef), ``variables``/``expr``/``govaluate``/``depends`` (substitution, ``{{=...}}``,
  ``when``, enhanced depends), ``pods`` (a container as a local process with the container's
  argv and env, volumes as directories, outputs read from files as the executor does; a missing
  Secret volume keeps it from starting), ``serviceaccounts`` (the executor's token Secret),
  ``failures`` (``workflow.failures`` as operator.go writes it).
- ``kubelet`` and ``images`` -- Kubernetes: pods of the fake API server's Deployments run the
  binary pulled by digest from the real registry; readiness from their probes.
- ``monitoring`` -- a real Prometheus scraping the pods through the PodMonitor relabeling.
- ``dataplane`` -- Istio, ingress-nginx and Gateway API routing decisions applied to the local
  two-tier nginx, through which a real keep-alive load runs.
- ``bed`` wires them together; ``observe`` reads outcomes; ``bench`` is the cluster-path figure.

``test_releases`` holds the scenarios (``make e2e``, marked slow, about 4 minutes on 2 cores).
"""
