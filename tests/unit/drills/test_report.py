"""The drill report: measurements (gap, objects lost) and its text and JSON forms."""

from __future__ import annotations

import json

from nestlab.drills.report import (
    Check,
    DrillReport,
    Verdict,
    first_after,
    longest_gap,
    lost_objects,
    render_json,
    render_text,
    to_json,
)


def test_longest_gap_is_the_longest_stretch_without_a_success() -> None:
    assert longest_gap([1.0, 2.0, 7.5, 8.0], start=0.0, end=10.0) == 5.5


def test_longest_gap_counts_the_edges_of_the_window() -> None:
    assert longest_gap([9.0], start=0.0, end=10.0) == 9.0
    assert longest_gap([1.0], start=0.0, end=10.0) == 9.0


def test_no_success_at_all_is_the_whole_window() -> None:
    assert longest_gap([], start=3.0, end=10.0) == 7.0


def test_successes_outside_the_window_are_ignored() -> None:
    assert longest_gap([-5.0, 5.0, 50.0], start=0.0, end=10.0) == 5.0


def test_objects_lost_key_by_key() -> None:
    expected = {"a": "1", "b": "2", "c": "3"}
    assert lost_objects(expected, {"a": "1", "b": "2", "c": "3"}) == []
    assert lost_objects(expected, {"a": "1", "b": None, "c": "x"}) == ["b", "c"]
    assert lost_objects(expected, {}) == ["a", "b", "c"]


def test_first_after() -> None:
    assert first_after([1.0, 4.0, 6.0], since=3.0) == 1.0
    assert first_after([1.0], since=3.0) is None


def sample() -> DrillReport:
    report = DrillReport(
        "vip-holder-loss", "e2e", "the VIP holder stops", explanation=("line one", "line two")
    )
    report.figure("api_longest_gap_s", "longest gap", 1.23456, "s")
    report.figure("requests_failed", "failed", 2, "requests")
    report.figure("vip_holder_after", "holder after", "lb-1")
    report.figure("not_measured_s", "nan", float("nan"), "s")
    report.verdicts.append(Verdict("VIP", "FAILED: x", "PASSED"))
    report.checks.append(Check("the lab is whole again", True, "after 4 s"))
    report.seconds = 30.4
    return report


def test_figures_are_rounded_and_nan_is_not_measured() -> None:
    report = sample()
    assert report.value("api_longest_gap_s") == 1.23
    assert report.value("not_measured_s") is None
    report.figure("api_longest_gap_s", "longest gap", 2.0, "s")
    assert [f.key for f in report.figures].count("api_longest_gap_s") == 1


def test_text_shows_figures_verdicts_checks_and_the_explanation() -> None:
    text = render_text(sample())
    assert text.splitlines()[0] == "drill vip-holder-loss on lab e2e: the VIP holder stops"
    assert "  longest gap   1.23 s" in text
    assert "  nan           not measured" in text
    assert "VIP: FAILED: x -> PASSED" in text
    assert "[ok  ] the lab is whole again: after 4 s" in text
    assert "  line two" in text
    assert text.splitlines()[-1] == "drill vip-holder-loss: PASSED in 30 s"


def test_a_failed_check_fails_the_drill() -> None:
    report = sample()
    report.checks.append(Check("no acknowledged write was lost", False, "write-3"))
    assert not report.passed
    assert "[FAIL] no acknowledged write was lost: write-3" in render_text(report)
    assert to_json(report)["passed"] is False


def test_json_has_figures_by_key_with_labels_and_units() -> None:
    document = json.loads(render_json(sample()))
    assert document["drill"] == "vip-holder-loss"
    assert document["figures"]["api_longest_gap_s"] == 1.23
    assert document["figures"]["not_measured_s"] is None
    assert document["labels"]["requests_failed"] == {"label": "failed", "unit": "requests"}
    assert document["verdicts"] == [{"subject": "VIP", "during": "FAILED: x", "after": "PASSED"}]
    assert document["checks"][0]["ok"] is True
    assert document["explanation"] == ["line one", "line two"]
