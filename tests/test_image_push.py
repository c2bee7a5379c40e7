"""``canaryflow image-push``: a static Go binary as an OCI image in a real registry, by digest."""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import pytest

from canaryflow.errors import EXIT_INPUT, InputError, PlatformError, PlatformUnreachable
from canaryflow.image import PushRequest, push_image
from canaryflow.image.auth import DockerConfig
from canaryflow.image.oci import (
    CONFIG,
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    INDEX,
    LAYER_GZIP,
    MANIFEST,
    ImageSpec,
    Platform,
    build_image,
)
from canaryflow.local.process import free_port

# The real-registry fixtures: ``registry``, ``auth_registry`` (Basic), ``token_registry`` (Bearer).
pytest_plugins = ["registry"]

GO = Path(__file__).resolve().parents[1] / ".venv/bin/go"
CANARYFLOW = GO.parent / "canaryflow"
HELLO_GO = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello, canary") }\n'


@pytest.fixture(scope="module")
def go_binary(tmp_path_factory) -> Path:
    """A tiny static Go program, built once for the module."""
    source = tmp_path_factory.mktemp("hello")
    (source / "go.mod").write_text("module example.com/hello\n\ngo 1.22\n")
    (source / "main.go").write_text(HELLO_GO)
    env = {**os.environ, "GOPROXY": "off", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    subprocess.run(
        [str(GO), "build", "-trimpath", "-ldflags=-s -w", "-o", "hello", "."],
        cwd=source,
        env=env,
        check=True,
        timeout=120,
    )
    return source / "hello"


def pull_manifest(running, repository: str, version: str) -> tuple[dict, str]:
    accept = f"{MANIFEST}, {INDEX}"
    status, _, body = running.fetch(f"/v2/{repository}/manifests/{version}", accept=accept)
    assert status == 200, body
    return json.loads(body), "sha256:" + hashlib.sha256(body).hexdigest()


def pull_blob(running, repository: str, digest: str) -> bytes:
    status, _, body = running.fetch(f"/v2/{repository}/blobs/{digest}")
    assert status == 200, body
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    return body


def layer_members(blob: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        return {
            m.name: (m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()
        }


def cli(argv: list[str]) -> int:
    """``canaryflow image-push ...`` through the real CLI once registered there."""
    from canaryflow import cli as canaryflow_cli

    if "image-push" in canaryflow_cli.VERBS:
        return canaryflow_cli.main(["image-push", *argv])
    from canaryflow.commands import image_push

    parser = argparse.ArgumentParser(prog="canaryflow image-push")
    image_push.configure(parser)
    try:
        return image_push.run(parser.parse_args(argv))
    except InputError as error:
        for line in error.errors:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_INPUT


# --- the image in the registry ---


def test_the_pushed_layer_holds_the_binary_at_app_name_executable_and_root_owned(
    registry, go_binary
):
    pushed = push_image(PushRequest(go_binary, f"{registry.host}/shop/hello", "c0ffee1"))

    assert pushed.reference == f"{registry.host}/shop/hello@{pushed.digest}"
    manifest, served_digest = pull_manifest(registry, "shop/hello", pushed.digest)
    assert served_digest == pushed.digest
    assert manifest["mediaType"] == MANIFEST
    assert manifest["config"]["mediaType"] == CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [LAYER_GZIP, LAYER_GZIP]
    blob = pull_blob(registry, "shop/hello", manifest["layers"][-1]["digest"])
    members = layer_members(blob)
    info, content = members["app/hello"]
    assert content == go_binary.read_bytes()
    assert (info.mode, info.uid, info.gid, info.uname, info.gname) == (0o755, 0, 0, "", "")
    assert all(m.mtime == 0 for m, _ in members.values())
    assert list(members) == sorted(members)
    assert b"nonroot:x:65532:65532:" in members["etc/passwd"][1]
    assert b"nonroot:x:65532:" in members["etc/group"][1]


def test_the_config_runs_non_root_with_entrypoint_labels_and_no_timestamps(registry, go_binary):
    pushed = push_image(
        PushRequest(
            go_binary,
            f"{registry.host}/shop/hello",
            "c0ffee2",
            name="checkout",
            platform="linux/arm64",
            source="https://example.com/shop",
            labels={"team": "payments"},
        )
    )

    manifest, _ = pull_manifest(registry, "shop/hello", "c0ffee2")
    config = json.loads(pull_blob(registry, "shop/hello", manifest["config"]["digest"]))
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["/app/checkout"]
    assert any(e.startswith("PATH=") for e in config["config"]["Env"])
    assert config["config"]["Labels"] == {
        "org.opencontainers.image.revision": "c0ffee2",
        "org.opencontainers.image.version": "c0ffee2",
        "org.opencontainers.image.source": "https://example.com/shop",
        "team": "payments",
    }
    assert (config["os"], config["architecture"]) == ("linux", "arm64")
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert [h["created"] for h in config["history"]] == ["1970-01-01T00:00:00Z"] * 2
    blobs = [pull_blob(registry, "shop/hello", layer["digest"]) for layer in manifest["layers"]]
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest() for blob in blobs]
    assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
    layer = blobs[-1]
    assert "app/checkout" in layer_members(layer)
    assert pushed.manifest_size == len(json.dumps(manifest, separators=(",", ":")))


def test_pushing_the_same_binary_twice_gives_the_same_digest_and_uploads_nothing(
    registry, go_binary
):
    request = PushRequest(go_binary, f"{registry.host}/shop/twice", "c0ffee3")

    first = push_image(request)
    second = push_image(request)

    assert second.digest == first.digest
    assert set(first.blobs.values()) == {"uploaded"}
    assert set(second.blobs.values()) == {"present"}


def test_the_build_is_byte_for_byte_reproducible_and_follows_the_binary(go_binary):
    spec = ImageSpec("hello", go_binary.read_bytes(), Platform(), {"k": "v"})

    first, second = build_image(spec), build_image(spec)
    changed = build_image(ImageSpec("hello", go_binary.read_bytes() + b"\0", Platform(), {}))

    assert (first.manifest, first.config) == (second.manifest, second.config)
    assert first.layers[0].data == second.layers[0].data
    assert changed.digest != first.digest
    assert first.layers[0].data[4:8] == b"\0\0\0\0"  # gzip header: mtime 0
    assert first.layers[0].data[3] & 0x08 == 0  # gzip header: no file name


def test_an_image_on_a_base_reuses_its_layers_by_mount_and_lists_them_first(
    registry, go_binary, tmp_path
):
    certs = tmp_path / "ca-bundle"
    certs.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot really\n")
    base = push_image(PushRequest(certs, f"{registry.host}/base/static", "1", system_files=False))
    base_manifest, _ = pull_manifest(registry, "base/static", base.digest)
    base_config = json.loads(pull_blob(registry, "base/static", base_manifest["config"]["digest"]))

    pushed = push_image(
        PushRequest(
            go_binary,
            f"{registry.host}/shop/onbase",
            "c0ffee4",
            base=f"{registry.host}/base/static:1",
        )
    )

    manifest, _ = pull_manifest(registry, "shop/onbase", pushed.digest)
    base_layer = base_manifest["layers"][0]["digest"]
    assert len(manifest["layers"]) == 2
    assert manifest["layers"][0]["digest"] == base_layer
    assert pushed.blobs[base_layer] == "mounted"
    config = json.loads(pull_blob(registry, "shop/onbase", manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"][0] == base_config["rootfs"]["diff_ids"][0]
    assert len(config["rootfs"]["diff_ids"]) == len(config["history"]) == 2
    assert config["config"]["User"] == "65532:65532"
    app_layer = layer_members(pull_blob(registry, "shop/onbase", manifest["layers"][1]["digest"]))
    assert sorted(app_layer) == ["app", "app/hello"]  # the base provides /etc/passwd


def test_a_base_pinned_by_digest_is_found_too(registry, go_binary, tmp_path):
    data = tmp_path / "data"
    data.write_bytes(b"base by digest")
    base = push_image(PushRequest(data, f"{registry.host}/base/pinned", "1", system_files=False))

    pushed = push_image(
        PushRequest(go_binary, f"{registry.host}/shop/pinned", "c0ffee5", base=base.reference)
    )

    manifest, _ = pull_manifest(registry, "shop/pinned", pushed.digest)
    assert len(manifest["layers"]) == 2


def put_manifest(running, repository: str, tag: str, media_type: str, document: dict) -> str:
    """PUT a manifest with plain urllib, as another tool would have pushed it."""
    body = json.dumps(document).encode()
    request = urllib.request.Request(
        f"{running.url}/v2/{repository}/manifests/{tag}",
        data=body,
        method="PUT",
        headers={"Content-Type": media_type},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
    return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.fixture
def amd64_base(registry, tmp_path) -> tuple[dict, str]:
    """An OCI linux/amd64 base at ``base/amd64:1``: its manifest and digest."""
    data = tmp_path / "ca-bundle"
    data.write_bytes(b"certificates")
    pushed = push_image(PushRequest(data, f"{registry.host}/base/amd64", "1", system_files=False))
    return pull_manifest(registry, "base/amd64", pushed.digest)[0], pushed.digest


def test_a_docker_format_base_is_reused_with_oci_media_types(registry, go_binary, amd64_base):
    oci_manifest, _ = amd64_base
    docker_manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {**oci_manifest["config"], "mediaType": DOCKER_CONFIG},
        "layers": [{**layer, "mediaType": DOCKER_LAYER_GZIP} for layer in oci_manifest["layers"]],
    }
    put_manifest(registry, "base/amd64", "docker", DOCKER_MANIFEST, docker_manifest)

    pushed = push_image(
        PushRequest(go_binary, f"{registry.host}/shop/ondocker", "c0ffeec",
                    base=f"{registry.host}/base/amd64:docker")
    )  # fmt: skip

    manifest, _ = pull_manifest(registry, "shop/ondocker", pushed.digest)
    assert manifest["layers"][0]["digest"] == oci_manifest["layers"][0]["digest"]
    assert {layer["mediaType"] for layer in manifest["layers"]} == {LAYER_GZIP}


def test_a_multi_platform_base_gives_the_image_for_the_requested_platform(
    registry, go_binary, amd64_base
):
    _, amd64_digest = amd64_base
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [
            {"mediaType": MANIFEST, "digest": amd64_digest, "size": 1,
             "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }  # fmt: skip
    _, served = registry.fetch(f"/v2/base/amd64/manifests/{amd64_digest}", MANIFEST)[:2]
    index["manifests"][0]["size"] = int(served["Content-Length"])
    put_manifest(registry, "base/amd64", "multi", INDEX, index)

    pushed = push_image(
        PushRequest(go_binary, f"{registry.host}/shop/onindex", "c0ffeed",
                    base=f"{registry.host}/base/amd64:multi")
    )  # fmt: skip
    with pytest.raises(InputError, match=r"base: base image .*:multi has no linux/arm64 image"):
        push_image(
            PushRequest(go_binary, f"{registry.host}/shop/onindex", "c0ffeee",
                        base=f"{registry.host}/base/amd64:multi", platform="linux/arm64")
        )  # fmt: skip

    manifest, _ = pull_manifest(registry, "shop/onindex", pushed.digest)
    assert len(manifest["layers"]) == 2


def test_a_base_for_another_platform_is_an_input_error(registry, go_binary, amd64_base):
    with pytest.raises(InputError) as raised:
        push_image(
            PushRequest(go_binary, f"{registry.host}/shop/arm", "c0ffeef",
                        base=f"{registry.host}/base/amd64:1", platform="linux/arm64")
        )  # fmt: skip

    assert str(raised.value) == (
        f"base: base image {registry.host}/base/amd64:1 is for linux/amd64, not linux/arm64"
    )


# --- mistakes and failures ---


def test_an_unknown_base_image_is_an_input_error_saying_push_it_first(registry, go_binary):
    base = f"{registry.host}/base/missing:1"

    with pytest.raises(InputError) as raised:
        push_image(PushRequest(go_binary, f"{registry.host}/shop/hello", "c0ffee6", base=base))

    assert str(raised.value) == (
        f"base: base image {base} not found in registry: push it first or use scratch"
    )
    status, _, _ = registry.fetch("/v2/shop/hello/manifests/c0ffee6")
    assert status == 404


def test_the_right_credentials_from_a_docker_config_push(auth_registry, go_binary, tmp_path):
    config = auth_registry.docker_config(tmp_path)

    pushed = push_image(
        PushRequest(go_binary, f"{auth_registry.host}/shop/hello", "c0ffee7", docker_config=config)
    )

    _, digest = pull_manifest(auth_registry, "shop/hello", "c0ffee7")
    assert digest == pushed.digest


# A stand-in credential helper, speaking docker-credential-helpers' protocol
# (credentials/credentials.go, ``Get``): the server URL on stdin; {"ServerURL", "Username",
# "Secret"} on stdout, or "credentials not found in native keychain" with exit 1.
CREDENTIAL_HELPER = """#!{python}
import json, pathlib, sys
assert sys.argv[1:] == ["get"], sys.argv
server = sys.stdin.read()
pathlib.Path({log!r}).open("a").write(server + "\\n")
known = {known!r}
if server not in known:
    print("credentials not found in native keychain")
    sys.exit(1)
print(json.dumps({{"ServerURL": server, "Username": known[server][0], "Secret": known[server][1]}}))
"""


@pytest.fixture
def credential_helper(tmp_path, monkeypatch):
    """Install ``docker-credential-NAME`` on PATH knowing ``known``; returns the servers asked."""
    bin_dir = tmp_path / "helpers"
    bin_dir.mkdir()
    log = tmp_path / "asked.log"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def install(name: str, known: dict[str, tuple[str, str]]) -> Path:
        program = bin_dir / f"docker-credential-{name}"
        program.write_text(
            CREDENTIAL_HELPER.format(python=sys.executable, log=str(log), known=known)
        )
        program.chmod(0o755)
        return log

    return install


@pytest.mark.parametrize("kind", ["credHelpers", "credsStore"])
def test_a_credential_helper_supplies_the_login_instead_of_auths(
    auth_registry, go_binary, tmp_path, credential_helper, kind
):
    asked = credential_helper("stand-in", {auth_registry.host: ("ci", "correct-horse")})
    config = tmp_path / "config.json"
    named = {auth_registry.host: "stand-in"} if kind == "credHelpers" else None
    document = {"credHelpers": named} if named else {"credsStore": "stand-in"}
    # auths holds a wrong password: the helper wins, as in the docker CLI
    wrong = base64.b64encode(b"ci:wrong").decode()
    config.write_text(json.dumps({**document, "auths": {auth_registry.host: {"auth": wrong}}}))

    pushed = push_image(
        PushRequest(go_binary, f"{auth_registry.host}/shop/hello", "helper1", docker_config=config)
    )

    assert pull_manifest(auth_registry, "shop/hello", "helper1")[1] == pushed.digest
    assert asked.read_text().split() == [auth_registry.host]


def test_a_helper_without_credentials_for_the_host_means_anonymous(
    auth_registry, go_binary, tmp_path, credential_helper
):
    credential_helper("stand-in", {"other.example.com": ("x", "y")})
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credsStore": "stand-in"}))

    with pytest.raises(PlatformError, match=r"needs credentials|HTTP 401"):
        push_image(
            PushRequest(go_binary, f"{auth_registry.host}/shop/hello", "h2", docker_config=config)
        )


def test_a_helper_that_is_not_installed_is_an_input_error_naming_it(tmp_path, go_binary):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credHelpers": {"127.0.0.1:1": "not-installed"}}))

    with pytest.raises(InputError, match=r"docker-credential-not-installed .* is not on PATH"):
        push_image(PushRequest(go_binary, "127.0.0.1:1/shop/hello", "h3", docker_config=config))


@pytest.mark.parametrize("name", ["../../bin/sh", "-x", "a b", ""])
def test_a_helper_name_that_is_not_a_name_is_refused_before_anything_runs(tmp_path, name):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credHelpers": {"ghcr.io": name}}))

    with pytest.raises(InputError, match=r"docker-config\.credHelpers\.ghcr\.io: .*helper name"):
        DockerConfig.load(config)


def test_a_wrong_password_is_a_clear_auth_error(auth_registry, go_binary, tmp_path):
    config = auth_registry.docker_config(tmp_path, user="ci", password="wrong")

    with pytest.raises(PlatformError) as raised:
        push_image(
            PushRequest(
                go_binary, f"{auth_registry.host}/shop/hello", "c0ffee8", docker_config=config
            )
        )

    assert str(raised.value) == (
        f"registry {auth_registry.host} rejected the credentials for user ci (HTTP 401): "
        "check the docker config secret"
    )


def test_missing_credentials_say_which_host_needs_them(auth_registry, go_binary, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"other.example.com": {"auth": "eDp5"}}}))

    with pytest.raises(PlatformError, match=r"requires credentials .* mount the docker config"):
        push_image(
            PushRequest(
                go_binary, f"{auth_registry.host}/shop/hello", "c0ffee9", docker_config=config
            )
        )


def test_the_bearer_token_flow_pushes_and_mounts_with_one_token_for_both_repositories(
    token_registry, go_binary, tmp_path
):
    config = token_registry.docker_config(tmp_path)
    base = push_image(
        PushRequest(go_binary, f"{token_registry.host}/base/static", "1", docker_config=config)
    )

    pushed = push_image(
        PushRequest(
            go_binary,
            f"{token_registry.host}/shop/hello",
            "c0ffeea",
            base=f"{token_registry.host}/base/static:1",
            name="svc",
            docker_config=config,
        )
    )

    manifest, digest = pull_manifest(token_registry, "shop/hello", "c0ffeea")
    assert digest == pushed.digest
    assert pushed.blobs[manifest["layers"][0]["digest"]] == "mounted"
    assert base.digest != pushed.digest


def test_a_wrong_password_at_the_token_server_is_the_same_clear_auth_error(
    token_registry, go_binary, tmp_path
):
    config = token_registry.docker_config(tmp_path, user="ci", password="wrong")

    with pytest.raises(PlatformError) as raised:
        push_image(
            PushRequest(
                go_binary, f"{token_registry.host}/shop/hello", "c0ffeeb", docker_config=config
            )
        )

    assert str(raised.value) == (
        f"registry {token_registry.host} rejected the credentials for user ci (HTTP 401): "
        "check the docker config secret"
    )


def test_a_registry_that_is_down_is_a_clear_network_error(go_binary):
    host = f"127.0.0.1:{free_port()}"

    with pytest.raises(PlatformUnreachable) as raised:  # a PlatformError too
        push_image(PushRequest(go_binary, f"{host}/shop/hello", "c0ffee", timeout_s=2))

    assert isinstance(raised.value, PlatformError)
    assert str(raised.value) == (
        f"repository: registry {host} did not answer over http (connection refused): check "
        "the host and port, that the registry runs and this pod may reach it, then run again"
    )


# --- the command line ---


def test_the_cli_prints_the_pinned_reference_and_writes_it_for_the_next_step(
    registry, go_binary, tmp_path, capsys
):
    digest_file = tmp_path / "out/image-ref"

    code = cli(
        [
            "--binary", str(go_binary),
            "--repository", f"{registry.host}/shop/cli",
            "--tag", "0123abcd",
            "--digest-file", str(digest_file),
            "--label", "team=payments",
        ]
    )  # fmt: skip

    assert code == 0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    _, digest = pull_manifest(registry, "shop/cli", "0123abcd")
    assert last_line == f"{registry.host}/shop/cli@{digest}"
    assert digest_file.read_text().strip() == last_line


def test_in_a_task_pod_the_credentials_come_from_the_mounted_secret_via_docker_config(
    auth_registry, go_binary, tmp_path
):
    secret_dir = auth_registry.docker_config(tmp_path / "secret").parent
    env = {**os.environ, "DOCKER_CONFIG": str(secret_dir), "HOME": str(tmp_path)}
    argv = [str(CANARYFLOW), "image-push", "--binary", str(go_binary),
            "--repository", f"{auth_registry.host}/shop/pod", "--tag", "c0ffee10"]  # fmt: skip

    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    _, digest = pull_manifest(auth_registry, "shop/pod", "c0ffee10")
    assert done.stdout.splitlines()[-1] == f"{auth_registry.host}/shop/pod@{digest}"


def test_a_missing_optional_docker_config_pushes_anonymously_as_the_workflow_pod_does(
    registry, go_binary, tmp_path
):
    """The workflow mounts the registry Secret with ``optional: true``: no Secret, no file."""
    absent = tmp_path / "registry-auth/.dockerconfigjson"
    argv = [str(CANARYFLOW), "image-push", "--binary", str(go_binary),
            "--repository", f"{registry.host}/shop/anon", "--tag", "c0ffee11",
            "--docker-config", str(absent), "--docker-config-optional"]  # fmt: skip

    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    _, digest = pull_manifest(registry, "shop/anon", "c0ffee11")
    assert done.stdout.splitlines()[-1] == f"{registry.host}/shop/anon@{digest}"


def test_a_missing_optional_docker_config_still_names_the_host_a_login_registry_needs(
    auth_registry, go_binary, tmp_path
):
    request = PushRequest(
        go_binary,
        f"{auth_registry.host}/shop/hello",
        "c0ffee12",
        docker_config=tmp_path / "absent.json",
        docker_config_optional=True,
    )
    with pytest.raises(PlatformError, match=r"requires credentials .* mount the docker config"):
        push_image(request)


def test_a_bad_tag_exits_2_naming_the_tag_and_pushes_nothing(registry, go_binary, capsys):
    code = cli(
        [
            "--binary",
            str(go_binary),
            "--repository",
            f"{registry.host}/shop/badtag",
            "--tag",
            "v1/beta",
        ]
    )

    assert code == EXIT_INPUT
    assert "error: tag: 'v1/beta' is not a valid tag" in capsys.readouterr().err
    status, _, _ = registry.fetch("/v2/shop/badtag/tags/list")
    assert status == 404


def test_every_input_mistake_is_reported_at_once(tmp_path, capsys):
    code = cli(
        [
            "--binary", str(tmp_path / "missing"),
            "--repository", "checkout",
            "--tag", "a" * 129,
            "--base", "127.0.0.1:5000/Base:1",
            "--platform", "amd64",
        ]
    )  # fmt: skip

    assert code == EXIT_INPUT
    fields = [line.split(":")[1].strip() for line in capsys.readouterr().err.splitlines()]
    assert fields == [
        "repository",
        "tag",
        "base",
        "platform",
        "binary",
    ]


def test_a_registry_that_never_answers_exits_3_with_the_reason(go_binary, capsys):
    host = f"127.0.0.1:{free_port()}"

    code = cli(["--binary", str(go_binary), "--repository", f"{host}/a/b", "--tag", "t"])

    assert code == 3
    assert "connection refused" in capsys.readouterr().err


# --- docker config: the dockerconfigjson secret's format ---


def test_docker_config_reads_auth_and_username_password_entries(tmp_path):
    path = tmp_path / "config.json"
    auth = base64.b64encode(b"robot:pa:ss").decode()
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://ghcr.io": {"auth": auth},
                    "127.0.0.1:5000": {"username": "ci", "password": "pw"},
                    "https://index.docker.io/v1/": {"auth": auth},
                }
            }
        )
    )

    config = DockerConfig.load(path)

    ghcr = config.credentials_for("ghcr.io")
    assert (ghcr.username, ghcr.password) == ("robot", "pa:ss")
    assert config.credentials_for("127.0.0.1:5000").username == "ci"
    assert config.credentials_for("docker.io").username == "robot"
    assert config.credentials_for("quay.io") is None


def test_a_docker_config_with_a_broken_auth_names_the_entry(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"ghcr.io": {"auth": "not base64!"}}}))

    with pytest.raises(InputError, match=r"docker-config\.auths\.ghcr\.io: .*base64 of user:pass"):
        DockerConfig.load(path)


def test_an_explicit_docker_config_that_does_not_exist_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist: mount the docker config secret"):
        DockerConfig.load(tmp_path / "nope.json")


def test_an_optional_docker_config_that_does_not_exist_means_anonymous(tmp_path):
    config = DockerConfig.load(tmp_path / "nope.json", optional=True)

    assert config.auths == {}


# --- what a scratch image carries for a Go service: CA certificates and time zones ---

ZONES_AND_TLS_GO = """package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"time"
)

func main() {
	zone, err := time.LoadLocation("America/New_York")
	if err != nil {
		fmt.Println("zone:", err)
		os.Exit(1)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		fmt.Println("roots:", err)
		os.Exit(1)
	}
	fmt.Println(zone, len(pool.Subjects()) > 100) //nolint:staticcheck
}
"""


def test_a_scratch_image_carries_a_ca_bundle_and_time_zones_in_a_shared_layer(
    registry, go_binary, tmp_path
):
    first = push_image(PushRequest(go_binary, f"{registry.host}/shop/zones", "a"))
    other = tmp_path / "other"
    other.write_bytes(b"another service")
    second = push_image(PushRequest(other, f"{registry.host}/shop/other", "b"))

    [system, _] = pull_manifest(registry, "shop/zones", first.digest)[0]["layers"]
    [shared, _] = pull_manifest(registry, "shop/other", second.digest)[0]["layers"]
    assert system["digest"] == shared["digest"]  # one bundle, one blob for every service
    members = layer_members(pull_blob(registry, "shop/zones", system["digest"]))
    assert b"BEGIN CERTIFICATE" in members["etc/ssl/certs/ca-certificates.crt"][1]
    assert members["usr/share/zoneinfo.zip"][1][:2] == b"PK"
    manifest = pull_manifest(registry, "shop/zones", first.digest)[0]
    config = json.loads(pull_blob(registry, "shop/zones", manifest["config"]["digest"]))
    assert "ZONEINFO=/usr/share/zoneinfo.zip" in config["config"]["Env"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot into the image's filesystem needs root")
def test_a_go_service_in_the_scratch_image_loads_time_zones_and_the_system_roots(
    registry, tmp_path
):
    source = tmp_path / "src"
    source.mkdir()
    (source / "go.mod").write_text("module zones\n\ngo 1.21\n")
    (source / "main.go").write_text(ZONES_AND_TLS_GO)
    binary = tmp_path / "zones"
    env = {**os.environ, "CGO_ENABLED": "0", "GOPROXY": "off", "GOFLAGS": "-mod=mod"}
    subprocess.run([GO, "build", "-o", binary, "."], cwd=source, env=env, check=True)
    pushed = push_image(PushRequest(binary, f"{registry.host}/shop/zonecheck", "z"))

    root = tmp_path / "rootfs"
    manifest, _ = pull_manifest(registry, "shop/zonecheck", pushed.digest)
    for layer in manifest["layers"]:
        blob = pull_blob(registry, "shop/zonecheck", layer["digest"])
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            tar.extractall(root, filter="data")
    config = json.loads(pull_blob(registry, "shop/zonecheck", manifest["config"]["digest"]))
    image_env = dict(entry.split("=", 1) for entry in config["config"]["Env"])

    # only the image's own files: no host /usr/share/zoneinfo, no host certificates
    result = subprocess.run(
        ["chroot", root, *config["config"]["Entrypoint"]],
        env=image_env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["America/New_York", "true"]


def test_a_bare_scratch_image_has_only_the_binary(registry, go_binary):
    pushed = push_image(
        PushRequest(go_binary, f"{registry.host}/shop/bare", "c", system_files=False)
    )

    manifest, _ = pull_manifest(registry, "shop/bare", pushed.digest)
    assert len(manifest["layers"]) == 1


# --- one digest for every node: an OCI index of one image per platform ---


def test_two_platforms_push_one_index_naming_an_image_for_each(registry, go_binary, tmp_path):
    arm64 = tmp_path / "hello-arm64"
    arm64.write_bytes(b"an arm64 binary")

    pushed = push_image(
        PushRequest(
            go_binary,
            f"{registry.host}/shop/multi",
            "m1",
            more_platforms={"linux/arm64": arm64},
        )
    )

    index, digest = pull_manifest(registry, "shop/multi", "m1")
    assert digest == pushed.digest and pushed.reference.endswith(f"@{digest}")
    assert index["mediaType"] == INDEX
    platforms = [entry["platform"] for entry in index["manifests"]]
    assert platforms == [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm64"},
    ]
    binaries = []
    for entry in index["manifests"]:
        manifest, served = pull_manifest(registry, "shop/multi", entry["digest"])
        assert served == entry["digest"] and manifest["mediaType"] == MANIFEST
        config = json.loads(pull_blob(registry, "shop/multi", manifest["config"]["digest"]))
        assert config["architecture"] == entry["platform"]["architecture"]
        app = layer_members(pull_blob(registry, "shop/multi", manifest["layers"][-1]["digest"]))
        binaries.append(app["app/hello"][1])
    assert binaries == [go_binary.read_bytes(), b"an arm64 binary"]


def test_the_cli_takes_go_builds_platforms_file(registry, go_binary, tmp_path, capsys):
    arm64 = tmp_path / "hello-linux-arm64"
    arm64.write_bytes(b"arm64")
    platforms = tmp_path / "hello.platforms.json"
    platforms.write_text(json.dumps({"linux/amd64": str(go_binary), "linux/arm64": str(arm64)}))

    code = cli(
        [
            "--platforms-file",
            str(platforms),
            "--repository",
            f"{registry.host}/shop/cli",
            "--tag",
            "p",
        ]
    )

    assert code == 0
    index, digest = pull_manifest(registry, "shop/cli", "p")
    assert capsys.readouterr().out.strip().endswith(digest)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]


def test_a_platform_twice_or_a_missing_binary_is_refused_before_any_push(tmp_path, go_binary):
    with pytest.raises(InputError) as raised:
        push_image(
            PushRequest(
                go_binary,
                "127.0.0.1:1/shop/x",
                "t",
                more_platforms={"linux/amd64": go_binary, "linux/arm64": tmp_path / "absent"},
            )
        )

    message = str(raised.value)
    assert "platform-binary.linux/amd64: linux/amd64 is given twice" in message
    assert "platform-binary.linux/arm64: " in message and "is not a file" in message


# --- build.image: releasing an image built elsewhere, by digest ---


def _plan_with_image(tmp_path: Path, image: str) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"service: {{name: hello}}\nbuild: {{image: '{image}'}}\n")
    return plan


def test_a_prebuilt_image_is_checked_and_released_without_a_push(
    registry, go_binary, tmp_path, capsys
):
    built = push_image(PushRequest(go_binary, f"{registry.host}/ci/hello", "elsewhere"))
    plan = _plan_with_image(tmp_path, built.reference)
    digest_file = tmp_path / "out" / "image"

    code = cli(
        ["--plan", str(plan), "--platforms-file", str(tmp_path / "never-built.json"),
         "--repository", f"{registry.host}/shop/hello", "--tag", "t1",
         "--digest-file", str(digest_file)]
    )  # fmt: skip

    assert code == 0
    assert capsys.readouterr().out.strip() == built.reference
    assert digest_file.read_text().strip() == built.reference
    assert registry.fetch("/v2/shop/hello/manifests/t1", MANIFEST)[0] == 404  # nothing pushed


def test_a_prebuilt_digest_the_registry_lacks_exits_2_naming_build_image(
    registry, tmp_path, capsys
):
    absent = f"{registry.host}/ci/hello@sha256:{'0' * 64}"
    plan = _plan_with_image(tmp_path, absent)

    code = cli(["--plan", str(plan), "--repository", f"{registry.host}/shop/h", "--tag", "t"])

    assert code == EXIT_INPUT
    assert f"build.image: the registry has no {absent}: push it first" in capsys.readouterr().err


def test_a_prebuilt_image_by_tag_is_refused_by_the_plan(tmp_path):
    from canaryflow.plan.load import load_plan

    with pytest.raises(InputError, match=r"build\.image: .*not pinned by digest"):
        load_plan(_plan_with_image(tmp_path, "ghcr.io/acme/hello:v2"))
