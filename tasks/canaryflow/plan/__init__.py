"""The release plan: one YAML file per service that drives every release of it."""
