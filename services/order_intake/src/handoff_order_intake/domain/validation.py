"""Validating and normalising an order into shipment requests (pure).

`validate_order` never raises: for any `OrderPlaced` value, however messy, it
returns either `Accepted` (one normalised `ShipmentRequested` per origin) or
`Invalid` with every `Reason` found, each naming the JSON path of the field.

The bounds below are the ones the parcel networks Handoff tenders to accept
for a standard parcel (DHL Paket, PostNL, DPD Classic all stop at 31.5 kg):

* weight: 1 g .. 31 500 g (`WEIGHT_MIN_G`, `WEIGHT_MAX_G`);
* each side: 1 mm .. 1 750 mm (`SIDE_MAX_MM`); bulky goods need a freight
  carrier, which is outside Handoff's parcel scope.

Postal-code formats are checked for DE, FR, NL, GB and US and normalised
(NL `1234 ab` → `1234 AB`, GB `sw1a1aa` → `SW1A 1AA`, US `123456789` →
`12345-6789`); other countries get a shape check only. Phone numbers become
E.164 (`phonenumbers`, region = destination country); e-mail addresses are
checked for syntax only (no DNS lookups: validation must be pure).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email
from handoff_events.contracts import OrderLine, OrderPlaced, ShipmentRequested
from handoff_events.ids import shipment_id
from handoff_events.values import (
    Address,
    Channel,
    DeliveryWindow,
    Parcel,
    Reason,
    ServiceLevel,
)

from handoff_order_intake.domain.locations import LocationCatalogue
from handoff_order_intake.domain.splitting import OriginPart, split_by_origin

WEIGHT_MIN_G = 1
WEIGHT_MAX_G = 31_500
SIDE_MIN_MM = 1
SIDE_MAX_MM = 1_750
MAX_TEXT = 256
MAX_PARCELS = 100
MAX_LINES = 1_000
SUPPORTED_MIN_AGES = frozenset({0, 16, 18})
"""Age checks carriers offer at the door: none, 16+ (e.g. alcohol in DE), 18+."""

SERVICE_LEVELS: frozenset[str] = frozenset(get_args(ServiceLevel))
CHANNELS: frozenset[str] = frozenset(get_args(Channel))
_ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Accepted:
    """The order is valid: one shipment request per origin, normalised."""

    shipments: tuple[ShipmentRequested, ...]


@dataclass(frozen=True, slots=True)
class Invalid:
    """The order cannot be shipped; every reason found, in field order."""

    reasons: tuple[Reason, ...]


Verdict = Accepted | Invalid


def _show(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return text[:200]


class _Findings:
    """Collects reasons while the validator walks the order."""

    def __init__(self) -> None:
        self.reasons: list[Reason] = []

    def add(self, code: str, field: str, message: str, value: Any = None) -> None:
        self.reasons.append(Reason(code=code, field=field, message=message, value=_show(value)))


# ---- text, countries, currencies -----------------------------------------------------


def _text(value: Any) -> str | None:
    """A trimmed, non-empty string of sane length, or None."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text if 0 < len(text) <= MAX_TEXT else None


def _required_text(found: _Findings, value: Any, field: str) -> str:
    text = _text(value)
    if text is None:
        found.add("required", field, f"a non-empty text of at most {MAX_TEXT} characters", value)
        return ""
    return text


def _optional_text(value: Any) -> str | None:
    return _text(value) if value is not None else None


def is_country(code: Any) -> bool:
    """ISO 3166-1 alpha-2, upper case."""
    if not (isinstance(code, str) and len(code) == 2 and code.isascii() and code.isupper()):
        return False
    return pycountry.countries.get(alpha_2=code) is not None


def is_currency(code: Any) -> bool:
    """ISO 4217 alphabetic code, upper case."""
    if not (isinstance(code, str) and len(code) == 3 and code.isascii() and code.isupper()):
        return False
    return pycountry.currencies.get(alpha_3=code) is not None


# ---- postal codes --------------------------------------------------------------------

_FIVE_DIGITS = re.compile(r"^[0-9]{5}$")
_NL = re.compile(r"^([1-9][0-9]{3})([A-Z]{2})$")
_GB = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")
_US = re.compile(r"^([0-9]{5})-?([0-9]{4})?$")
_GENERIC = re.compile(r"^[A-Z0-9][A-Z0-9 -]{1,10}$")
POSTAL_FORMATS = {
    "DE": "5 digits, e.g. 10119",
    "FR": "5 digits, e.g. 75001",
    "NL": "4 digits and 2 letters, e.g. 1012 AB",
    "GB": "outward and inward code, e.g. SW1A 1AA",
    "US": "ZIP or ZIP+4, e.g. 10001 or 10001-1234",
}


def normalise_postal_code(country: str, raw: str) -> str | None:
    """The canonical form of `raw` for `country`, or None when it is not a valid code there."""
    if not isinstance(raw, str) or len(raw) > 32:
        return None
    compact = "".join(raw.split()).upper()
    if country in ("DE", "FR"):
        return compact if _FIVE_DIGITS.match(compact) else None
    if country == "NL":
        nl = _NL.match(compact)
        # PostNL never issues the letter pairs SA, SD and SS.
        if nl is None or nl.group(2) in ("SA", "SD", "SS"):
            return None
        return f"{nl.group(1)} {nl.group(2)}"
    if country == "GB":
        if compact == "GIR0AA":  # the one non-geographic code (Girobank)
            return "GIR 0AA"
        gb = _GB.match(compact)
        return f"{gb.group(1)} {gb.group(2)}" if gb else None
    if country == "US":
        us = _US.match(compact)
        if us is None:
            return None
        return f"{us.group(1)}-{us.group(2)}" if us.group(2) else us.group(1)
    generic = " ".join(raw.split()).upper()
    return generic if _GENERIC.match(generic) else None


# ---- contact data --------------------------------------------------------------------


def normalise_phone(raw: str, country: str | None) -> str | None:
    """E.164 (`+4930123456`), or None when it is not a valid number (region = destination)."""
    if not isinstance(raw, str) or len(raw) > 64:
        return None
    try:
        number = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str | None:
    """The normalised address (syntax only: no DNS, validation stays pure), or None."""
    if not isinstance(raw, str) or len(raw) > 320:
        return None
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


# ---- the parts of an order -----------------------------------------------------------


def _is_aware(moment: Any) -> bool:
    return isinstance(moment, datetime) and moment.utcoffset() is not None


def _aware(found: _Findings, moment: Any, field: str) -> datetime | None:
    if not _is_aware(moment):
        found.add("invalid_time", field, "an RFC 3339 time with an offset is required", moment)
        return None
    assert isinstance(moment, datetime)
    return moment


def _check_times(found: _Findings, order: OrderPlaced) -> None:
    placed_at = _aware(found, order.placed_at, "$.placed_at")
    promised_by = None
    if order.promised_by is not None:
        promised_by = _aware(found, order.promised_by, "$.promised_by")
        if placed_at and promised_by and promised_by <= placed_at:
            found.add(
                "promise_before_placement",
                "$.promised_by",
                "promised_by must be after placed_at",
                promised_by.isoformat(),
            )
    window: Any = order.delivery_window  # Any: messy values may not be what the type says
    if window is None:
        return
    if not isinstance(window, DeliveryWindow):
        found.add("invalid_window", "$.delivery_window", "a window needs start and end", window)
        return
    start = _aware(found, window.start, "$.delivery_window.start")
    end = _aware(found, window.end, "$.delivery_window.end")
    if start and end and start >= end:
        found.add(
            "window_inverted",
            "$.delivery_window.end",
            "the window must end after it starts",
            end.isoformat(),
        )
    if start and placed_at and start < placed_at:
        found.add(
            "window_before_placement",
            "$.delivery_window.start",
            "the window cannot start before the order was placed",
            start.isoformat(),
        )
    if end and promised_by and end > promised_by:
        found.add(
            "window_after_promise",
            "$.delivery_window.end",
            "the window must end by promised_by",
            end.isoformat(),
        )


def _destination(found: _Findings, ship_to: Any) -> Address | None:
    if not isinstance(ship_to, Address):
        found.add("required", "$.ship_to", "a destination address is required", ship_to)
        return None
    name = _required_text(found, ship_to.name, "$.ship_to.name")
    line1 = _required_text(found, ship_to.line1, "$.ship_to.line1")
    city = _required_text(found, ship_to.city, "$.ship_to.city")
    country = ship_to.country
    country_ok = is_country(country)
    if not country_ok:
        found.add("invalid_country", "$.ship_to.country", "not an ISO 3166-1 alpha-2 code", country)
    postal_code = ""
    if _text(ship_to.postal_code) is None:
        found.add(
            "required", "$.ship_to.postal_code", "a postal code is required", ship_to.postal_code
        )
    elif country_ok:
        normalised = normalise_postal_code(country, ship_to.postal_code)
        if normalised is None:
            shape = POSTAL_FORMATS.get(country, "letters, digits, spaces and hyphens")
            found.add(
                "invalid_postal_code",
                "$.ship_to.postal_code",
                f"not a postal code of {country}: {shape}",
                ship_to.postal_code,
            )
        else:
            postal_code = normalised
    email = None
    if ship_to.email is not None:
        email = normalise_email(ship_to.email)
        if email is None:
            found.add("invalid_email", "$.ship_to.email", "not an e-mail address", ship_to.email)
    phone = None
    if ship_to.phone is not None:
        phone = normalise_phone(ship_to.phone, country if country_ok else None)
        if phone is None:
            found.add(
                "invalid_phone",
                "$.ship_to.phone",
                "not a valid phone number (international format, or national for the destination)",
                ship_to.phone,
            )
    return Address(
        name=name,
        line1=line1,
        line2=_optional_text(ship_to.line2),
        city=city,
        postal_code=postal_code,
        country=country if country_ok else "",
        email=email,
        phone=phone,
        instructions=_optional_text(ship_to.instructions),
    )


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_parcel(found: _Findings, index: int, parcel: Any, seen_ids: set[str]) -> None:
    at = f"$.parcels[{index}]"
    if not isinstance(parcel, Parcel):
        found.add("required", at, "a parcel object is required", parcel)
        return
    parcel_id = _required_text(found, parcel.parcel_id, f"{at}.parcel_id")
    if parcel_id and parcel_id in seen_ids:
        found.add("duplicate_parcel_id", f"{at}.parcel_id", "parcel ids must be unique", parcel_id)
    seen_ids.add(parcel_id)
    if not _int_in(parcel.weight_g, WEIGHT_MIN_G, WEIGHT_MAX_G):
        found.add(
            "weight_out_of_range",
            f"{at}.weight_g",
            f"weight must be {WEIGHT_MIN_G}..{WEIGHT_MAX_G} g",
            parcel.weight_g,
        )
    for side in ("length_mm", "width_mm", "height_mm"):
        value = getattr(parcel, side)
        if not _int_in(value, SIDE_MIN_MM, SIDE_MAX_MM):
            found.add(
                "dimension_out_of_range",
                f"{at}.{side}",
                f"each side must be {SIDE_MIN_MM}..{SIDE_MAX_MM} mm",
                value,
            )
    declared = parcel.declared_value
    if declared is not None:
        if not is_currency(getattr(declared, "currency", None)):
            found.add(
                "invalid_currency",
                f"{at}.declared_value.currency",
                "not an ISO 4217 currency code",
                getattr(declared, "currency", None),
            )
        amount = getattr(declared, "amount", None)
        if not (isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0):
            found.add(
                "invalid_amount",
                f"{at}.declared_value.amount",
                "declared value must be a non-negative integer of minor units",
                amount,
            )


def _check_line(found: _Findings, index: int, line: Any) -> None:
    at = f"$.lines[{index}]"
    if not isinstance(line, OrderLine):
        found.add("required", at, "an order line object is required", line)
        return
    _required_text(found, line.sku, f"{at}.sku")
    if not _int_in(line.quantity, 1, 10_000):
        found.add("invalid_quantity", f"{at}.quantity", "quantity must be 1..10000", line.quantity)


def _check_origins(
    found: _Findings,
    parts: dict[str, OriginPart],
    catalogue: LocationCatalogue,
    cold_chain: bool,
) -> None:
    for origin, part in parts.items():
        # Name the first field that routes to this origin: ship_from if nothing overrides it.
        fields = [
            f"$.parcels[{i}].origin_location_id" if p.origin_location_id is not None else None
            for i, p in part.parcels
        ] + [
            f"$.lines[{i}].origin_location_id" if ln.origin_location_id is not None else None
            for i, ln in part.lines
        ]
        field = next((f for f in fields if f is not None), "$.ship_from.location_id")
        location = catalogue.get(origin)
        if location is None:
            found.add("unknown_location", field, "not a location in the catalogue", origin)
            continue
        if not location.ships_outbound:
            found.add(
                "origin_not_shippable",
                field,
                f"a {location.kind} does not ship customer orders",
                origin,
            )
        if cold_chain and not location.cold_chain:
            found.add(
                "cold_chain_unsupported",
                "$.requirements.cold_chain",
                f"location {origin} cannot hand over temperature-controlled parcels",
                origin,
            )
        if part.lines and not part.parcels:
            index = part.lines[0][0]
            found.add(
                "origin_without_parcels",
                f"$.lines[{index}].origin_location_id",
                "order lines ship from a location that has no parcel in the order",
                origin,
            )


def _check_header(found: _Findings, order: OrderPlaced) -> None:
    if not (isinstance(order.order_id, str) and _ORDER_ID.match(order.order_id)):
        found.add(
            "invalid_order_id",
            "$.order_id",
            "1-64 of A-Z a-z 0-9 . _ : - (not first)",
            order.order_id,
        )
    if order.service_level not in SERVICE_LEVELS:
        found.add(
            "invalid_service_level",
            "$.service_level",
            f"one of {', '.join(sorted(SERVICE_LEVELS))}",
            order.service_level,
        )
    ship_from = order.ship_from
    if ship_from is None or not isinstance(getattr(ship_from, "location_id", None), str):
        found.add("required", "$.ship_from.location_id", "a ship-from location is required")


def _check_requirements(found: _Findings, order: OrderPlaced) -> bool:
    """Returns whether cold chain is required."""
    requirements = order.requirements
    min_age = getattr(requirements, "min_age", 0)
    if not (_int_in(min_age, 0, 99) and min_age in SUPPORTED_MIN_AGES):
        found.add(
            "unsupported_min_age",
            "$.requirements.min_age",
            "carriers check ages 16 and 18 only (0 = no check)",
            min_age,
        )
    channels = getattr(order.preferences, "channels", [])
    if not isinstance(channels, list):
        channels = []
    for index, channel in enumerate(channels):
        if channel not in CHANNELS:
            found.add(
                "invalid_channel",
                f"$.preferences.channels[{index}]",
                f"one of {', '.join(sorted(CHANNELS))}",
                channel,
            )
    return getattr(requirements, "cold_chain", False) is True


def validate_order(
    order: OrderPlaced,
    *,
    tenant_id: str,
    catalogue: LocationCatalogue,
    requested_at: datetime,
) -> Verdict:
    """Validate and normalise `order`; split it into one shipment request per origin.

    `requested_at` stamps the shipment requests (the caller's clock: this
    function reads none). Never raises.
    """
    found = _Findings()
    _check_header(found, order)
    _check_times(found, order)
    destination = _destination(found, order.ship_to)
    parcels = order.parcels if isinstance(order.parcels, list) else []
    lines = order.lines if isinstance(order.lines, list) else []
    if not parcels:
        found.add("required", "$.parcels", "at least one parcel is required")
    elif len(parcels) > MAX_PARCELS:
        found.add("too_many_parcels", "$.parcels", f"at most {MAX_PARCELS} parcels", len(parcels))
    if not lines:
        found.add("required", "$.lines", "at least one order line is required")
    elif len(lines) > MAX_LINES:
        found.add("too_many_lines", "$.lines", f"at most {MAX_LINES} lines", len(lines))
    seen_ids: set[str] = set()
    for index, parcel in enumerate(parcels[:MAX_PARCELS]):
        _check_parcel(found, index, parcel, seen_ids)
    for index, line in enumerate(lines[:MAX_LINES]):
        _check_line(found, index, line)
    cold_chain = _check_requirements(found, order)
    if found.reasons or destination is None:
        # Splitting needs well-formed parcels and lines; report origins only for those.
        well_formed = all(isinstance(p, Parcel) for p in parcels) and all(
            isinstance(ln, OrderLine) for ln in lines
        )
        if parcels and lines and well_formed:
            _check_origins(found, split_by_origin(order), catalogue, cold_chain)
        return Invalid(tuple(found.reasons))
    parts = split_by_origin(order)
    _check_origins(found, parts, catalogue, cold_chain)
    if found.reasons:
        return Invalid(tuple(found.reasons))
    return Accepted(
        tuple(
            ShipmentRequested(
                shipment_id=shipment_id(tenant_id, order.order_id, origin),
                order_id=order.order_id,
                requested_at=requested_at,
                placed_at=order.placed_at,
                service_level=order.service_level,
                origin=catalogue[origin].as_origin(),
                destination=destination,
                parcels=[
                    Parcel(
                        parcel_id=" ".join(p.parcel_id.split()),
                        weight_g=p.weight_g,
                        length_mm=p.length_mm,
                        width_mm=p.width_mm,
                        height_mm=p.height_mm,
                        declared_value=p.declared_value,
                        origin_location_id=origin,
                    )
                    for _, p in part.parcels
                ],
                skus=list(dict.fromkeys(" ".join(ln.sku.split()) for _, ln in part.lines)),
                promised_by=order.promised_by,
                delivery_window=order.delivery_window,
                requirements=order.requirements,
                preferences=order.preferences,
            )
            for origin, part in parts.items()
        )
    )
