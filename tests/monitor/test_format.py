"""The views' small text formatters."""

from __future__ import annotations

from monitor import format as fmt
from monitor.theme import themed


def test_bar_fills_to_the_fraction_and_shows_the_percentage() -> None:
    assert fmt.bar(0.0).plain == "░" * 10 + "   0%"
    assert fmt.bar(0.34).plain == "███" + "░" * 7 + "  34%"
    assert fmt.bar(1.0, width=4).plain == "████ 100%"
    assert fmt.bar(0.06, width=10).plain.startswith("█░")  # 0.6 of a cell rounds to one


def test_an_unknown_fraction_is_a_dim_question_mark_as_wide_as_a_bar() -> None:
    unknown = fmt.bar(None, width=10)
    assert unknown.plain.strip() == "?"
    assert len(unknown.plain) == len(fmt.bar(0.5, width=10).plain)
    assert unknown.style == "dim"


def test_rate_abbreviates_from_ten_thousand() -> None:
    assert [fmt.rate(v) for v in (0.0, 12.4, 9_999.0, 10_000.0, 123_456.0)] == ["0", "12", "9,999", "10k", "123k"]


def test_duration_picks_its_unit() -> None:
    assert fmt.duration(None) == "-"
    assert fmt.duration(0.04) == "0.0s"
    assert fmt.duration(59.94) == "59.9s"
    assert fmt.duration(60) == "1m00s"
    assert fmt.duration(3599) == "59m59s"
    assert fmt.duration(3600) == "1h00m"
    assert fmt.duration(90_061) == "25h01m"


def test_status_is_styled_by_its_name() -> None:
    assert fmt.status("failed").style == themed(fmt.STATUS_STYLES["failed"]) and "$" not in themed("bold $error")
    assert fmt.status("something new").style == ""
    assert fmt.status("complete").plain == "complete"


def test_short_keeps_the_start_and_middle_keeps_both_ends() -> None:
    assert fmt.short("abc", 3) == "abc"
    assert fmt.short("abcd", 3) == "ab…"
    assert fmt.short(12345, 4) == "123…"
    run = "20250101-120000-a1b2c3"
    assert fmt.middle(run, 12) == "202…0-a1b2c3"  # a third before the ellipsis, the rest after it
    assert fmt.middle(run, 7) == "20…b2c3"
    assert fmt.middle("short", 12) == "short"
