"""Value types shared by every event: money, time, places, parcels.

Units are fixed by the contract: grams, millimetres, money as integer minor
units with an ISO 4217 code, countries as ISO 3166-1 alpha-2, times RFC 3339
with an explicit offset. The types below make the wrong thing unrepresentable
where msgspec can check it at decode time (a naive datetime, a float amount).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with offset")]
CountryCode = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, upper case")
]
CurrencyCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
MinorUnits = Annotated[int, msgspec.Meta(description="integer minor units (cents), never a float")]
Grams = Annotated[int, msgspec.Meta(ge=0, description="grams")]
Millimetres = Annotated[int, msgspec.Meta(ge=0, description="millimetres")]
NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
TenantId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
CarrierCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]

ServiceLevel = Literal["same_day", "next_day", "two_day", "standard", "pickup_point"]
Channel = Literal["email", "sms", "webhook"]


class Frozen(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False, gc=False):
    """Base for every contract value: immutable, keyword-only, order-stable; like `Event`,
    not tracked by the cycle collector (decision 0009)."""


class Money(Frozen, frozen=True, kw_only=True):
    amount: MinorUnits
    currency: CurrencyCode

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(amount=self.amount + other.amount, currency=self.currency)


class Location(Frozen, frozen=True, kw_only=True):
    """Where a scan happened; every part optional because carriers vary."""

    city: str | None = None
    postal_code: str | None = None
    country: CountryCode | None = None


class Address(Frozen, frozen=True, kw_only=True):
    name: NonEmptyStr
    line1: NonEmptyStr
    line2: str | None = None
    city: NonEmptyStr
    postal_code: NonEmptyStr
    country: CountryCode
    email: str | None = None
    phone: str | None = None
    instructions: str | None = None


class DeliveryWindow(Frozen, frozen=True, kw_only=True):
    start: AwareDatetime
    end: AwareDatetime


class Parcel(Frozen, frozen=True, kw_only=True):
    parcel_id: NonEmptyStr
    weight_g: Grams
    length_mm: Millimetres
    width_mm: Millimetres
    height_mm: Millimetres
    declared_value: Money | None = None
    origin_location_id: str | None = None
    """Which origin ships this parcel; defaults to the order's `ship_from`."""


class Requirements(Frozen, frozen=True, kw_only=True):
    signature: bool = False
    min_age: Annotated[int, msgspec.Meta(ge=0, le=99)] = 0
    cold_chain: bool = False


class Preferences(Frozen, frozen=True, kw_only=True):
    channels: list[Channel] = []
    locale: str = "en-GB"
    opted_out: bool = False


class Reason(Frozen, frozen=True, kw_only=True):
    """A machine-readable reason: a stable code, the field it concerns, words for people."""

    code: str
    field: str | None = None
    message: str = ""
    value: str | None = None


class Proof(Frozen, frozen=True, kw_only=True):
    signed_by: str | None = None
    photo_ref: str | None = None
    safe_place: str | None = None


def lane_of(origin_country: str, origin_postal: str, dest_country: str, dest_postal: str) -> str:
    """A delivery lane at postal-region granularity, e.g. `DE-10>DE-80` (KPIs, transit history)."""
    return f"{origin_country}-{origin_postal[:2]}>{dest_country}-{dest_postal[:2]}"
