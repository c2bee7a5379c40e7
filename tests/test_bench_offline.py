"""The offline benchmark: simulated releases judged by the real analysis, written to Markdown."""

from __future__ import annotations

from canaryflow.bench.offline import (
    carry_comparison,
    carry_markdown,
    information_limit_s,
    replay_benchmark,
    replay_markdown,
)
from canaryflow.bench.streams import Fleet
from canaryflow.cli import main
from canaryflow.commands.bench import _replace_section


def test_a_replay_reports_every_fleet_and_class_with_an_exact_confidence_interval():
    result = replay_benchmark(1, say=lambda _: None)
    assert {row["fleet"] for row in result["rows"]} == {"lumpy", "mild lumps", "no lumps"}
    text = replay_markdown(result, "header")
    assert "| no lumps | 5xx x3 (+2 % over 1 %) | 1 | 1 | 2.50% to 100.00% |" in text
    assert text.startswith("## Offline replay: simulated production-shaped fleet\n\nheader\n")


def test_the_carry_comparison_judges_the_same_recordings_both_ways():
    rows = carry_comparison(2, say=lambda _: None)
    assert [row["releases"] for row in rows] == [2, 2, 2, 2]
    assert "| 1 % → 3 % 5xx, 40 s windows | 2 |" in carry_markdown(rows)


def test_the_information_limit_is_the_configured_faults_at_the_judges_alpha_and_tolerance():
    fleet = Fleet(rps=1000.0, base_rate=0.01)
    strict = information_limit_s(fleet, 0.1, 3.0, 0.001, 0.2)
    assert strict > information_limit_s(fleet, 0.1, 3.0, 0.01, 0.2), "a smaller alpha: longer"
    assert information_limit_s(fleet, 0.1, 1.2, 0.01, 0.2) == float("inf"), "within tolerance"


def test_a_section_is_replaced_in_place_and_the_others_are_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# B\n\n## One\n\nold\n\n## Two\n\nkept\n")
    _replace_section(path, "## One\n\nnew\n")
    assert path.read_text() == "# B\n\n## One\n\nnew\n\n## Two\n\nkept\n"
    _replace_section(path, "## Three\n\nadded\n")
    assert path.read_text().endswith("## Two\n\nkept\n\n## Three\n\nadded\n")


def test_a_replay_of_no_releases_is_refused(capsys):
    assert main(["bench", "--replay", "0"]) == 2
    assert "--replay: at least 1 release" in capsys.readouterr().err
