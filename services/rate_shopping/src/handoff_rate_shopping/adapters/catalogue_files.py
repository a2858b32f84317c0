"""Loading the carrier catalogue from TOML files (one file per carrier).

This module owns the file format of `deploy/config/carriers/*.toml` and its
validation. Every problem is a `CatalogueError` naming the file, the entry
(e.g. `services[1]`) and the field (e.g. `transit_days`), so a broken
catalogue fails at start-up with a message an operator can act on. The
format is documented in docs/rating.md and by the sample files.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import msgspec
from handoff_events.values import CarrierCode, CountryCode, CurrencyCode, ServiceLevel

from handoff_rate_shopping.domain.catalogue import (
    Carrier,
    Catalogue,
    CountryCoverage,
    Hub,
    PostalRange,
    QuoteApi,
    Service,
    Surcharges,
    WeightBreak,
    ZoneRule,
)

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(gt=0)]
LocalTime = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM")]
Prefix = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Z]{1,10}$")]
DayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_ISO_DAY = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; names the file, the entry and the field."""

    def __init__(self, file: str, entry: str, field: str, message: str):
        location = f"{entry}." if entry else ""
        super().__init__(f"{file}: {location}{field}: {message}")
        self.file = file
        self.entry = entry
        self.field = field
        self.message = message


class _Doc(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """File schema: unknown keys are errors (a typo must not silently drop a surcharge)."""


class WeightBreakDoc(_Doc, frozen=True, kw_only=True):
    max_g: Positive
    prices: dict[str, NonNegative]


class CoverageDoc(_Doc, frozen=True, kw_only=True):
    country: CountryCode
    postal_ranges: list[tuple[str, str]] = []


class ServiceDoc(_Doc, frozen=True, kw_only=True):
    code: CarrierCode
    service_level: ServiceLevel
    transit_days: NonNegative
    delivery_hours: tuple[LocalTime, LocalTime]
    max_longest_side_mm: Positive
    weight_breaks: list[WeightBreakDoc]
    coverage: list[CoverageDoc] | None = None
    cutoff_local: LocalTime | None = None
    on_time_rate: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    transit_days_by_zone: dict[str, NonNegative] = {}


class ZoneDoc(_Doc, frozen=True, kw_only=True):
    zone: Annotated[str, msgspec.Meta(min_length=1)]
    origin_country: CountryCode
    dest_country: CountryCode
    origin_prefixes: list[Prefix] = []
    dest_prefixes: list[Prefix] = []
    same_prefix_len: NonNegative = 0


class HubDoc(_Doc, frozen=True, kw_only=True):
    hub_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9][A-Z0-9-]{0,31}$")]
    country: CountryCode
    time_zone: str
    cutoff_local: LocalTime
    daily_capacity: NonNegative
    origin_location_ids: list[str] = []
    origin_postal_prefixes: list[Prefix] = []
    subdivision: str | None = None


class SurchargesDoc(_Doc, frozen=True, kw_only=True):
    fuel_bp: NonNegative = 0
    residential_per_parcel: NonNegative = 0
    remote_area_per_parcel: NonNegative = 0
    remote_area_postal_prefixes: dict[CountryCode, list[Prefix]] = {}
    oversize_per_parcel: NonNegative = 0
    oversize_longest_side_mm: Positive | None = None
    signature: NonNegative | None = None
    age_check: NonNegative | None = None
    cold_chain_per_parcel: NonNegative | None = None


class QuoteApiDoc(_Doc, frozen=True, kw_only=True):
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://")]
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    attempts: Annotated[int, msgspec.Meta(ge=1, le=5)] = 2
    budget_s: Annotated[float, msgspec.Meta(gt=0)] = 2.5
    failure_threshold: Positive = 3
    open_for_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0


class CarrierDoc(_Doc, frozen=True, kw_only=True):
    code: CarrierCode
    name: Annotated[str, msgspec.Meta(min_length=1)]
    profile: str = ""
    currency: CurrencyCode
    dimensional_divisor: Positive
    tax_rate_bp: NonNegative
    tax_rate_bp_by_origin_country: dict[CountryCode, NonNegative] = {}
    working_days: list[DayName]
    coverage: list[CoverageDoc]
    zones: list[ZoneDoc]
    hubs: list[HubDoc]
    services: list[ServiceDoc]
    surcharges: SurchargesDoc = SurchargesDoc()
    quote_api: QuoteApiDoc | None = None


_PATH_RE = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING_RE = re.compile(r"missing required field `(?P<name>[^`]+)`")
_UNKNOWN_RE = re.compile(r"unknown field `(?P<name>[^`]+)`")


def _split_path(path: str) -> tuple[str, str]:
    """`.services[0].transit_days` → ("services[0]", "transit_days"); an element of a list
    or dict of scalars names its container (`.prices[...]` → field `prices`)."""
    parts = re.findall(r"\.[^.\[]+|\[[^\]]*\]", path)
    if len(parts) > 1 and parts[-1].startswith("["):
        index = parts.pop()
        if index != "[...]":  # msgspec writes a dict key as [...]; a list index is worth keeping
            parts[-1] += index
    if not parts:
        return "", "$"
    *entry, last = parts
    return "".join(entry).lstrip("."), last.lstrip(".")


def _schema_error(file: str, exc: msgspec.ValidationError) -> CatalogueError:
    text = str(exc)
    match = _PATH_RE.search(text)
    message = text[: match.start()] if match else text
    entry, field = _split_path(match.group("path")) if match else ("", "$")
    named = _MISSING_RE.search(message) or _UNKNOWN_RE.search(message)
    if named:
        entry = f"{entry}.{field}".strip(".") if field != "$" else entry
        field = named.group("name")
    return CatalogueError(file, entry, field, message)


def _time(value: str) -> time:
    return time.fromisoformat(value)


def _check_unique(file: str, entry: str, field: str, values: Iterable[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise CatalogueError(file, entry, field, f"duplicate value {value!r}")
        seen.add(value)


def _check_region(file: str, entry: str, field: str, country: str, subdivision: str | None) -> None:
    try:
        holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as exc:
        raise CatalogueError(file, entry, field, f"no holiday calendar: {exc}") from None


def _coverage(file: str, entry: str, docs: list[CoverageDoc]) -> tuple[CountryCoverage, ...]:
    out = []
    for i, doc in enumerate(docs):
        ranges = []
        for j, (low, high) in enumerate(doc.postal_ranges):
            low_n, high_n = low.replace(" ", "").upper(), high.replace(" ", "").upper()
            if len(low_n) != len(high_n) or not low_n or low_n > high_n:
                raise CatalogueError(
                    file,
                    f"{entry}[{i}]",
                    f"postal_ranges[{j}]",
                    f"range {low!r}..{high!r} must have equal-length bounds with low ≤ high",
                )
            ranges.append(PostalRange(low_n, high_n))
        out.append(CountryCoverage(doc.country, tuple(ranges)))
    return tuple(out)


def carrier_from_doc(file: str, doc: CarrierDoc) -> Carrier:
    """Semantic checks the schema cannot express, then the domain value."""
    if Path(file).stem != doc.code:
        raise CatalogueError(
            file, "", "code", f"{doc.code!r} must equal the file name {Path(file).stem!r}"
        )
    if not doc.working_days:
        raise CatalogueError(file, "", "working_days", "at least one working day is required")
    if not doc.services:
        raise CatalogueError(file, "", "services", "a carrier needs at least one service")
    _check_unique(file, "", "services", (s.code for s in doc.services))
    _check_unique(file, "", "hubs", (h.hub_id for h in doc.hubs))
    zone_names = {z.zone for z in doc.zones}
    if not zone_names:
        raise CatalogueError(file, "", "zones", "a zone chart needs at least one rule")
    for i, z in enumerate(doc.zones):
        if z.same_prefix_len and z.origin_country != z.dest_country:
            raise CatalogueError(
                file, f"zones[{i}]", "same_prefix_len", "only meaningful within one country"
            )
    for i, c in enumerate(doc.coverage):
        _check_region(file, f"coverage[{i}]", "country", c.country, None)

    hubs = []
    for i, h in enumerate(doc.hubs):
        entry = f"hubs[{i}]"
        try:
            ZoneInfo(h.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CatalogueError(
                file, entry, "time_zone", f"unknown IANA time zone {h.time_zone!r}"
            ) from None
        _check_region(file, entry, "subdivision", h.country, h.subdivision)
        if not h.origin_location_ids and not h.origin_postal_prefixes:
            raise CatalogueError(
                file,
                entry,
                "origin_location_ids",
                "a hub must list origin location ids or postal prefixes",
            )
        hubs.append(
            Hub(
                hub_id=h.hub_id,
                country=h.country,
                time_zone=h.time_zone,
                cutoff_local=_time(h.cutoff_local),
                daily_capacity=h.daily_capacity,
                origin_location_ids=tuple(h.origin_location_ids),
                origin_postal_prefixes=tuple(h.origin_postal_prefixes),
                subdivision=h.subdivision,
            )
        )

    services = []
    for i, s in enumerate(doc.services):
        entry = f"services[{i}]"
        start, end = _time(s.delivery_hours[0]), _time(s.delivery_hours[1])
        if start >= end:
            raise CatalogueError(
                file,
                entry,
                "delivery_hours",
                f"{s.delivery_hours[0]} must be before {s.delivery_hours[1]}",
            )
        if not s.weight_breaks:
            raise CatalogueError(
                file, entry, "weight_breaks", "at least one weight break is required"
            )
        previous = 0
        for j, wb in enumerate(s.weight_breaks):
            wb_entry = f"{entry}.weight_breaks[{j}]"
            if wb.max_g <= previous:
                raise CatalogueError(
                    file,
                    wb_entry,
                    "max_g",
                    f"{wb.max_g} must be greater than the previous break {previous}",
                )
            previous = wb.max_g
            missing = sorted(zone_names - wb.prices.keys())
            if missing:
                raise CatalogueError(
                    file, wb_entry, "prices", f"no price for zone(s) {', '.join(missing)}"
                )
            unknown = sorted(wb.prices.keys() - zone_names)
            if unknown:
                raise CatalogueError(
                    file,
                    wb_entry,
                    "prices",
                    f"zone(s) {', '.join(unknown)} are not in the zone chart",
                )
        unknown_zones = sorted(s.transit_days_by_zone.keys() - zone_names)
        if unknown_zones:
            raise CatalogueError(
                file,
                entry,
                "transit_days_by_zone",
                f"zone(s) {', '.join(unknown_zones)} are not in the zone chart",
            )
        services.append(
            Service(
                code=s.code,
                service_level=s.service_level,
                transit_days=s.transit_days,
                weight_breaks=tuple(
                    WeightBreak(wb.max_g, dict(wb.prices)) for wb in s.weight_breaks
                ),
                delivery_start=start,
                delivery_end=end,
                max_longest_side_mm=s.max_longest_side_mm,
                coverage=None
                if s.coverage is None
                else _coverage(file, f"{entry}.coverage", s.coverage),
                cutoff_local=None if s.cutoff_local is None else _time(s.cutoff_local),
                on_time_rate=s.on_time_rate,
                transit_days_by_zone=dict(s.transit_days_by_zone),
            )
        )

    sc = doc.surcharges
    if sc.oversize_per_parcel and sc.oversize_longest_side_mm is None:
        raise CatalogueError(
            file,
            "surcharges",
            "oversize_longest_side_mm",
            "required when oversize_per_parcel is set",
        )
    api = doc.quote_api
    return Carrier(
        code=doc.code,
        name=doc.name,
        profile=doc.profile,
        currency=doc.currency,
        dimensional_divisor=doc.dimensional_divisor,
        tax_rate_bp=doc.tax_rate_bp,
        tax_rate_bp_by_origin_country=dict(doc.tax_rate_bp_by_origin_country),
        working_days=frozenset(_ISO_DAY[d] for d in doc.working_days),
        coverage=_coverage(file, "coverage", doc.coverage),
        zones=tuple(
            ZoneRule(
                zone=z.zone,
                origin_country=z.origin_country,
                dest_country=z.dest_country,
                origin_prefixes=tuple(z.origin_prefixes),
                dest_prefixes=tuple(z.dest_prefixes),
                same_prefix_len=z.same_prefix_len,
            )
            for z in doc.zones
        ),
        hubs=tuple(hubs),
        services=tuple(services),
        surcharges=Surcharges(
            fuel_bp=sc.fuel_bp,
            residential_per_parcel=sc.residential_per_parcel,
            remote_area_per_parcel=sc.remote_area_per_parcel,
            remote_area_postal_prefixes={
                k: tuple(v) for k, v in sc.remote_area_postal_prefixes.items()
            },
            oversize_per_parcel=sc.oversize_per_parcel,
            oversize_longest_side_mm=sc.oversize_longest_side_mm,
            signature=sc.signature,
            age_check=sc.age_check,
            cold_chain_per_parcel=sc.cold_chain_per_parcel,
        ),
        quote_api=None
        if api is None
        else QuoteApi(
            url=api.url,
            timeout_s=api.timeout_s,
            attempts=api.attempts,
            budget_s=api.budget_s,
            failure_threshold=api.failure_threshold,
            open_for_s=api.open_for_s,
        ),
    )


def parse_carrier(file: str, text: str) -> Carrier:
    """Parse and validate one carrier file's text (`file` is only used in messages)."""
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(file, "", "$", f"not valid TOML: {exc}") from None
    try:
        doc = msgspec.convert(raw, CarrierDoc)
    except msgspec.ValidationError as exc:
        raise _schema_error(file, exc) from None
    return carrier_from_doc(file, doc)


def load_catalogue(directory: Path) -> Catalogue:
    """Every `*.toml` in the directory, in name order (so the catalogue order is stable)."""
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise CatalogueError(str(directory), "", "$", "no carrier files (*.toml) found")
    carriers = [parse_carrier(str(path), path.read_text(encoding="utf-8")) for path in files]
    _check_unique(str(directory), "", "code", (c.code for c in carriers))
    return Catalogue(tuple(carriers))
