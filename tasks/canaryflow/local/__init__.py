"""The embedded platform: real processes on 127.0.0.1 (Go binaries, nginx, Prometheus)."""
