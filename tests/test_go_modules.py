"""Go builds as a company has them: Go's defaults and the user's module settings, ``vendor/``
honoured, private modules through an authenticated proxy with a netrc from a Secret, and no
value given to go-test or go-build ever read by ``go`` as a flag.

The module proxy here is a stand-in that speaks the GOPROXY protocol (``go help goproxy``;
``cmd/go/internal/modfetch/proxy.go``: ``/<module>/@v/list``, ``.info``, ``.mod``, ``.zip``)
behind HTTPS and basic auth, as Athens, Artifactory or a GitLab package registry would (Go
sends netrc credentials over HTTPS only: ``cmd/go/internal/auth``). Its certificate is
self-signed for 127.0.0.1 and trusted through ``SSL_CERT_FILE``, as a company CA would be.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import pytest
from http_stub import LoopbackServer, QuietHandler, self_signed_certificate

from canaryflow.build import GoBuildError, GoToolchain, go_build, go_test
from canaryflow.build.settings import GoSettings
from canaryflow.cli import main as cli
from canaryflow.errors import InputError
from canaryflow.plan.load import load_plan

pytestmark = pytest.mark.slow

GREET = "example.com/greet"
MAIN = (
    'package main\n\nimport "{mod}"\n\nvar version = "dev"\n\n'
    "func main() {{ println({pkg}.Hello()) }}\n"
)
GREET_GO = 'package {pkg}\n\nfunc Hello() string {{ return "hello from {pkg}" }}\n'


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def vendored_module(root: Path) -> Path:
    """A service with one dependency, vendored: no proxy, no module cache needed."""
    return write(
        root,
        {
            "go.mod": f"module example.com/app\n\ngo 1.22\n\nrequire {GREET} v1.0.0\n",
            "main.go": MAIN.format(mod=GREET, pkg="greet"),
            "main_test.go": (
                'package main\n\nimport (\n\t"testing"\n\n\t"example.com/greet"\n)\n\n'
                'func TestHello(t *testing.T) {\n\tif greet.Hello() == "" {\n\t\tt.Fatal("empty")\n'
                "\t}\n}\n"
            ),
            "vendor/modules.txt": f"# {GREET} v1.0.0\n## explicit; go 1.22\n{GREET}\n",
            f"vendor/{GREET}/greet.go": GREET_GO.format(pkg="greet"),
            f"vendor/{GREET}/go.mod": f"module {GREET}\n\ngo 1.22\n",
        },
    )


def test_a_vendored_dependency_builds_and_tests_with_no_proxy_at_all(tmp_path):
    module = vendored_module(tmp_path / "app")

    built = go_build(module, tmp_path / "bin" / "app", "v2")
    assert built.path.is_file()
    assert go_test(module).passed


def test_the_product_forces_neither_goproxy_off_nor_mod_mod(tmp_path, monkeypatch):
    monkeypatch.delenv("GOPROXY", raising=False)
    monkeypatch.delenv("GOFLAGS", raising=False)
    done = GoToolchain.find().run(["env", "-json", "GOPROXY", "GOFLAGS", "CGO_ENABLED"], tmp_path)
    env = json.loads(done.stdout)
    assert env == {"GOPROXY": "https://proxy.golang.org,direct", "GOFLAGS": "", "CGO_ENABLED": "0"}


def test_the_platform_env_then_the_plan_set_the_go_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("GOPROXY", "https://goproxy.platform.example")  # the chart's go.env
    monkeypatch.setenv("GOPRIVATE", "git.platform.example/*")
    plan = load_plan(
        "service: {name: checkout}\n"
        "build:\n  go:\n    proxy: https://goproxy.corp.example,direct\n"
        "    noSumDb: git.corp.example/*\n    flags: [-mod=vendor, -tags=netgo]\n"
    )
    settings = GoSettings(plan.build.go.env())
    names = ["GOPROXY", "GOPRIVATE", "GONOSUMDB", "GOFLAGS", "CGO_ENABLED"]
    done = GoToolchain.find().run(["env", "-json", *names], tmp_path, settings=settings)
    assert json.loads(done.stdout) == {
        "GOPROXY": "https://goproxy.corp.example,direct",
        "GOPRIVATE": "git.platform.example/*",
        "GONOSUMDB": "git.corp.example/*",
        "GOFLAGS": "-mod=vendor -tags=netgo",
        "CGO_ENABLED": "0",
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("flags", "[-toolexec=/bin/sh]"),
        ("flags", "[-exec=/tmp/x]"),
        ("flags", "['-mod=mod -toolexec=x']"),
        ("proxy", "'https://p.example $(id)'"),
        ("private", "'a/*\n-x'"),
        ("toolchain", "go1.99;rm"),
    ],
)
def test_plan_go_settings_that_could_run_other_programs_are_refused(key, value):
    with pytest.raises(InputError, match=rf"^build\.go\.{key}"):
        load_plan(f"service: {{name: checkout}}\nbuild:\n  go:\n    {key}: {value}\n")


class ModuleProxy:
    """GOPROXY protocol for one private module, behind basic auth ``ci:s3cret``."""

    def __init__(self, module: str, version: str, files: dict[str, str], tls: Path):
        self.module, self.version = module, version
        self.mod = files["go.mod"]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, text in files.items():
                archive.writestr(f"{module}@{version}/{name}", text)
        self.zip = buffer.getvalue()
        self.seen_auth: list[str | None] = []
        self.certificate, key = self_signed_certificate(tls, "proxy")
        self.server = LoopbackServer(self._handler(), (self.certificate, key))

    @property
    def url(self) -> str:
        return self.server.url

    def _handler(self) -> type[QuietHandler]:
        proxy = self
        wanted = "Basic " + base64.b64encode(b"ci:s3cret").decode()
        prefix = f"/{proxy.module}/@v/"
        bodies = {
            "list": f"{proxy.version}\n".encode(),
            f"{proxy.version}.info": json.dumps({"Version": proxy.version}).encode(),
            f"{proxy.version}.mod": proxy.mod.encode(),
            f"{proxy.version}.zip": proxy.zip,
        }

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                proxy.seen_auth.append(self.headers.get("Authorization"))
                if self.headers.get("Authorization") != wanted:
                    return self.reply(401, b"unauthorized")
                name = self.path[len(prefix) :] if self.path.startswith(prefix) else None
                if name not in bodies:
                    return self.reply(404, b"not found")
                return self.reply(200, bodies[name])

        return Handler

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def private_proxy(tmp_path_factory, monkeypatch):
    module = "corp.example/private/greet"
    proxy = ModuleProxy(
        module,
        "v1.0.0",
        {"go.mod": f"module {module}\n\ngo 1.22\n", "greet.go": GREET_GO.format(pkg="greet")},
        tmp_path_factory.mktemp("tls"),
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(proxy.certificate))
    yield proxy
    proxy.stop()


def private_service(root: Path, proxy: ModuleProxy) -> tuple[Path, Path]:
    module = write(
        root,
        {
            "go.mod": f"module example.com/app\n\ngo 1.22\n\nrequire {proxy.module} v1.0.0\n",
            "main.go": MAIN.format(mod=proxy.module, pkg="greet"),
            "canaryflow.yaml": (
                "service: {name: app}\n"
                f"build:\n  go:\n    proxy: {proxy.url}\n    noSumDb: corp.example/*\n"
                "    flags: [-mod=mod]\n"
            ),
        },
    )
    return module, module / "canaryflow.yaml"


def test_a_private_module_comes_through_the_plans_proxy_with_the_netrc_secret(
    tmp_path, monkeypatch, private_proxy
):
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    monkeypatch.setenv("GOFLAGS", "-modcacherw")
    module, plan = private_service(tmp_path / "app", private_proxy)
    netrc = tmp_path / "secret" / ".netrc"
    host = private_proxy.url.removeprefix("https://")  # Go matches host:port (cmd/go/internal/auth)
    write(netrc.parent, {".netrc": f"machine {host} login ci password s3cret\n"})
    argv = ["go-build", "--dir", str(module), "--out", str(tmp_path / "bin"), "--version", "v1"]

    assert cli([*argv, "--plan", str(plan), "--netrc", str(netrc)]) == 0

    assert (tmp_path / "bin").is_file()
    assert any(auth and auth.startswith("Basic ") for auth in private_proxy.seen_auth)


def test_without_the_credentials_the_build_fails_and_says_what_go_said(
    tmp_path, monkeypatch, private_proxy
):
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    monkeypatch.setenv("GOFLAGS", "-modcacherw")
    monkeypatch.delenv("CANARYFLOW_GO_NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc either
    module, plan = private_service(tmp_path / "app", private_proxy)

    with pytest.raises(GoBuildError, match="401"):
        settings = GoSettings(load_plan(plan).build.go.env())
        go_build(module, tmp_path / "bin", "v1", settings=settings)


def test_a_credentials_file_that_is_not_there_is_an_input_error(tmp_path, capsys):
    module = vendored_module(tmp_path / "app")
    argv = ["go-test", "--dir", str(module), "--netrc", str(tmp_path / "missing")]
    assert cli(argv) == 2
    assert "error: netrc: " in capsys.readouterr().err


def test_git_credentials_become_a_store_helper_and_never_their_contents(tmp_path):
    store = write(tmp_path, {"git-credentials": "https://ci:s3cret@git.corp.example\n"})
    env = GoSettings(git_credentials=store / "git-credentials").environment(
        {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "a.b", "GIT_CONFIG_VALUE_0": "c"}
    )
    assert env["GIT_CONFIG_COUNT"] == "2"
    assert env["GIT_CONFIG_KEY_1"] == "credential.helper"
    assert env["GIT_CONFIG_VALUE_1"] == f"store --file={store / 'git-credentials'}"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert not any("s3cret" in value for value in env.values())


HOSTILE = [
    "-exec=/bin/sh",
    "-toolexec=/bin/sh",
    "--help",
    "-o=/tmp/pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "./...\n-exec=x",
    "../outside",
    "./a/../../b",
    "/etc",
    " ./...",
    "",
]


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("verb", ["go-test", "go-build"])
def test_a_hostile_package_is_refused_before_go_runs(tmp_path, capsys, verb, hostile):
    module = vendored_module(tmp_path / "app")
    option = "--packages" if verb == "go-test" else "--package"
    argv = [verb, "--dir", str(module), f"{option}={hostile}"]
    if verb == "go-build":
        argv += ["--out", str(tmp_path / "bin"), "--version", "v1"]

    assert cli(argv) == 2

    err = capsys.readouterr().err
    name = option  # the option the user gave
    assert err.startswith(f"error: {name}: ") and "is not a package pattern" in err
    assert not list(tmp_path.rglob("pwned")) and not (tmp_path / "bin").exists()


@pytest.mark.parametrize(
    ("option", "hostile"),
    [("--version", "-toolexec=/bin/sh"), ("--goos", "-exec=x"), ("--goarch", "--help")],
)
def test_hostile_build_values_are_refused_too(tmp_path, option, hostile):
    module = vendored_module(tmp_path / "app")
    argv = ["go-build", "--dir", str(module), "--out", str(tmp_path / "bin"), "--version", "v1"]
    assert cli([*argv, f"{option}={hostile}"]) == 2
    assert not (tmp_path / "bin").exists()


def test_an_output_path_that_looks_like_a_flag_is_only_ever_a_path(tmp_path, monkeypatch):
    module = vendored_module(tmp_path / "app")
    monkeypatch.chdir(tmp_path)
    argv = ["go-build", "--dir", str(module), "--out=-toolexec=x", "--version", "v1"]
    assert cli(argv) == 0
    assert (tmp_path / "-toolexec=x").is_file()


def test_go_build_puts_the_package_after_a_double_dash():
    from canaryflow.build.go import build_args

    args = build_args(Path("/out/bin"), "v1", "./cmd/server", [])
    assert args[-2:] == ["--", "./cmd/server"]
