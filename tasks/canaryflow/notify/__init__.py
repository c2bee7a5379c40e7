"""Telling people how a release went: chat webhooks and commit statuses."""
