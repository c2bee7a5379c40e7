"""Canary releases on Kubernetes: Deployments, Services and four traffic routers."""
