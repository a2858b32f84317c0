"""Loads tenant return policies (deploy/config/returns/policies.toml) and the return centres
of the location catalogue (deploy/config/locations.toml, owned by order intake).

Every problem is a `PolicyFileError` naming the file, the entry and the field, raised at
start-up so a bad file never reaches a decision.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from handoff_events.contracts.marketplace import ReturnMethod, ReturnReasonCode
from handoff_events.values import Money

from handoff_returns.domain.ledger import ReturnCentre
from handoff_returns.domain.policy import ANY_COUNTRY, ReturnPolicy

REASON_CODES = frozenset(get_args(ReturnReasonCode))
METHODS = frozenset(get_args(ReturnMethod))
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class PolicyFileError(ValueError):
    def __init__(self, path: Path, entry: str, field: str, message: str):
        super().__init__(f"{path}: [{entry}] {field}: {message}")
        self.path, self.entry, self.field = path, entry, field


@dataclass(frozen=True, slots=True)
class ReturnsConfig:
    policies: Mapping[str, ReturnPolicy]
    centres: Mapping[str, ReturnCentre]


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise PolicyFileError(path, "-", "-", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError(path, "-", "-", f"not valid TOML: {exc}") from None


class _Entry:
    """Typed access to one TOML table with errors that name file, entry and field."""

    def __init__(self, path: Path, name: str, table: Any):
        if not isinstance(table, dict):
            raise PolicyFileError(path, name, "-", "must be a table")
        self.path, self.name, self.table = path, name, table

    def fail(self, field: str, message: str) -> PolicyFileError:
        return PolicyFileError(self.path, self.name, field, message)

    def get(self, field: str, kind: type[Any], default: Any = ...) -> Any:
        if field not in self.table:
            if default is ...:
                raise self.fail(field, "required")
            return default
        value = self.table[field]
        if kind is int and isinstance(value, bool):
            raise self.fail(field, "must be an integer")
        if not isinstance(value, kind):
            raise self.fail(field, f"must be {kind.__name__}, got {type(value).__name__}")
        return value

    def zone(self, field: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(field, "must be an IANA time zone name")
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(field, f"unknown time zone {value!r}") from None
        return value

    def str_list(self, field: str, allowed: frozenset[str] | None = None) -> list[str]:
        values = self.get(field, list)
        for value in values:
            if not isinstance(value, str) or not value:
                raise self.fail(field, f"must hold non-empty strings, got {value!r}")
            if allowed is not None and value not in allowed:
                raise self.fail(field, f"{value!r} is not one of {sorted(allowed)}")
        return list(values)


def load_return_centres(path: Path) -> dict[str, ReturnCentre]:
    """The catalogue's `kind = "return_centre"` entries."""
    doc = _read(path)
    centres: dict[str, ReturnCentre] = {}
    for index, raw in enumerate(doc.get("locations", [])):
        entry = _Entry(path, f"locations[{index}]", raw)
        if entry.get("kind", str) != "return_centre":
            continue
        location_id = entry.get("id", str)
        entry.name = f"locations[{index}] {location_id}"
        address = _Entry(path, entry.name + " address", entry.get("address", dict))
        country = address.get("country", str)
        if not _COUNTRY.match(country):
            raise address.fail("country", f"not an ISO 3166-1 alpha-2 code: {country!r}")
        centres[location_id] = ReturnCentre(
            location_id=location_id,
            name=entry.get("name", str),
            line1=address.get("line1", str),
            postal_code=address.get("postal_code", str),
            city=address.get("city", str),
            country=country,
            time_zone=entry.zone("time_zone", entry.get("time_zone", str)),
        )
    return centres


def _label_validity(entry: _Entry) -> timedelta:
    days = entry.get("label_validity_days", int, None)
    seconds = entry.get("label_validity_seconds", int, None)
    if (days is None) == (seconds is None):
        raise entry.fail(
            "label_validity_days", "give exactly one of label_validity_days, label_validity_seconds"
        )
    validity = timedelta(days=days) if days is not None else timedelta(seconds=seconds)
    if validity <= timedelta(0):
        raise entry.fail("label_validity_days", "must be positive")
    return validity


def _policy(
    path: Path, tenant: str, raw: Any, zones: Mapping[str, str], centres: Mapping[str, ReturnCentre]
) -> ReturnPolicy:
    entry = _Entry(path, f"tenants.{tenant}", raw)
    window_days = entry.get("window_days", int)
    if not 0 <= window_days <= 365:
        raise entry.fail("window_days", f"must be 0..365, got {window_days}")
    currency = entry.get("currency", str)
    if not _CURRENCY.match(currency):
        raise entry.fail("currency", f"not an ISO 4217 code: {currency!r}")
    fees: dict[str, Money] = {}
    for reason, amount in entry.get("fees", dict, {}).items():
        if reason not in REASON_CODES:
            raise entry.fail(
                f"fees.{reason}", f"unknown reason code; one of {sorted(REASON_CODES)}"
            )
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise entry.fail(
                f"fees.{reason}", f"minor units as a non-negative integer, got {amount!r}"
            )
        fees[reason] = Money(amount=amount, currency=currency)
    return_centres: dict[str, str] = {}
    for country, centre in entry.get("return_centres", dict).items():
        field = f"return_centres.{country}"
        if country != ANY_COUNTRY and not _COUNTRY.match(country):
            raise entry.fail(field, "key must be an ISO 3166-1 alpha-2 code or '*'")
        if centre not in centres:
            raise entry.fail(field, f"{centre!r} is not a return centre in the location catalogue")
        return_centres[country] = centre
    if not return_centres:
        raise entry.fail("return_centres", "at least one return centre")
    return ReturnPolicy(
        tenant_id=tenant,
        window_days=window_days,
        eligible_reasons=frozenset(entry.str_list("eligible_reasons", REASON_CODES)),
        methods=frozenset(entry.str_list("methods", METHODS)),
        non_returnable_skus=tuple(entry.get("non_returnable_skus", list, [])),
        fees=fees,
        label_validity=_label_validity(entry),
        return_centres=return_centres,
        default_time_zone=entry.zone("default_time_zone", entry.get("default_time_zone", str)),
        customer_time_zones=dict(zones),
    )


def load_config(policies_path: Path, locations_path: Path) -> ReturnsConfig:
    """Read and cross-check both files."""
    centres = load_return_centres(locations_path)
    doc = _read(policies_path)
    zones_entry = _Entry(policies_path, "time_zones", doc.get("time_zones", {}))
    zones: dict[str, str] = {}
    for country, zone in zones_entry.table.items():
        if not _COUNTRY.match(country):
            raise zones_entry.fail(country, "key must be an ISO 3166-1 alpha-2 code")
        zones[country] = zones_entry.zone(country, zone)
    tenants = _Entry(policies_path, "tenants", doc.get("tenants", {})).table
    if not tenants:
        raise PolicyFileError(policies_path, "tenants", "-", "no tenant policies")
    for name in tenants:
        if not re.match(r"^[a-z0-9][a-z0-9_-]{0,62}$", name):
            raise PolicyFileError(policies_path, f"tenants.{name}", "-", "not a valid tenant id")
    for unknown in set(doc) - {"time_zones", "tenants"}:
        raise PolicyFileError(policies_path, unknown, "-", "unknown section")
    policies = {
        tenant: _policy(policies_path, tenant, raw, zones, centres)
        for tenant, raw in tenants.items()
    }
    return ReturnsConfig(policies=policies, centres=centres)
