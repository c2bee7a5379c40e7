"""Feature flags: expose a change to a growing user segment, judged by the release's gates."""
