"""Benchmarks: figures measured on this machine with real processes, for BENCHMARKS.md.

``canaryflow bench`` runs them all: ``scenarios`` (bad, healthy and flag releases on a local
stack, split accuracy, CLI start-up), ``reload`` (failed requests across router reloads),
``analysis_round`` (how long one round of gates takes), ``judgement`` (the default gates against
every fault class); ``markdown`` writes BENCHMARKS.md. Percentiles come from
``canaryflow.report.figures``, shared with the release report.
"""
