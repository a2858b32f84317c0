"""The simulated world's data: marketplaces, destination regions, origin locations, code tables.

Loaded from the project's data files (`deploy/config/sim/marketplaces.toml`,
`deploy/config/locations.toml`, `deploy/config/carrier-codes/<carrier>.toml`)
with stdlib tomllib and validated at load: a broken file stops the simulator
with an error that names the file, the entry and the field. Nothing here
knows about Kafka or HTTP; the generators in `marketplace` and `carriers`
take these values as plain parameters.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handoff_events.values import ServiceLevel

SERVICE_LEVELS: frozenset[str] = frozenset(
    {"same_day", "next_day", "two_day", "standard", "pickup_point"}
)
_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class WorldConfigError(ValueError):
    """A data file the simulator cannot use; names the file, the entry and the field."""

    def __init__(self, source: str, entry: str, field: str, message: str):
        super().__init__(f"{source}: {entry}: {field}: {message}")
        self.source = source
        self.entry = entry
        self.field = field


@dataclass(frozen=True)
class Origin:
    location_id: str
    city: str
    postal_code: str
    country: str
    time_zone: str
    ships_outbound: bool


@dataclass(frozen=True)
class Region:
    name: str
    country: str
    city: str
    postal_ranges: tuple[tuple[str, str], ...]
    phone_prefix: str


@dataclass(frozen=True)
class TenantProfile:
    tenant_id: str
    api_key: str | None
    share: float
    http_share: float
    order_prefix: str
    origins: tuple[str, ...]
    regions: tuple[tuple[str, float], ...]
    service_levels: tuple[tuple[ServiceLevel, float], ...]
    multi_origin: float
    cancel: float
    return_rate: float
    invalid: float
    currency: str
    locale: str


@dataclass(frozen=True)
class StatusCode:
    """One row of a carrier's code table: its own code and what it means canonically."""

    code: str
    status: str
    sub_status: str | None
    description: str


@dataclass(frozen=True)
class CarrierCodes:
    carrier: str
    name: str
    tracking_number_pattern: str
    codes: tuple[StatusCode, ...]
    """In file order: the first code for a (status, sub_status) is the carrier's usual one."""


@dataclass(frozen=True)
class MarketplaceWorld:
    tenants: tuple[TenantProfile, ...]
    regions: Mapping[str, Region]
    origins: Mapping[str, Origin]

    def tenant(self, tenant_id: str) -> TenantProfile:
        for profile in self.tenants:
            if profile.tenant_id == tenant_id:
                return profile
        raise KeyError(tenant_id)


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise WorldConfigError(str(path), "file", "path", "not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise WorldConfigError(str(path), "file", "toml", str(exc)) from None


def _text(doc: Mapping[str, Any], key: str, source: str, entry: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():
        raise WorldConfigError(source, entry, key, f"must be a non-empty string, got {value!r}")
    return value


def _probability(doc: Mapping[str, Any], key: str, source: str, entry: str) -> float:
    value = doc.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise WorldConfigError(
            source, entry, key, f"must be a probability in [0, 1], got {value!r}"
        )
    return float(value)


def _weights(doc: Mapping[str, Any], key: str, source: str, entry: str) -> dict[str, float]:
    value = doc.get(key)
    if not isinstance(value, dict) or not value:
        raise WorldConfigError(source, entry, key, "must be a non-empty table of name = weight")
    out: dict[str, float] = {}
    for name, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise WorldConfigError(
                source, entry, f"{key}.{name}", f"weight must be > 0: {weight!r}"
            )
        out[str(name)] = float(weight)
    return out


def load_origins(path: Path) -> dict[str, Origin]:
    source = str(path)
    doc = _read(path)
    origins: dict[str, Origin] = {}
    for index, item in enumerate(doc.get("locations", [])):
        entry = f"locations[{index}]"
        location_id = _text(item, "id", source, entry)
        entry = f"locations[{index}] ({location_id})"
        address = item.get("address")
        if not isinstance(address, dict):
            raise WorldConfigError(source, entry, "address", "must be a table")
        origins[location_id] = Origin(
            location_id=location_id,
            city=_text(address, "city", source, entry),
            postal_code=_text(address, "postal_code", source, entry),
            country=_text(address, "country", source, entry),
            time_zone=_text(item, "time_zone", source, entry),
            ships_outbound=item.get("kind") != "return_centre",
        )
    if not origins:
        raise WorldConfigError(source, "locations", "locations", "no [[locations]] entries")
    return origins


def _region(name: str, item: Any, source: str) -> Region:
    entry = f"regions.{name}"
    if not isinstance(item, dict):
        raise WorldConfigError(source, entry, "-", "must be a table")
    country = _text(item, "country", source, entry)
    ranges = item.get("postal_ranges")
    if not isinstance(ranges, list) or not ranges:
        raise WorldConfigError(source, entry, "postal_ranges", "must list [low, high] pairs")
    parsed: list[tuple[str, str]] = []
    for index, pair in enumerate(ranges):
        ok = (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(p, str) and p.isdigit() for p in pair)
            and len(pair[0]) == len(pair[1])
            and int(pair[0]) <= int(pair[1])
        )
        if not ok:
            raise WorldConfigError(
                source, entry, f"postal_ranges[{index}]", f"not a [low, high] digit pair: {pair!r}"
            )
        parsed.append((pair[0], pair[1]))
    return Region(
        name=name,
        country=country,
        city=_text(item, "city", source, entry),
        postal_ranges=tuple(parsed),
        phone_prefix=_text(item, "phone_prefix", source, entry),
    )


def _tenant(
    index: int, item: Any, source: str, regions: Mapping[str, Region], origins: Mapping[str, Origin]
) -> TenantProfile:
    entry = f"tenants[{index}]"
    if not isinstance(item, dict):
        raise WorldConfigError(source, entry, "-", "must be a table")
    tenant_id = _text(item, "id", source, entry)
    if not _TENANT_RE.match(tenant_id):
        raise WorldConfigError(source, entry, "id", f"not a tenant id: {tenant_id!r}")
    entry = f"tenants[{index}] ({tenant_id})"
    api_key = item.get("api_key")
    if api_key is not None and (not isinstance(api_key, str) or not api_key):
        raise WorldConfigError(source, entry, "api_key", "must be a non-empty string when given")
    share = item.get("share")
    if isinstance(share, bool) or not isinstance(share, int | float) or share <= 0:
        raise WorldConfigError(source, entry, "share", f"must be > 0, got {share!r}")
    tenant_origins = item.get("origins")
    if not isinstance(tenant_origins, list) or not tenant_origins:
        raise WorldConfigError(source, entry, "origins", "must list location ids")
    for position, origin in enumerate(tenant_origins):
        known = origins.get(origin) if isinstance(origin, str) else None
        if known is None or not known.ships_outbound:
            raise WorldConfigError(
                source, entry, f"origins[{position}]", f"not a shipping location: {origin!r}"
            )
    region_weights = _weights(item, "regions", source, entry)
    for name in region_weights:
        if name not in regions:
            raise WorldConfigError(source, entry, f"regions.{name}", "no such [regions.*] entry")
    level_weights = _weights(item, "service_levels", source, entry)
    for name in level_weights:
        if name not in SERVICE_LEVELS:
            raise WorldConfigError(
                source, entry, f"service_levels.{name}", f"one of {sorted(SERVICE_LEVELS)}"
            )
    http_share = _probability(item, "http_share", source, entry)
    if http_share > 0 and api_key is None:
        raise WorldConfigError(source, entry, "http_share", "an HTTP share needs an api_key")
    return TenantProfile(
        tenant_id=tenant_id,
        api_key=api_key,
        share=float(share),
        http_share=http_share,
        order_prefix=_text(item, "order_prefix", source, entry),
        origins=tuple(tenant_origins),
        regions=tuple(region_weights.items()),
        service_levels=tuple(level_weights.items()),  # type: ignore[arg-type]
        multi_origin=_probability(item, "multi_origin", source, entry),
        cancel=_probability(item, "cancel", source, entry),
        return_rate=_probability(item, "return_rate", source, entry),
        invalid=_probability(item, "invalid", source, entry),
        currency=_text(item, "currency", source, entry),
        locale=_text(item, "locale", source, entry),
    )


def default_config_dir() -> Path:
    """`deploy/config` of the working directory, else of the checkout this package lives in."""
    here = Path("deploy/config")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "deploy" / "config"


def load_world(config_dir: Path | None = None) -> MarketplaceWorld:
    """The marketplaces of `<config_dir>/sim/marketplaces.toml` over `<config_dir>/locations.toml`."""
    config_dir = config_dir or default_config_dir()
    origins = load_origins(config_dir / "locations.toml")
    path = config_dir / "sim" / "marketplaces.toml"
    source = str(path)
    doc = _read(path)
    raw_regions = doc.get("regions")
    if not isinstance(raw_regions, dict) or not raw_regions:
        raise WorldConfigError(source, "regions", "regions", "no [regions.*] tables")
    regions = {name: _region(name, item, source) for name, item in raw_regions.items()}
    raw_tenants = doc.get("tenants")
    if not isinstance(raw_tenants, list) or not raw_tenants:
        raise WorldConfigError(source, "tenants", "tenants", "no [[tenants]] entries")
    tenants = tuple(
        _tenant(i, item, source, regions, origins) for i, item in enumerate(raw_tenants)
    )
    seen: set[str] = set()
    for index, profile in enumerate(tenants):
        if profile.tenant_id in seen:
            raise WorldConfigError(source, f"tenants[{index}]", "id", "listed twice")
        seen.add(profile.tenant_id)
    return MarketplaceWorld(tenants=tenants, regions=regions, origins=origins)


def load_carrier_codes(path: Path) -> CarrierCodes:
    source = str(path)
    doc = _read(path)
    carrier = _text(doc, "carrier", source, "table")
    if carrier != path.stem:
        raise WorldConfigError(source, "table", "carrier", f"{carrier!r} must match the file name")
    pattern = _text(doc, "tracking_number_pattern", source, "table")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise WorldConfigError(source, "table", "tracking_number_pattern", str(exc)) from None
    raw = doc.get("codes")
    if not isinstance(raw, dict) or not raw:
        raise WorldConfigError(source, "table", "codes", "no [codes.*] entries")
    codes = []
    for code, item in raw.items():
        entry = f"codes.{code}"
        if not isinstance(item, dict):
            raise WorldConfigError(source, entry, "-", "must be a table")
        sub_status = item.get("sub_status")
        if sub_status is not None and not isinstance(sub_status, str):
            raise WorldConfigError(source, entry, "sub_status", "must be a string")
        codes.append(
            StatusCode(
                code=str(code),
                status=_text(item, "status", source, entry),
                sub_status=sub_status,
                description=str(item.get("description", "")),
            )
        )
    return CarrierCodes(
        carrier=carrier,
        name=str(doc.get("name", carrier)),
        tracking_number_pattern=pattern,
        codes=tuple(codes),
    )


def load_all_carrier_codes(directory: Path) -> dict[str, CarrierCodes]:
    """Every `<carrier>.toml` code table in `directory` (deploy/config/carrier-codes)."""
    if not directory.is_dir():
        raise WorldConfigError(
            str(directory), "directory", "path", "code table directory not found"
        )
    tables = {t.carrier: t for t in map(load_carrier_codes, sorted(directory.glob("*.toml")))}
    if not tables:
        raise WorldConfigError(str(directory), "directory", "path", "holds no <carrier>.toml")
    return tables
