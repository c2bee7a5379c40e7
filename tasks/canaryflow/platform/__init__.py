"""Where a release runs: the local machine or a Kubernetes cluster, behind one protocol."""
