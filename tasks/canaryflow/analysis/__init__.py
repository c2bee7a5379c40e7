"""Canary analysis: gates measured against Prometheus and logs, judged into a verdict."""
