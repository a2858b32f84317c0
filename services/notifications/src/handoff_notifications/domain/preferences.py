"""The recipient's side: quiet hours in their time zone, staleness, channel choice.

All functions take the current time as a parameter; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A local-time window in which non-urgent messages wait; start == end means none."""

    start: time = time(21, 0)
    end: time = time(8, 0)

    @property
    def enabled(self) -> bool:
        return self.start != self.end

    def contains(self, local: time) -> bool:
        if not self.enabled:
            return False
        if self.start < self.end:  # e.g. 13:00–15:00 within one day
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # crosses midnight, e.g. 21:00–08:00


def parse_clock(text: str) -> time:
    """`HH:MM` → time; raises ValueError naming the text."""
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"{text!r} is not a HH:MM time") from None


def deliver_at(now: datetime, zone: ZoneInfo, quiet: QuietHours, urgent: bool) -> datetime:
    """When a message may go: now, or — for a non-urgent one in quiet hours — the end of them."""
    if urgent or not quiet.enabled:
        return now
    local = now.astimezone(zone)
    if not quiet.contains(local.time().replace(tzinfo=None)):
        return now
    end_today = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    morning = end_today if end_today > local else end_today + timedelta(days=1)
    # re-localise: adding a day across a DST change keeps wall-clock time 08:00
    morning = morning.replace(tzinfo=None).replace(tzinfo=zone)
    return morning.astimezone(now.tzinfo)


def is_stale(occurred_at: datetime, now: datetime, limit: timedelta) -> bool:
    """A milestone older than the limit is not worth telling a customer about any more."""
    return now - occurred_at > limit


def customer_channels(
    rule_channels: Sequence[str], chosen: Collection[str], opted_out: bool
) -> list[str]:
    """The channels a customer gets for a milestone: the rule's, narrowed by their choice.

    An empty choice means 'no preference' (the tenant's rule decides); opting
    out silences every customer channel (marketplace webhooks are not theirs to stop).
    """
    if opted_out:
        return []
    if not chosen:
        return list(rule_channels)
    return [c for c in rule_channels if c in chosen]


def language_of(locale: str | None) -> str | None:
    """`de-DE` → `de`; `pt_BR` → `pt`."""
    if not locale:
        return None
    lang = locale.replace("_", "-").split("-")[0].strip().lower()
    return lang or None
