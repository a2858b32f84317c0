"""The retry schedule: exponential backoff with deterministic jitter, bounded by a horizon.

Jitter spreads retries of many notifications that failed together (an
endpoint outage) so they do not return in lock-step; deriving it from the
notification id instead of a random source makes the schedule a pure
function, so a replay or a restarted instance computes the same times.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 30.0
    """Delay before the first retry (before jitter)."""
    cap_s: float = 3600.0
    """No single wait is longer than this."""
    horizon_s: float = 24 * 3600.0
    """Give up (dead-letter) when the next attempt would fall after first attempt + horizon."""

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s or self.horizon_s <= 0:
            raise ValueError(f"invalid retry policy {self!r}: need 0 < base <= cap, horizon > 0")


def jitter_fraction(notification_id: str, failures: int) -> float:
    """A number in [0, 1) that depends only on the notification and the attempt."""
    raw = hashlib.sha256(f"{notification_id}\x1f{failures}".encode()).digest()
    return int.from_bytes(raw[:8], "big") / 2**64


def retry_delay(policy: RetryPolicy, notification_id: str, failures: int) -> timedelta:
    """Wait after the `failures`-th consecutive failure: base·2^(n-1), capped, times 0.5–1.0."""
    if failures < 1:
        raise ValueError("retry_delay is defined after at least one failure")
    # 2**60 is already beyond any cap: keep the float finite for absurd attempt counts
    exponential = policy.base_s * 2.0 ** min(failures - 1, 60)
    capped = min(policy.cap_s, exponential)
    return timedelta(seconds=capped * (0.5 + 0.5 * jitter_fraction(notification_id, failures)))


def next_attempt_at(
    policy: RetryPolicy,
    notification_id: str,
    failures: int,
    first_attempt_at: datetime,
    failed_at: datetime,
) -> datetime | None:
    """When to try again after a failure, or None when the horizon is exhausted (dead-letter)."""
    candidate = failed_at + retry_delay(policy, notification_id, failures)
    if candidate > first_attempt_at + timedelta(seconds=policy.horizon_s):
        return None
    return candidate


def schedule(
    policy: RetryPolicy, notification_id: str, first_attempt_at: datetime
) -> list[datetime]:
    """Every attempt time if every attempt fails instantly (documentation, tests, dashboards)."""
    times = [first_attempt_at]
    failures = 0
    while True:
        failures += 1
        nxt = next_attempt_at(policy, notification_id, failures, first_attempt_at, times[-1])
        if nxt is None:
            return times
        times.append(nxt)
