"""GitOps mode: promotion through the configuration repository Argo CD or Flux reconcile."""
