"""CLI conventions a CI system relies on: JSON errors, exit codes by cause, grouped help,
and a completion script a real bash runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from http_stub import LoopbackServer, QuietHandler
from kube.fixtures import CANARY_IMAGE, NAMESPACE, SERVICE, write_kubeconfig

from canaryflow.cli import TASK_VERBS, VERBS, main
from canaryflow.errors import EXIT_INPUT, EXIT_RELEASE_FAILED, EXIT_UNREACHABLE
from canaryflow.kubernetes.from_plan import platform_for
from canaryflow.kubernetes.platform import api_client_from_environment
from canaryflow.plan.load import load_plan

ROOT = Path(__file__).parent.parent
PLAN = sorted((ROOT / "examples" / "plans").glob("*.yaml"))[0]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: connection refused


def test_validate_json_lists_each_mistake_as_path_and_message(tmp_path, capsys):
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text("service: {name: Checkout}\nsteps: [{weight: 0, duration: 1m}]\n")
    assert main(["validate", str(plan), "--json"]) == EXIT_INPUT
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False and document["kind"] == "input"
    paths = {error["path"] for error in document["errors"]}
    assert {"service.name", "steps[0].weight"} <= paths
    assert all(error["message"] for error in document["errors"])


def test_validate_json_of_a_good_plan_describes_it(capsys):
    assert main(["validate", str(PLAN), "--offline", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert document["steps"] and document["gates"] > 0
    assert document["queriesCheckedAgainst"] is None


def test_an_unreachable_prometheus_exits_3_not_2_like_a_broken_plan(capsys):
    url = f"http://127.0.0.1:{_closed_port()}"
    assert main(["validate", str(PLAN), "--prometheus", url]) == EXIT_UNREACHABLE
    assert "analysis.prometheus.url: cannot check queries" in capsys.readouterr().err
    assert main(["validate", str(PLAN), "--prometheus", url, "--json"]) == EXIT_UNREACHABLE
    document = json.loads(capsys.readouterr().out)
    assert document["kind"] == "unreachable"
    assert document["errors"][0]["path"] == "analysis.prometheus.url"


def _service_verb(verb: str, url: str, tmp_path: Path) -> list[str]:
    """``verb``'s command line with its one remote service at ``url`` (http://HOST:PORT)."""
    address = url.removeprefix("http://")
    if verb == "image-push":
        binary = tmp_path / "checkout"
        binary.write_bytes(b"\x7fELF not really")
        return [
            "image-push",
            "--binary",
            str(binary),
            "--repository",
            f"{address}/shop/checkout",
            "--tag",
            "3f2c1e0",
            "--no-system-files",
            "--timeout",
            "5",
        ]
    if verb == "checkout":
        repo = f"{url}/shop/checkout.git"
        return ["checkout", "--repo", repo, "--revision", "main", "--dest", str(tmp_path / "src")]
    plan = tmp_path / "plan.yaml"
    plan.write_text("service: {name: checkout, namespace: shop}\nrouter: {kind: istio}\n")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return [verb, "--plan", str(plan), "--kubeconfig", str(kubeconfig), "--weight", "5"]


# verb -> the field its unreachable service's message names
SERVICE_VERBS = {"image-push": "repository", "set-weight": "kubeconfig", "checkout": "--repo"}


@pytest.mark.parametrize("verb", sorted(SERVICE_VERBS))
def test_a_service_that_never_answers_exits_3_naming_the_field_and_the_fix(verb, tmp_path, capsys):
    """Connection refused (a closed port on 127.0.0.1): "infrastructure unreachable, try
    again" (3), not "the release failed" (1), for the registry, the API server and git."""
    argv = _service_verb(verb, f"http://127.0.0.1:{_closed_port()}", tmp_path)
    assert main(argv) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert f"error: {SERVICE_VERBS[verb]}: " in err
    assert "did not answer" in err and "connection refused" in err and "then run again" in err


class _Refusing(QuietHandler):
    """A reachable service that answers every request 403 Forbidden."""

    def _forbidden(self) -> None:
        self.reply(403, b'{"message": "forbidden"}', "application/json")

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forbidden


@pytest.mark.parametrize("verb", sorted(SERVICE_VERBS))
def test_a_service_that_answers_4xx_is_reachable_so_not_exit_3(verb, tmp_path, capsys):
    server = LoopbackServer(_Refusing)
    try:
        code = main(_service_verb(verb, server.url, tmp_path))
    finally:
        server.stop()
    assert code not in (0, EXIT_UNREACHABLE)
    assert "did not answer" not in capsys.readouterr().err


def test_never_answered_is_no_connection_not_a_certificate_or_an_answer():
    import socket
    import ssl

    from canaryflow.transport import never_answered

    wrapped = OSError("Max retries exceeded")
    wrapped.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert never_answered(wrapped) == "connection refused"
    assert never_answered(socket.gaierror(-2, "Name or service not known"))
    assert never_answered(ssl.SSLEOFError(8, "EOF in violation of protocol"))
    assert never_answered(ssl.SSLCertVerificationError(1, "self-signed")) is None
    assert never_answered(ConnectionResetError(104, "reset mid-response")) is None


def _analysed_plan(tmp_path: Path, prometheus: str) -> Path:
    plan = tmp_path / "canaryflow.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "service": {"name": SERVICE, "namespace": NAMESPACE},
                "router": {"kind": "istio", "drain": "0s"},
                "steps": [{"weight": 25, "duration": "2s"}],
                "analysis": {
                    "prometheus": {"url": prometheus},
                    "interval": "1s",
                    "warmup": "0s",
                    "baseline": "stable",  # no wait for a fresh baseline's first scrape
                    "gates": [{"metric": "error-rate", "threshold": {"max": 0.01}}],
                },
            }
        )
    )
    return plan


def test_analyze_with_prometheus_down_makes_traffic_safe_then_exits_3(tmp_path, cluster, capsys):
    """The fail-safe acts exactly as on any erroring window (weight 0 verified, nothing
    promoted); only then does the exit code say why: Prometheus never answered (3)."""
    plan = _analysed_plan(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", cluster.url)
    verb = ["--plan", str(plan), "--kubeconfig", str(kubeconfig)]
    assert main(["deploy-canary", *verb, "--image", CANARY_IMAGE, "--version", "v2"]) == 0
    assert main(["set-weight", *verb, "--weight", "25", "--header-route"]) == 0
    report = tmp_path / "report.json"
    analyze = ["analyze", *verb, "--step", "0", "--fail-safe", "--report-file", str(report)]
    assert main(analyze) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert "error: --prometheus: Prometheus at http://127.0.0.1:" in err
    assert "did not answer (connection refused)" in err
    document = json.loads(report.read_text())
    assert document["verdict"]["outcome"] == "error"
    assert document["failSafe"]["verified"] is True
    assert document["unreachable"]["path"] == "--prometheus"
    platform = platform_for(load_plan(plan), api_client_from_environment(str(kubeconfig), None))
    assert platform.router.verify_weight(0)


def test_analyze_against_a_prometheus_answering_4xx_is_not_3(tmp_path, capsys):
    """Reached, so not "unreachable"; and a 403 to the query check is not a query Prometheus
    refused (not 2, "fix the plan"): the queries go unchecked and the window is an ERROR, 1."""
    server = LoopbackServer(_Refusing)
    try:
        plan = _analysed_plan(tmp_path, server.url)
        code = main(["analyze", "--plan", str(plan), "--duration", "2s", "--json"])
    finally:
        server.stop()
    assert code == EXIT_RELEASE_FAILED
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["verdict"]["outcome"] == "error" and "unreachable" not in document
    assert "warning: queries not checked: Prometheus at" in err and "HTTP 403" in err


def test_analyze_exits_3_only_once_the_fail_safe_verified_safe_traffic():
    from types import SimpleNamespace

    from canaryflow.analysis.measurement import Outcome
    from canaryflow.commands.analyze import _never_answered

    down = SimpleNamespace(url="http://p", reached=False, never_answered="connection refused")
    error = SimpleNamespace(verdict=SimpleNamespace(outcome=Outcome.ERROR))
    safe, unsafe = {"failSafe": {"verified": True}}, {"failSafe": {"verified": False}}
    assert _never_answered(down, error, True, object(), safe)
    assert _never_answered(down, error, True, None, {}), "no fail-safe asked: nothing to wait for"
    assert _never_answered(down, error, True, object(), unsafe) is None
    reached = SimpleNamespace(url="http://p", reached=True, never_answered="connection refused")
    assert _never_answered(reached, error, True, object(), safe) is None
    failed = SimpleNamespace(verdict=SimpleNamespace(outcome=Outcome.FAIL))
    assert _never_answered(down, failed, True, object(), safe) is None


# Every verb with output takes --json (bench writes BENCHMARKS.md and says the rest on
# stderr: n/a; schema prints JSON already; runbook, gitops-snippet and completion print a
# document meant as it is).
JSON_VERBS = sorted(
    {"validate", "analyze", "run", "demo", "doctor", "checkout", "go-test", "go-build"}
    | {"image-push", "deploy-canary", "health-gate", "set-weight", "promote", "rollback"}
    | {"notify", "compile", "chart"}
)


@pytest.mark.parametrize("verb", JSON_VERBS)
def test_each_verb_with_output_offers_json(verb, capsys):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    assert "--json" in capsys.readouterr().out


def test_checkout_json_is_one_object_naming_the_commit(tmp_path, capsys):
    from dulwich import porcelain

    origin = tmp_path / "origin"
    repo = porcelain.init(str(origin))
    (origin / "VERSION").write_text("v1")
    porcelain.add(repo, [str(origin / "VERSION")])
    sha = porcelain.commit(repo, b"v1", author=b"t <t@e>", committer=b"t <t@e>").decode()
    dest = tmp_path / "work"
    argv = ["checkout", "--repo", str(origin), "--revision", sha, "--dest", str(dest), "--json"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == {"ok": True, "commit": sha, "revision": sha, "dest": str(dest.resolve())}


def test_compile_json_lists_the_files_it_wrote(tmp_path, capsys):
    assert main(["compile", "--engine", "argo", "--out", str(tmp_path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True and document["engine"] == "argo"
    assert document["files"] and all(Path(f).is_file() for f in document["files"])


def test_chart_json_lists_what_it_generated(tmp_path, capsys):
    chart = tmp_path / "chart"
    shutil.copytree(ROOT / "charts" / "canaryflow", chart)
    assert main(["chart", "--generate", "--chart", str(chart), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["generated"] and document["package"] is None


def test_cluster_verbs_json_say_what_they_did(tmp_path, cluster, capsys):
    plan = _analysed_plan(tmp_path, "http://127.0.0.1:9")
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", cluster.url)
    verb = ["--plan", str(plan), "--kubeconfig", str(kubeconfig), "--json"]
    assert main(["deploy-canary", *verb, "--image", CANARY_IMAGE, "--version", "v2"]) == 0
    deployed = json.loads(capsys.readouterr().out)
    assert deployed["canary"] == f"{SERVICE}-canary" and deployed["image"] == CANARY_IMAGE
    assert main(["set-weight", *verb, "--weight", "5"]) == 0
    weight = json.loads(capsys.readouterr().out)
    assert weight["weight"] == 5 and weight["verified"] is True
    assert main(["rollback", *verb, "--reason", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["service"] == SERVICE


@pytest.mark.parametrize(
    ("server", "code", "kind"), [("closed", EXIT_UNREACHABLE, "unreachable"), ("403", 1, "failed")]
)
def test_json_errors_say_their_kind_on_stdout(server, code, kind, tmp_path, capsys):
    stub = LoopbackServer(_Refusing) if server == "403" else None
    url = stub.url if stub else f"http://127.0.0.1:{_closed_port()}"
    try:
        assert main([*_service_verb("image-push", url, tmp_path), "--json"]) == code
    finally:
        if stub:
            stub.stop()
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False and document["kind"] == kind
    assert document["errors"][0]["message"]


def test_help_groups_user_verbs_apart_from_task_verbs_and_lists_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    users, tasks = out.split("task verbs")
    assert "  validate " in users and "  set-weight " not in users
    for verb in TASK_VERBS:
        assert f"  {verb} " in tasks
    assert set(TASK_VERBS) < set(VERBS)
    assert "  3    infrastructure unreachable" in out


def test_set_weight_help_prints_a_percent_sign_not_two(capsys):
    with pytest.raises(SystemExit):
        main(["set-weight", "--help"])
    out = capsys.readouterr().out
    assert "N% of traffic" in out and "%%" not in out


@pytest.mark.parametrize("engine", ["argo", "tekton"])
def test_compile_reports_progress_on_stderr_before_the_slow_part(tmp_path, engine):
    process = subprocess.Popen(
        [sys.executable, "-m", "canaryflow", "compile", "--engine", engine, "--out", str(tmp_path)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        first = process.stderr.readline()
        assert first.startswith(f"compiling the {engine} bundle")
        assert process.wait(timeout=300) == 0
        assert "compiled " in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_health_gate_longer_than_the_interval_reports_progress_on_stderr(
    tmp_path, cluster, capsys
):
    """The canary never gets ready: the gate waits its whole --timeout, saying so on stderr
    as it goes (what, how far, how long of how long); stdout keeps the result alone."""
    plan = _analysed_plan(tmp_path, "http://127.0.0.1:9")
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", cluster.url)
    verb = ["--plan", str(plan), "--kubeconfig", str(kubeconfig)]
    cluster.set_rollout(NAMESPACE, f"{SERVICE}-canary", "unready")
    assert main(["deploy-canary", *verb, "--image", CANARY_IMAGE, "--version", "v2"]) == 0
    capsys.readouterr()
    assert main(["health-gate", *verb, "--timeout", "4", "--json"]) == 1
    captured = capsys.readouterr()
    progress = [
        line
        for line in captured.err.splitlines()
        if line.startswith(f"waiting for {NAMESPACE}/{SERVICE}-canary: ")
    ]
    assert progress and all(line.endswith(" s of 4 s") for line in progress)
    assert json.loads(captured.out)["healthy"] is False


def test_progress_is_said_after_2_s_then_every_5_s_per_wait():
    import io

    from canaryflow.progress import StderrProgress, reporting, waiting

    now = [0.0]
    out = io.StringIO()
    reporter = StderrProgress(stream=out, clock=lambda: now[0])
    with reporting(reporter):
        for t in (0.0, 1.0, 2.0, 3.0, 6.0, 7.0, 12.0):
            now[0] = t
            waiting("shop/checkout-canary", "1/3 pods ready", 300)
        now[0] = 100.0  # long after: a new wait, silent again at first
        waiting("shop/checkout-canary", "0/3 pods ready", 300)
    waiting("shop/checkout-canary", "after the block: nobody listens")
    assert out.getvalue().splitlines() == [
        "waiting for shop/checkout-canary: 1/3 pods ready, 2 s of 300 s",
        "waiting for shop/checkout-canary: 1/3 pods ready, 7 s of 300 s",
        "waiting for shop/checkout-canary: 1/3 pods ready, 12 s of 300 s",
    ]


def test_chart_generate_says_what_it_does_before_it_does_it(tmp_path, capsys):
    """The chart's generation compiles the workflows (seconds): a line comes first. Run on a
    copy, so the repository's chart is never rewritten by a test."""
    chart = tmp_path / "chart"
    shutil.copytree(ROOT / "charts" / "canaryflow", chart)
    assert main(["chart", "--generate", "--chart", str(chart)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"generating {chart} from the workflow code ..."
    assert any(line.startswith("generated ") for line in err[1:])


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize(
    ("words", "expected", "absent"),
    [
        (["canaryflow", "set-"], {"set-weight"}, {"validate"}),
        (["canaryflow", "set-weight", "--we"], {"--weight"}, {"--offline"}),
        (["canaryflow", "validate", "--js"], {"--json"}, set()),
    ],
)
def test_bash_completion_completes_verbs_and_each_verbs_options(words, expected, absent, capsys):
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    quoted = " ".join(f"'{w}'" for w in words)
    driver = (
        f"{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        '_canaryflow; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", driver],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert expected <= set(out)
    assert not absent & set(out)


def test_zsh_completion_loads_the_bash_function_through_bashcompinit(capsys):
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef canaryflow\n")
    assert "bashcompinit" in script and "complete -F _canaryflow canaryflow" in script


def test_a_prometheus_nothing_accepts_is_no_connection_not_a_slow_answer():
    """A connect that times out (a firewall dropping SYNs; here a listener whose accept queue
    is full) is "never answered" (exit 3) and says so, not "did not answer within", which
    points at a slow Prometheus instead of the path to it."""
    from listeners import unconnectable

    from canaryflow.analysis.source import MeasurementError, PrometheusSource

    with unconnectable() as port:
        source = PrometheusSource(f"http://127.0.0.1:{port}", timeout=1.0)
        with pytest.raises(MeasurementError) as raised:
            source.instant("up")
    assert source.never_answered == "no connection within the timeout"
    assert "no connection within 1s" in str(raised.value)
    assert "did not answer" not in str(raised.value)
