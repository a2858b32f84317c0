"""Quiet hours, staleness and channel choice (clock injected as a parameter)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from handoff_notifications.domain.preferences import (
    QuietHours,
    customer_channels,
    deliver_at,
    is_stale,
    language_of,
)
from hypothesis import given
from hypothesis import strategies as st

BERLIN = ZoneInfo("Europe/Berlin")
QUIET = QuietHours(time(21, 0), time(8, 0))


def test_non_urgent_message_at_night_waits_for_the_morning_in_the_recipients_zone() -> None:
    now = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    at = deliver_at(now, BERLIN, QUIET, urgent=False)
    assert at == datetime(2026, 11, 21, 8, 0, tzinfo=BERLIN)
    assert at.tzinfo is UTC


def test_urgent_message_goes_even_in_quiet_hours() -> None:
    now = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)
    assert deliver_at(now, BERLIN, QUIET, urgent=True) == now


def test_after_midnight_the_same_mornings_end_applies() -> None:
    now = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)  # 06:00 Berlin
    assert deliver_at(now, BERLIN, QUIET, urgent=False) == datetime(
        2026, 11, 21, 8, 0, tzinfo=BERLIN
    )


def test_daytime_message_goes_now() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert deliver_at(now, BERLIN, QUIET, urgent=False) == now


def test_the_same_instant_is_quiet_in_one_zone_and_not_in_another() -> None:
    now = datetime(2026, 11, 20, 21, 30, tzinfo=UTC)  # 22:30 Berlin, 16:30 New York
    assert deliver_at(now, BERLIN, QUIET, urgent=False) > now
    assert deliver_at(now, ZoneInfo("America/New_York"), QUIET, urgent=False) == now


def test_morning_after_a_dst_change_is_still_eight_local() -> None:
    now = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # night before the clocks go back
    at = deliver_at(now, BERLIN, QUIET, urgent=False)
    assert at.astimezone(BERLIN).time() == time(8, 0)
    assert at.astimezone(BERLIN).date().isoformat() == "2026-10-25"


def test_disabled_quiet_hours_never_defer() -> None:
    now = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
    assert deliver_at(now, BERLIN, QuietHours(time(0, 0), time(0, 0)), urgent=False) == now


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)))
def test_deferred_delivery_is_never_in_the_past_nor_inside_quiet_hours(naive: datetime) -> None:
    now = naive.replace(tzinfo=UTC)
    at = deliver_at(now, BERLIN, QUIET, urgent=False)
    assert at >= now
    assert at - now <= timedelta(hours=12)
    assert not QUIET.contains(at.astimezone(BERLIN).time())


def test_staleness_limit() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert is_stale(now - timedelta(hours=6, seconds=1), now, timedelta(hours=6))
    assert not is_stale(now - timedelta(hours=5), now, timedelta(hours=6))


@pytest.mark.parametrize(
    ("rule", "chosen", "opted_out", "expected"),
    [
        (["email", "sms"], [], False, ["email", "sms"]),
        (["email", "sms"], ["sms"], False, ["sms"]),
        (["email"], ["sms"], False, []),
        (["email", "sms"], [], True, []),
    ],
)
def test_customer_channels(
    rule: list[str], chosen: list[str], opted_out: bool, expected: list[str]
) -> None:
    assert customer_channels(rule, chosen, opted_out) == expected


def test_language_of_locale() -> None:
    assert language_of("de-DE") == "de"
    assert language_of("pt_BR") == "pt"
    assert language_of("") is None
