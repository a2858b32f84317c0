"""Loading the origin location catalogue from TOML (`deploy/config/locations.toml`).

Every problem is a `LocationFileError` naming the file, the entry and the
field, so a bad deploy fails at start with a message an operator can act on.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from handoff_order_intake.domain.locations import (
    LOCATION_KINDS,
    LocationCatalogue,
    OriginLocation,
)
from handoff_order_intake.domain.validation import is_country, normalise_postal_code

_ID = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
_HH_MM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class LocationFileError(ValueError):
    """The catalogue file is unusable; the message names file, entry and field."""


def _string(path: Path, where: str, entry: dict[str, Any], name: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise LocationFileError(f"{path}: {where}: field `{name}` must be a non-empty string")
    return value.strip()


def _location(path: Path, index: int, entry: Any) -> OriginLocation:
    where = f"locations[{index}]"
    if not isinstance(entry, dict):
        raise LocationFileError(f"{path}: {where}: must be a table")
    location_id = _string(path, where, entry, "id")
    where = f"{where} ({location_id})"
    if not _ID.match(location_id):
        raise LocationFileError(f"{path}: {where}: field `id` must match {_ID.pattern}")
    kind = _string(path, where, entry, "kind")
    if kind not in LOCATION_KINDS:
        raise LocationFileError(
            f"{path}: {where}: field `kind` is {kind!r}, "
            f"expected one of {', '.join(LOCATION_KINDS)}"
        )
    time_zone = _string(path, where, entry, "time_zone")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise LocationFileError(
            f"{path}: {where}: field `time_zone` {time_zone!r} is not an IANA time zone"
        ) from None
    cutoff = _string(path, where, entry, "cutoff_local")
    if not _HH_MM.match(cutoff):
        raise LocationFileError(f"{path}: {where}: field `cutoff_local` {cutoff!r} is not HH:MM")
    cold_chain = entry.get("cold_chain", False)
    if not isinstance(cold_chain, bool):
        raise LocationFileError(f"{path}: {where}: field `cold_chain` must be true or false")
    address = entry.get("address")
    if not isinstance(address, dict):
        raise LocationFileError(f"{path}: {where}: field `address` must be a table")
    country = _string(path, where, address, "country")
    if not is_country(country):
        raise LocationFileError(
            f"{path}: {where}: field `address.country` {country!r} is not ISO 3166-1 alpha-2"
        )
    raw_postal = _string(path, where, address, "postal_code")
    postal_code = normalise_postal_code(country, raw_postal)
    if postal_code is None:
        raise LocationFileError(
            f"{path}: {where}: field `address.postal_code` {raw_postal!r} is not a {country} code"
        )
    return OriginLocation(
        location_id=location_id,
        name=_string(path, where, entry, "name"),
        kind=kind,
        time_zone=time_zone,
        cutoff_local=cutoff,
        line1=_string(path, where, address, "line1"),
        postal_code=postal_code,
        city=_string(path, where, address, "city"),
        country=country,
        cold_chain=cold_chain,
    )


def parse_locations(text: str, path: Path) -> LocationCatalogue:
    """Parse and validate catalogue TOML (`path` is only used in messages)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LocationFileError(f"{path}: not valid TOML: {exc}") from None
    entries = doc.get("locations")
    if not isinstance(entries, list) or not entries:
        raise LocationFileError(f"{path}: needs at least one [[locations]] entry")
    seen: set[str] = set()
    locations = []
    for index, entry in enumerate(entries):
        location = _location(path, index, entry)
        if location.location_id in seen:
            raise LocationFileError(
                f"{path}: locations[{index}] ({location.location_id}): field `id` is a duplicate"
            )
        seen.add(location.location_id)
        locations.append(location)
    return LocationCatalogue(locations)


def load_locations(path: Path) -> LocationCatalogue:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LocationFileError(f"{path}: cannot read the location catalogue: {exc}") from None
    return parse_locations(text, path)
