"""Ship dates, business days and promises against hand-checked calendars.

Holidays used below (checked with the `holidays` library, v0.108):
DE 2027-03-26 Good Friday, 2027-03-29 Easter Monday; NL 2027-04-27 King's Day;
BY (Bavaria) 2027-01-06 Epiphany, which Berlin does not observe.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from handoff_events.contracts import ShipmentRequested
from handoff_events.values import DeliveryWindow
from handoff_rate_shopping.domain.catalogue import Catalogue
from handoff_rate_shopping.domain.delivery_dates import (
    BusinessCalendar,
    estimated_delivery_date,
    meets_promise,
    public_holidays,
    ship_date,
)
from handoff_rate_shopping.domain.rating import rate_with_cards

MON_FRI = frozenset({1, 2, 3, 4, 5})
MON_SAT = frozenset({1, 2, 3, 4, 5, 6})
CET = timezone(timedelta(hours=1))
DE = BusinessCalendar(MON_FRI, (("DE", None),))


def test_the_holidays_this_file_relies_on() -> None:
    assert date(2027, 3, 26) in public_holidays("DE", None, 2027)  # Good Friday
    assert date(2027, 3, 29) in public_holidays("DE", None, 2027)  # Easter Monday
    assert date(2027, 4, 27) in public_holidays("NL", None, 2027)  # King's Day
    assert date(2027, 4, 27) not in public_holidays("DE", None, 2027)
    assert date(2027, 1, 6) in public_holidays("DE", "BY", 2027)  # Epiphany in Bavaria
    assert date(2027, 1, 6) not in public_holidays("DE", "BE", 2027)


def test_cutoff_missed_on_the_thursday_before_good_friday() -> None:
    # Thu 2027-03-25 17:30 UTC = 18:30 CET (summer time starts 28 March): after the 17:00 cut-off.
    handed_over = datetime(2027, 3, 25, 17, 30, tzinfo=UTC)
    # Fri 26 Good Friday, Sat 27 / Sun 28 weekend, Mon 29 Easter Monday → ships Tue 30 March.
    shipped = ship_date(handed_over, "Europe/Berlin", time(17, 0), DE)
    assert shipped == date(2027, 3, 30)
    # one transit business day → Wed 31 March
    assert estimated_delivery_date(shipped, 1, DE) == date(2027, 3, 31)
    # 16:00 UTC = 17:00 CET is exactly the cut-off: still ships that Thursday
    assert ship_date(
        datetime(2027, 3, 25, 16, 0, tzinfo=UTC), "Europe/Berlin", time(17, 0), DE
    ) == date(2027, 3, 25)


def test_time_zone_boundary_is_the_local_day_that_counts() -> None:
    saturdays = BusinessCalendar(MON_SAT, (("DE", None),))
    # Fri 2026-11-20 23:30 UTC is already Sat 00:30 in Berlin. Read in UTC it would be "Friday after
    # the cut-off" (→ Saturday anyway for a Mon–Sat carrier, but Monday for a Mon–Fri one).
    late_friday_utc = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    assert ship_date(late_friday_utc, "Europe/Berlin", time(17, 0), saturdays) == date(2026, 11, 21)
    assert ship_date(late_friday_utc, "Europe/Berlin", time(17, 0), DE) == date(2026, 11, 23)
    # Mon 2026-11-23 23:30 UTC = Tue 00:30 Berlin: before Tuesday's cut-off → ships Tuesday
    assert ship_date(
        datetime(2026, 11, 23, 23, 30, tzinfo=UTC), "Europe/Berlin", time(17, 0), DE
    ) == date(2026, 11, 24)
    # 16:30 UTC is 16:30 in London (before the cut-off) but 17:30 in Berlin (after it)
    assert ship_date(
        datetime(2026, 11, 23, 16, 30, tzinfo=UTC), "Europe/London", time(17, 0), DE
    ) == date(2026, 11, 23)
    assert ship_date(
        datetime(2026, 11, 23, 16, 30, tzinfo=UTC), "Europe/Berlin", time(17, 0), DE
    ) == date(2026, 11, 24)


def test_naive_handover_is_refused() -> None:
    with pytest.raises(ValueError):
        ship_date(datetime(2026, 11, 23, 10, 0), "Europe/Berlin", time(17, 0), DE)


def test_a_destination_holiday_stops_cross_border_transit() -> None:
    both = BusinessCalendar(MON_FRI, (("DE", None), ("NL", None)))
    # Mon 2027-04-26 ships; Tue 27 is King's Day in NL → Wed 28 (1), Thu 29 (2)
    assert estimated_delivery_date(date(2027, 4, 26), 2, both) == date(2027, 4, 29)
    assert estimated_delivery_date(date(2027, 4, 26), 2, DE) == date(2027, 4, 28)


def test_regional_holiday_at_the_hub() -> None:
    bavaria = BusinessCalendar(MON_FRI, (("DE", "BY"),))
    berlin = BusinessCalendar(MON_FRI, (("DE", "BE"),))
    morning = datetime(2027, 1, 6, 9, 0, tzinfo=UTC)  # Wed 10:00 CET, Epiphany
    assert ship_date(morning, "Europe/Berlin", time(17, 0), bavaria) == date(2027, 1, 7)
    assert ship_date(morning, "Europe/Berlin", time(17, 0), berlin) == date(2027, 1, 6)


def test_promises_and_windows() -> None:
    day = date(2026, 11, 21)
    promise = datetime(2026, 11, 21, 20, 0, tzinfo=CET)
    assert meets_promise(day, time(8), time(18), promise, None)  # delivered by 18:00 ≤ 20:00
    assert not meets_promise(
        day, time(18), time(22), promise, None
    )  # an evening courier may come at 22:00
    assert not meets_promise(day + timedelta(days=1), time(8), time(18), promise, None)
    assert meets_promise(
        day - timedelta(days=1), time(18), time(22), promise, None
    )  # the day before is fine
    window = DeliveryWindow(
        start=datetime(2026, 11, 21, 17, 0, tzinfo=CET),
        end=datetime(2026, 11, 21, 20, 0, tzinfo=CET),
    )
    assert meets_promise(day, time(18), time(22), None, window)  # 18–22 overlaps 17–20
    assert meets_promise(day, time(8), time(18), None, window)  # 08–18 overlaps 17–20
    assert not meets_promise(day, time(8), time(17), None, window)  # ends as the window opens
    assert not meets_promise(day - timedelta(days=1), time(8), time(18), None, window)  # wrong day


def test_quote_dates_for_a_thursday_evening_order_before_easter(
    catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    shipment = shipment_factory(
        service_level="next_day",
        requested_at=datetime(2027, 3, 25, 17, 30, tzinfo=UTC),
        promised_by=datetime(2027, 3, 26, 20, 0, tzinfo=CET),
    )
    by_service = {(q.carrier, q.service): q for q in rate_with_cards(catalogue, shipment).quotes}
    express = by_service["swift", "express"]
    assert (express.ship_date, express.estimated_delivery_date) == (
        date(2027, 3, 30),
        date(2027, 3, 31),
    )
    assert express.meets_promise is False
    assert express.on_time_probability == 0.0
    assert express.transit_basis == "advertised"
    # Gigly works every day except public holidays: Fri 26 and Mon 29 are out, Sat 27 / Sun 28 not.
    evening = by_service["gigly", "tomorrow_evening"]
    assert (evening.ship_date, evening.estimated_delivery_date) == (
        date(2027, 3, 27),
        date(2027, 3, 28),
    )
