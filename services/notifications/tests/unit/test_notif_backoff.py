"""The retry schedule: exponential, capped, deterministic jitter, bounded by the horizon."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from handoff_notifications.domain.backoff import RetryPolicy, retry_delay, schedule
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_delays_double_within_the_jitter_band_and_respect_the_cap() -> None:
    policy = RetryPolicy(base_s=30, cap_s=600, horizon_s=86400)
    for n, nominal in [(1, 30), (2, 60), (3, 120), (4, 240), (5, 480), (6, 600), (9, 600)]:
        delay = retry_delay(policy, "ntf_x", n).total_seconds()
        assert nominal * 0.5 <= delay <= nominal, (n, delay)


def test_jitter_is_deterministic_per_notification_and_differs_between_them() -> None:
    policy = RetryPolicy()
    assert retry_delay(policy, "ntf_a", 3) == retry_delay(policy, "ntf_a", 3)
    delays = {retry_delay(policy, f"ntf_{i}", 3) for i in range(20)}
    assert len(delays) > 15  # spread, not lock-step


def test_schedule_is_reproducible_and_ends_within_the_horizon() -> None:
    policy = RetryPolicy(base_s=0.2, cap_s=1.0, horizon_s=3.0)
    times = schedule(policy, "ntf_a", T0)
    assert times == schedule(policy, "ntf_a", T0)
    assert times[0] == T0
    assert all(b > a for a, b in itertools.pairwise(times))
    assert times[-1] <= T0 + timedelta(seconds=3)
    assert len(times) >= 4


def test_default_policy_retries_for_a_day() -> None:
    times = schedule(RetryPolicy(), "ntf_a", T0)
    assert T0 + timedelta(hours=20) < times[-1] <= T0 + timedelta(hours=24)


@given(st.text(min_size=1, max_size=30), st.integers(min_value=1, max_value=200))
def test_delay_is_positive_and_bounded(nid: str, failures: int) -> None:
    policy = RetryPolicy(base_s=1, cap_s=3600, horizon_s=86400)
    delay = retry_delay(policy, nid, failures)
    assert timedelta(seconds=0.5) <= delay <= timedelta(seconds=3600)


def test_invalid_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid retry policy"):
        RetryPolicy(base_s=10, cap_s=1)
