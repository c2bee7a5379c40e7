"""``canaryflow bench --only``: one group of the whole run's sections measured alone, written in
place of the same sections of BENCHMARKS.md with its own run header, everything else left as
it was."""

from __future__ import annotations

import json

import pytest

from canaryflow.bench.markdown import render_sections, with_run_header
from canaryflow.bench.scenarios import BenchResults, HealthyRelease
from canaryflow.cli import main

DOCUMENT = (
    "# Benchmarks\n\nWhich run produced what: hand-written.\n\n"
    "## Split accuracy\n\n*Not re-run on main.*\n\nold split\n\n"
    "## `canaryflow --help`\n\n*Not re-run on main: an old run.*\n\n"
    "Median wall time of 10 runs of the console script: 63 ms.\n\n"
    "## Judgement\n\nold judgement\n"
)


@pytest.mark.slow
def test_only_cli_measures_and_replaces_that_section_alone_naming_its_run(tmp_path):
    document = tmp_path / "BENCHMARKS.md"
    document.write_text(DOCUMENT)
    out = tmp_path / "out"

    assert main(["bench", "--only", "cli", "--out", str(out), "--write", str(document)]) == 0

    text = document.read_text()
    before, _, rest = text.partition("## `canaryflow --help`\n")
    section, _, after = rest.partition("\n## ")
    assert before == DOCUMENT.partition("## `canaryflow --help`\n")[0]
    assert after == "Judgement\n\nold judgement\n" and ".\n\n## Judgement\n" in text
    assert "Not re-run" not in section and "63 ms" not in section
    header = section.strip().splitlines()[0]
    assert header.startswith("Run ") and "load average" in header and "commit " in header
    assert "`canaryflow bench --only cli`" in header
    assert "Median wall time of 10 runs of the console script" in section
    raw = json.loads((out / "bench-cli.json").read_text())
    assert raw["cli_help"]["runs"] == 10 and not raw["bad"] and not raw["split"]


def test_only_cannot_be_combined_with_the_verbs_other_benchmarks(tmp_path, capsys):
    document = tmp_path / "BENCHMARKS.md"
    document.write_text(DOCUMENT)
    for other in (["--judgement"], ["--cost"], ["--replay", "10"]):
        argv = ["bench", "--only", "cli", *other, "--write", str(document)]
        assert main([*argv, "--out", str(tmp_path / "out")]) == 2
        assert "--only:" in capsys.readouterr().err
    assert document.read_text() == DOCUMENT
    assert not (tmp_path / "out").exists()


def test_a_run_without_bad_releases_renders_no_detection_section():
    results = BenchResults(machine={}, healthy=[HealthyRelease("promoted", 100, 0, 3)])
    [healthy] = render_sections(results)
    assert healthy.startswith("## Healthy releases:")
    titled = with_run_header(healthy, "Run X, commit abc.")
    assert titled.startswith("## Healthy releases: requests failed by weight shifts")
    assert titled.split("\n")[1:4] == ["", "Run X, commit abc.", ""]


def test_a_healthy_release_that_was_not_promoted_is_listed_with_the_judges_reason():
    results = BenchResults(
        machine={},
        healthy=[
            HealthyRelease("promoted", 100, 0, 3),
            HealthyRelease("rolled-back", 40, 0, 1, "step 0: fail: latency-p95: credibly worse"),
        ],
    )
    [healthy] = render_sections(results)
    assert "| 1 of 2 |" in healthy
    assert healthy.endswith("- rolled-back: step 0: fail: latency-p95: credibly worse")
    [only_promoted] = render_sections(BenchResults(machine={}, healthy=results.healthy[:1]))
    assert "Not promoted" not in only_promoted
