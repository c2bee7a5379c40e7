"""Benchmarks: figures measured on this machine with real processes, for BENCHMARKS.md."""
