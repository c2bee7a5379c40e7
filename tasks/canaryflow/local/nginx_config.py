"""nginx configuration for the local traffic router, as pure functions of the route state.

Two nginx masters share the work (see ``canaryflow.local.router`` for why):

- the *edge* owns the user-facing port and client keep-alive connections and is never
  reloaded; it proxies each request over a unix socket, without upstream keep-alive, to
- the *splitter*, which holds the weights (``split_clients`` on ``$request_id``), the header
  override (``map``) and the stable/canary (and fresh baseline) upstreams, and is reloaded on
  every change.

The ``single`` layout is the splitter listening on the user port itself: the textbook design,
kept so that its failed requests during reloads can be measured against the two-tier one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from canaryflow.errors import InputError
from canaryflow.platform.protocol import HeaderRoute

TRACK_HEADER = "X-Canaryflow-Track"
# Answered by the splitter itself, through the edge, never proxied to stable or canary: the
# router's own health (a frozen canary must not read as a broken router, issue 23 item 11).
ROUTER_PROBE_PATH = "/.canaryflow/router"
ROUTER_PROBE_ANSWER = "router"
WORKER_PROCESSES = 1
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_HEADER_VALUE = re.compile(r"^[A-Za-z0-9._~+/=:-]+$")
_ADDRESS = re.compile(r"^[^\s;{}'\"$#\\]+:[^\s;{}'\"$#\\]+$")


@dataclass(frozen=True)
class RouteState:
    """Everything the splitter decides on; ``generation`` counts applied changes."""

    stable: str
    canary: str | None = None
    canary_percent: int = 0
    header_route: HeaderRoute | None = None
    generation: int = 0
    baseline: str | None = None
    """A fresh baseline's address (stable's version, started with the canary)."""
    baseline_percent: int = 0

    def effective_percent(self) -> int:
        """No canary upstream means no canary traffic, whatever the weight says."""
        return self.canary_percent if self.canary else 0

    def effective_baseline_percent(self) -> int:
        """No baseline upstream means no baseline traffic, whatever its share says."""
        return self.baseline_percent if self.baseline else 0


@dataclass(frozen=True)
class NginxFiles:
    """Where one nginx master keeps its config, pid, logs and temp files."""

    prefix: Path
    name: str

    @property
    def conf(self) -> Path:
        return self.prefix / f"{self.name}.conf"

    @property
    def pid(self) -> Path:
        return self.prefix / f"{self.name}.pid"

    @property
    def error_log(self) -> Path:
        return self.prefix / f"{self.name}-error.log"

    @property
    def access_log(self) -> Path:
        return self.prefix / f"{self.name}-access.log"


def validate_state(state: RouteState) -> None:
    """Refuse values that could change the config's structure; nginx -t checks the rest."""
    if not 0 <= state.canary_percent <= 100:
        raise InputError(f"canary_percent: {state.canary_percent} is out of range; use 0..100")
    if not 0 <= state.baseline_percent <= 100 - state.canary_percent:
        raise InputError(
            f"baseline_percent: {state.baseline_percent} is out of range; use 0.."
            f"{100 - state.canary_percent} (canary and baseline together at most 100)"
        )
    addresses = (("stable", state.stable), ("canary", state.canary), ("baseline", state.baseline))
    for field_name, address in addresses:
        if address is not None and not _ADDRESS.match(address):
            raise InputError(f"{field_name}: {address!r} is not an address; write it as HOST:PORT")
    route = state.header_route
    if route is not None:
        if not _HEADER_NAME.match(route.name):
            raise InputError(
                f"header_route.name: {route.name!r} is not a header name; "
                "use letters, digits and dashes"
            )
        if not _HEADER_VALUE.match(route.value):
            raise InputError(
                f"header_route.value: {route.value!r} cannot be matched exactly; "
                "use letters, digits and ._~+/=:-"
            )


def render_splitter(state: RouteState, files: NginxFiles, listen: str, admin_socket: Path) -> str:
    """The reloaded half: weights, header override, upstreams, and the admin read-back."""
    validate_state(state)
    canary = state.canary
    percent = state.effective_percent()
    baseline_percent = state.effective_baseline_percent()
    header = state.header_route if canary else None
    upstreams = [_upstream("stable", state.stable)]
    if canary:
        upstreams.append(_upstream("canary", canary))
    if state.baseline:
        upstreams.append(_upstream("baseline", state.baseline))
    if header is not None:
        variable = "$http_" + header.name.lower().replace("-", "_")
        track_map = (
            f"    map {variable} $canaryflow_track {{\n"
            f'        "{header.value}" canary;\n'
            "        default $canaryflow_split;\n"
            "    }\n"
        )
    else:
        track_map = "    map $canaryflow_split $canaryflow_track { default $canaryflow_split; }\n"
    split = _split(percent, baseline_percent)
    readback = (
        f"generation={state.generation} weight={percent} stable={state.stable} "
        f"canary={canary or '-'} header={_describe(header)} "
        f"baseline_weight={baseline_percent} baseline={state.baseline or '-'}\\n"
    )
    return (
        _main(files)
        + "http {\n"
        + _http_common(files)
        + f'    split_clients "${{request_id}}" $canaryflow_split {{\n{split}    }}\n'
        + track_map
        + "".join(upstreams)
        + "    server {\n"
        + f"        listen {listen};\n"
        + "        keepalive_requests 1000000;\n"
        + f"        location = {ROUTER_PROBE_PATH} {{\n"
        + "            access_log off;\n"
        + f'            return 200 "{ROUTER_PROBE_ANSWER}\\n";\n'
        + "        }\n"
        + "        location / {\n"
        + "            proxy_pass http://canaryflow_$canaryflow_track;\n"
        + "            proxy_set_header Host $host;\n"
        + f"            add_header {TRACK_HEADER} $canaryflow_track always;\n"
        + "        }\n"
        + "    }\n"
        + "    server {\n"
        + f"        listen unix:{admin_socket};\n"
        + "        access_log off;\n"
        + f'        location = /weight {{ return 200 "{readback}"; }}\n'
        + "    }\n"
        + "}\n"
    )


def render_edge(files: NginxFiles, port: int, splitter_socket: Path) -> str:
    """The never-reloaded half: client keep-alive in front, one connection per request behind.

    The splitter is listed twice so ``proxy_next_upstream`` has a second try should a
    connection fail while the splitter's workers change; ``max_fails=0`` keeps it eligible.
    """
    server = f"        server unix:{splitter_socket} max_fails=0;\n"
    return (
        _main(files)
        + "http {\n"
        + _http_common(files)
        + "    upstream canaryflow_splitter {\n"
        + server
        + server
        + "    }\n"
        + "    server {\n"
        + f"        listen 127.0.0.1:{port};\n"
        + "        keepalive_requests 1000000;\n"
        + "        location / {\n"
        + "            proxy_pass http://canaryflow_splitter;\n"
        + "            proxy_set_header Host $host;\n"
        + "            proxy_next_upstream error;\n"
        + "            proxy_next_upstream_tries 2;\n"
        + "        }\n"
        + "    }\n"
        + "}\n"
    )


def render_static(files: NginxFiles, port: int, version: str) -> str:
    """A stand-in service answering ``version=<version>`` everywhere: benches and tests."""
    return (
        _main(files)
        + "http {\n"
        + _http_common(files)
        + "    access_log off;\n"
        + "    server {\n"
        + f"        listen 127.0.0.1:{port};\n"
        + "        keepalive_requests 1000000;\n"
        + f"        location / {{ add_header X-Backend-Version {version};"
        + f' return 200 "version={version}\\n"; }}\n'
        + "    }\n"
        + "}\n"
    )


def _main(files: NginxFiles) -> str:
    # As root nginx would hand its workers to "nobody", who cannot reach 0700 work dirs.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        user
        + f"worker_processes {WORKER_PROCESSES};\n"
        + f"pid {files.pid};\n"
        + f"error_log {files.error_log} notice;\n"
        + "events { worker_connections 1024; }\n"
    )


def _http_common(files: NginxFiles) -> str:
    temp = files.prefix / "temp"
    return (
        "    log_format canaryflow '$msec $status $upstream_addr $request_time \"$request\"';\n"
        + f"    access_log {files.access_log} canaryflow;\n"
        + "".join(
            f"    {kind}_temp_path {temp / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
    )


def _upstream(track: str, address: str) -> str:
    return f"    upstream canaryflow_{track} {{ server {address}; }}\n"


def _split(percent: int, baseline_percent: int = 0) -> str:
    # split_clients refuses "0%": a track without a share is left out; the last track listed
    # is "everything else" ("*"), stable unless canary and baseline take all of it.
    shares = [(p, track) for p, track in ((percent, "canary"), (baseline_percent, "baseline")) if p]
    if 100 - percent - baseline_percent > 0:
        shares.append((100 - percent - baseline_percent, "stable"))
    lines = [f"        {p}% {track};\n" for p, track in shares[:-1]]
    return "".join(lines) + f"        * {shares[-1][1]};\n"


def _describe(route: HeaderRoute | None) -> str:
    return f"{route.name}:{route.value}" if route else "-"
