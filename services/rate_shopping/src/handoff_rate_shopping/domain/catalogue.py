"""The carrier catalogue as plain, immutable values.

This module owns the *shape* of what Handoff knows about a carrier: the
services it sells, where it delivers (coverage), how it zones a lane, its
weight breaks per zone, its dimensional-weight divisor, surcharges, tax,
currency, the hubs that collect from our origins (with their cut-offs and
daily capacity), the weekdays it works and, optionally, its own quoting API.
Loading and validating the TOML files is an adapter's job
(`handoff_rate_shopping.adapters.catalogue_files`); the values here are what
the pricing and delivery-date functions consume.

Units: grams, millimetres, money in integer minor units of the carrier's
currency, percentages in basis points (1 bp = 0.01 %), so nothing here is a float
except the advertised on-time rate, which is a probability, not money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Literal

from handoff_events.values import ServiceLevel

SERVICE_LEVELS: tuple[ServiceLevel, ...] = (
    "same_day",
    "next_day",
    "two_day",
    "standard",
    "pickup_point",
)

SPEED_RANK: Mapping[ServiceLevel, int] = {
    "same_day": 0,
    "next_day": 1,
    "two_day": 2,
    "standard": 3,
    "pickup_point": 3,
}
"""Home-delivery speed order; a faster home service also fulfils a slower request."""

DEFAULT_ON_TIME_RATE: Mapping[ServiceLevel, float] = {
    "same_day": 0.90,
    "next_day": 0.92,
    "two_day": 0.94,
    "standard": 0.95,
    "pickup_point": 0.95,
}
"""On-time probability assumed when a lane has no delivery history (see docs/rating.md)."""

Weekday = Literal[1, 2, 3, 4, 5, 6, 7]
"""ISO weekday: 1 = Monday … 7 = Sunday."""


def normalise_postal(code: str) -> str:
    """Postal codes compare without spaces or dashes, upper case (`1043 AB` → `1043AB`)."""
    return code.replace(" ", "").replace("-", "").upper()


@dataclass(frozen=True, slots=True)
class PostalRange:
    """Inclusive range of postal codes, compared on the first `len(low)` characters."""

    low: str
    high: str

    def contains(self, postal_code: str) -> bool:
        head = normalise_postal(postal_code)[: len(self.low)]
        return len(head) == len(self.low) and self.low <= head <= self.high


@dataclass(frozen=True, slots=True)
class CountryCoverage:
    """Where a carrier delivers in one country; no ranges means the whole country."""

    country: str
    postal_ranges: tuple[PostalRange, ...] = ()

    def covers(self, country: str, postal_code: str) -> bool:
        if country != self.country:
            return False
        return not self.postal_ranges or any(r.contains(postal_code) for r in self.postal_ranges)


def covered(coverage: tuple[CountryCoverage, ...], country: str, postal_code: str) -> bool:
    return any(c.covers(country, postal_code) for c in coverage)


@dataclass(frozen=True, slots=True)
class ZoneRule:
    """One row of a zone chart. Rules are tried in file order; the first match names the zone.

    A rule matches when both countries match, the origin/destination postal code
    starts with one of the listed prefixes (empty list: any), and, when
    `same_prefix_len` > 0, both postal codes share their first that many characters
    (how a national post says "local": same two-digit region).
    """

    zone: str
    origin_country: str
    dest_country: str
    origin_prefixes: tuple[str, ...] = ()
    dest_prefixes: tuple[str, ...] = ()
    same_prefix_len: int = 0

    def matches(
        self, origin_country: str, origin_postal: str, dest_country: str, dest_postal: str
    ) -> bool:
        if origin_country != self.origin_country or dest_country != self.dest_country:
            return False
        origin = normalise_postal(origin_postal)
        dest = normalise_postal(dest_postal)
        if self.origin_prefixes and not origin.startswith(self.origin_prefixes):
            return False
        if self.dest_prefixes and not dest.startswith(self.dest_prefixes):
            return False
        if self.same_prefix_len:
            n = self.same_prefix_len
            return len(origin) >= n and origin[:n] == dest[:n]
        return True


@dataclass(frozen=True, slots=True)
class WeightBreak:
    """Price per zone for a parcel whose billable weight is at most `max_g`."""

    max_g: int
    prices: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Surcharges:
    """A carrier's surcharge table. `None` means the option is not offered at all."""

    fuel_bp: int = 0
    """Fuel surcharge in basis points of the base price."""
    residential_per_parcel: int = 0
    """Per parcel delivered to a home (every service except pickup_point: Handoff ships B2C)."""
    remote_area_per_parcel: int = 0
    remote_area_postal_prefixes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Country → destination postal prefixes that count as remote (islands, mountains)."""
    oversize_per_parcel: int = 0
    oversize_longest_side_mm: int | None = None
    signature: int | None = None
    """Per shipment, when the shipment requires a signature."""
    age_check: int | None = None
    """Per shipment, when the shipment requires a minimum age."""
    cold_chain_per_parcel: int | None = None

    def is_remote(self, country: str, postal_code: str) -> bool:
        prefixes = self.remote_area_postal_prefixes.get(country, ())
        return bool(prefixes) and normalise_postal(postal_code).startswith(prefixes)


@dataclass(frozen=True, slots=True)
class Service:
    """One product a carrier sells, e.g. Swift `express` (next_day)."""

    code: str
    service_level: ServiceLevel
    transit_days: int
    """Advertised transit in business days from the ship date (0 = delivered on the ship date)."""
    weight_breaks: tuple[WeightBreak, ...]
    """Ascending by `max_g`; a heavier parcel cannot travel with this service."""
    delivery_start: time
    delivery_end: time
    """Local hours in which this service delivers (an evening service: 18:00–22:00)."""
    max_longest_side_mm: int
    coverage: tuple[CountryCoverage, ...] | None = None
    """Destination coverage of this service; None = the carrier's coverage."""
    cutoff_local: time | None = None
    """A service-specific hub cut-off (same-day is often earlier); None = the hub's."""
    on_time_rate: float | None = None
    """Advertised on-time rate; None = DEFAULT_ON_TIME_RATE for the service level."""
    transit_days_by_zone: Mapping[str, int] = field(default_factory=dict)
    """Zone-specific transit days (a cross-border lane is slower); others use `transit_days`."""

    def transit_days_for(self, zone: str) -> int:
        return self.transit_days_by_zone.get(zone, self.transit_days)

    @property
    def max_weight_g(self) -> int:
        return self.weight_breaks[-1].max_g

    @property
    def advertised_on_time_rate(self) -> float:
        return (
            self.on_time_rate
            if self.on_time_rate is not None
            else DEFAULT_ON_TIME_RATE[self.service_level]
        )


@dataclass(frozen=True, slots=True)
class Hub:
    """Where a carrier collects from our origins; capacity buckets are per (carrier, hub, day)."""

    hub_id: str
    country: str
    time_zone: str
    cutoff_local: time
    daily_capacity: int
    """Informational: carrier allocation owns the capacity buckets."""
    origin_location_ids: tuple[str, ...] = ()
    origin_postal_prefixes: tuple[str, ...] = ()
    """Origins without a known location id (a customer sending a return) match by postal prefix."""
    subdivision: str | None = None
    """ISO 3166-2 subdivision for regional holidays at the hub (e.g. `BY`)."""


@dataclass(frozen=True, slots=True)
class QuoteApi:
    """A carrier's own quoting API; the rate card is then only used for services and dates."""

    url: str
    timeout_s: float = 1.0
    attempts: int = 2
    """Total attempts within the budget (1 = no retry)."""
    budget_s: float = 2.5
    """Upper bound on the time spent on this carrier for one shipment, retries included."""
    failure_threshold: int = 3
    open_for_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Carrier:
    code: str
    name: str
    profile: str
    currency: str
    dimensional_divisor: int
    """mm³ per gram (numerically the usual cm³ per kg): dimensional g = ceil(L×W×H / divisor)."""
    tax_rate_bp: int
    working_days: frozenset[int]
    coverage: tuple[CountryCoverage, ...]
    zones: tuple[ZoneRule, ...]
    hubs: tuple[Hub, ...]
    services: tuple[Service, ...]
    surcharges: Surcharges = Surcharges()
    tax_rate_bp_by_origin_country: Mapping[str, int] = field(default_factory=dict)
    quote_api: QuoteApi | None = None

    def tax_rate_for(self, origin_country: str) -> int:
        return self.tax_rate_bp_by_origin_country.get(origin_country, self.tax_rate_bp)

    def zone_for(
        self, origin_country: str, origin_postal: str, dest_country: str, dest_postal: str
    ) -> str | None:
        for rule in self.zones:
            if rule.matches(origin_country, origin_postal, dest_country, dest_postal):
                return rule.zone
        return None

    def hub_for(self, location_id: str, country: str, postal_code: str) -> Hub | None:
        """The hub listing the origin's location id, else the longest matching postal prefix."""
        for hub in self.hubs:
            if location_id in hub.origin_location_ids:
                return hub
        best: tuple[int, Hub] | None = None
        postal = normalise_postal(postal_code)
        for hub in self.hubs:
            if hub.country != country:
                continue
            for prefix in hub.origin_postal_prefixes:
                if postal.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), hub)
        return None if best is None else best[1]

    @property
    def capabilities(self) -> tuple[str, ...]:
        s = self.surcharges
        caps = [
            name
            for name, offered in (
                ("signature", s.signature is not None),
                ("age_check", s.age_check is not None),
                ("cold_chain", s.cold_chain_per_parcel is not None),
            )
            if offered
        ]
        return tuple(caps)


@dataclass(frozen=True, slots=True)
class Catalogue:
    carriers: tuple[Carrier, ...]

    def carrier(self, code: str) -> Carrier | None:
        return next((c for c in self.carriers if c.code == code), None)
