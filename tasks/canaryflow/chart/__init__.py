"""The Helm chart ``charts/canaryflow``: its generated parts and its packaging."""
