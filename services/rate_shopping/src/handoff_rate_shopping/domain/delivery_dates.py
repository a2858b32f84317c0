"""When a parcel leaves and when it arrives: cut-offs, business days, promises.

This module owns the date arithmetic of a quote, as pure functions of their
arguments (the moment of handover is a parameter, never the clock):

* **Ship date.** The handover moment is read in the origin's time zone. If that
  local day is a business day and the local time is at or before the cut-off,
  the parcel ships that day; otherwise (after the cut-off, or a weekend or
  public holiday) it ships on the next business day. 23:30 UTC on a Monday in
  winter is 00:30 on Tuesday in Berlin: the Tuesday counts.
* **Business days.** A carrier works on its weekdays (ISO 1 = Monday), except
  on the public holidays of a country (and subdivision, when a hub names one),
  taken from the `holidays` library. The ship date uses the origin's calendar
  (with the hub's subdivision); a transit day counts only when it is a
  business day in both the origin and the destination country (a Dutch
  holiday stops delivery in NL, a German one stops the line haul).
* **Estimated delivery date** = ship date + advertised transit business days
  (0 = delivered on the ship date).
* **Promise.** The service's delivery hours are read in the offset the
  marketplace used for `promised_by` / the delivery window (the customer's
  local time). A promise is met when the latest delivery moment of the
  estimated day is at or before `promised_by`; a window is met when the
  estimated day is the window's day and the service's hours overlap it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from handoff_events.values import DeliveryWindow

_MAX_SCAN_DAYS = 366  # a calendar with no business day in a year is a catalogue error


@lru_cache(maxsize=512)
def public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """Public holidays of a country (and subdivision) in one year, from the `holidays` library."""
    table = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return frozenset(table.keys())


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    return ZoneInfo(name)


@lru_cache(maxsize=65536)
def _is_business_day(
    working_days: frozenset[int], regions: tuple[tuple[str, str | None], ...], day: date
) -> bool:
    if day.isoweekday() not in working_days:
        return False
    return not any(day in public_holidays(c, s, day.year) for c, s in regions)


class BusinessCalendar:
    """The carrier's working weekdays minus the public holidays of some regions."""

    __slots__ = ("regions", "working_days")

    def __init__(self, working_days: frozenset[int], regions: tuple[tuple[str, str | None], ...]):
        if not working_days:
            raise ValueError("a calendar needs at least one working weekday")
        self.working_days = working_days
        self.regions = regions

    def is_business_day(self, day: date) -> bool:
        return _is_business_day(self.working_days, self.regions, day)

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after `day`."""
        candidate = day
        for _ in range(_MAX_SCAN_DAYS):
            candidate += timedelta(days=1)
            if self.is_business_day(candidate):
                return candidate
        raise ValueError(f"no business day within a year after {day}")

    def on_or_after(self, day: date) -> date:
        return day if self.is_business_day(day) else self.next_business_day(day)

    def add_business_days(self, start: date, days: int) -> date:
        current = start
        for _ in range(days):
            current = self.next_business_day(current)
        return current


def ship_date(
    handover_at: datetime, origin_time_zone: str, cutoff_local: time, calendar: BusinessCalendar
) -> date:
    """The day the carrier takes the parcel, from the handover moment and the local cut-off."""
    if handover_at.tzinfo is None:
        raise ValueError("handover_at must be timezone-aware")
    local = handover_at.astimezone(zone(origin_time_zone))
    today = local.date()
    if calendar.is_business_day(today) and local.time().replace(tzinfo=None) <= cutoff_local:
        return today
    return calendar.next_business_day(today)


def estimated_delivery_date(
    ship: date, transit_days: int, transit_calendar: BusinessCalendar
) -> date:
    return transit_calendar.add_business_days(ship, transit_days)


def meets_promise(
    delivery_day: date,
    delivery_start: time,
    delivery_end: time,
    promised_by: datetime | None,
    window: DeliveryWindow | None,
) -> bool:
    """Whether delivery on `delivery_day` in the service's hours keeps the promise and window."""
    if promised_by is not None:
        latest = datetime.combine(delivery_day, delivery_end, tzinfo=promised_by.tzinfo)
        if latest > promised_by:
            return False
    if window is not None:
        if delivery_day != window.start.date():
            return False
        opens = datetime.combine(delivery_day, delivery_start, tzinfo=window.start.tzinfo)
        closes = datetime.combine(delivery_day, delivery_end, tzinfo=window.start.tzinfo)
        if not (opens < window.end and window.start < closes):
            return False
    return True


def promise_deadline(
    promised_by: datetime | None,
    window: DeliveryWindow | None,
    estimated_day: date,
    delivery_end: time,
    fallback_tz: tzinfo,
) -> datetime:
    """The moment by which delivery counts as on time: the promise, the window's end,
    or else the end of the advertised delivery day."""
    candidates = [moment for moment in (promised_by, window.end if window else None) if moment]
    if candidates:
        return min(candidates)
    return datetime.combine(estimated_day, delivery_end, tzinfo=fallback_tz)
