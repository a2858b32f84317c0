"""Loading allocation's data files (deploy/config/allocation/*.toml), validated at load.

- `policies.toml`: tenant policies (`[tenants.<id>]`, `default` required) and the
  scorecard defaults (`[scorecards]`).
- `capacity.toml`: daily capacity per carrier and hub (`[carriers.<code>]` with
  `daily_limit` as the carrier's default and `[carriers.<code>.hubs]` per hub),
  plus a top-level `default_daily_limit` for carriers not listed.
- `tendering.toml`: how each carrier receives tenders (`tender_via = "topic"` or
  `"http"` with `tender_url`, `timeout_s`, `retries`); unlisted carriers use the topic.

Every error is a `ConfigError` naming the file, the entry and the field.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from handoff_events.contracts import CapacityBucket
from handoff_events.values import Money

from handoff_carrier_allocation.domain.policy import OBJECTIVES, Objective, Policy, Weights
from handoff_carrier_allocation.domain.scorecards import ScorecardDefaults

_CARRIER_CODE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


class ConfigError(ValueError):
    def __init__(self, path: Path | str, entry: str, field_name: str | None, message: str):
        where = f"{path}: {entry}" + (f".{field_name}" if field_name else "")
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.entry = entry
        self.field = field_name


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, "(file)", None, "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(file)", None, f"not valid TOML: {exc}") from None


class _Fields:
    """Typed access to one TOML table, with errors naming file, entry and field."""

    def __init__(self, path: Path, entry: str, table: Any, known: set[str]):
        if not isinstance(table, dict):
            raise ConfigError(path, entry, None, "must be a table")
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(path, entry, unknown[0], f"unknown field (known: {sorted(known)})")
        self.path, self.entry, self.table = path, entry, table

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.path, self.entry, name, message)

    def number(self, name: str, default: float, lo: float, hi: float) -> float:
        value = self.table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"must be a number, got {value!r}")
        if not lo <= value <= hi:
            raise self.error(name, f"must be between {lo} and {hi}, got {value!r}")
        return float(value)

    def integer(self, name: str, default: int | None, lo: int = 0) -> int:
        value = self.table.get(name, default)
        if value is None:
            raise self.error(name, "is required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, got {value!r}")
        if value < lo:
            raise self.error(name, f"must be >= {lo}, got {value!r}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.table.get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {value!r}")
        return value

    def string(self, name: str, default: str | None = None) -> str:
        value = self.table.get(name, default)
        if not isinstance(value, str) or not value:
            raise self.error(name, f"must be a non-empty string, got {value!r}")
        return value

    def carriers(self, name: str) -> tuple[str, ...] | None:
        value = self.table.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, f"must be a list of carrier codes, got {value!r}")
        for code in value:
            if not code or not set(code) <= _CARRIER_CODE_CHARS:
                raise self.error(name, f"{code!r} is not a carrier code")
        if len(set(value)) != len(value):
            raise self.error(name, "lists a carrier twice")
        return tuple(value)

    def money(self, name: str) -> Money | None:
        value = self.table.get(name)
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) != {"amount", "currency"}:
            raise self.error(name, "must be { amount = <minor units>, currency = <ISO 4217> }")
        amount, currency = value["amount"], value["currency"]
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise self.error(
                f"{name}.amount", f"must be a non-negative integer (minor units), got {amount!r}"
            )
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
            raise self.error(f"{name}.currency", f"must be an ISO 4217 code, got {currency!r}")
        return Money(amount=amount, currency=currency)


# ---- policies -----------------------------------------------------------------------------

_POLICY_FIELDS = {
    "objective",
    "min_on_time_probability",
    "require_promise",
    "allowed_carriers",
    "excluded_carriers",
    "preferred_carriers",
    "max_price",
    "weights",
    "description",
}


@dataclass(frozen=True)
class PolicyBook:
    """Policies by tenant; tenants without their own use `default`."""

    policies: Mapping[str, Policy]
    scorecard_defaults: ScorecardDefaults = field(default_factory=ScorecardDefaults)

    def for_tenant(self, tenant_id: str) -> Policy:
        return self.policies.get(tenant_id) or self.policies["default"]


def _policy(path: Path, tenant: str, table: Any) -> Policy:
    f = _Fields(path, f"tenants.{tenant}", table, _POLICY_FIELDS)
    objective = f.string("objective")
    if objective not in OBJECTIVES:
        raise f.error("objective", f"must be one of {list(OBJECTIVES)}, got {objective!r}")
    obj: Objective = objective
    require_promise = f.boolean("require_promise", obj == "cheapest_meeting_promise")
    if obj == "cheapest_meeting_promise" and not require_promise:
        raise f.error("require_promise", "cheapest_meeting_promise always requires the promise")
    allowed = f.carriers("allowed_carriers")
    excluded = f.carriers("excluded_carriers") or ()
    preferred = f.carriers("preferred_carriers") or ()
    for code in preferred:
        if code in excluded:
            raise f.error("preferred_carriers", f"{code} is also excluded")
        if allowed is not None and code not in allowed:
            raise f.error("preferred_carriers", f"{code} is not in allowed_carriers")
    weights = Weights()
    if "weights" in table:
        w = _Fields(
            path,
            f"tenants.{tenant}.weights",
            table["weights"],
            {"cost", "on_time", "first_attempt", "exceptions"},
        )
        weights = Weights(
            cost=w.number("cost", 0.0, 0.0, 100.0),
            on_time=w.number("on_time", 0.0, 0.0, 100.0),
            first_attempt=w.number("first_attempt", 0.0, 0.0, 100.0),
            exceptions=w.number("exceptions", 0.0, 0.0, 100.0),
        )
        if weights.total <= 0:
            raise w.error("cost", "at least one weight must be positive")
    elif obj == "weighted":
        weights = Weights()
    if "description" in table and not isinstance(table["description"], str):
        raise f.error("description", "must be a string")
    return Policy(
        policy_id=tenant,
        objective=obj,
        min_on_time_probability=f.number("min_on_time_probability", 0.0, 0.0, 1.0),
        require_promise=require_promise,
        allowed_carriers=None if allowed is None else frozenset(allowed),
        excluded_carriers=frozenset(excluded),
        preferred_carriers=preferred,
        max_price=f.money("max_price"),
        weights=weights,
    )


def load_policies(path: Path) -> PolicyBook:
    doc = _read(path)
    top = _Fields(path, "(top level)", doc, {"tenants", "scorecards"})
    tenants = doc.get("tenants")
    if not isinstance(tenants, dict) or not tenants:
        raise top.error("tenants", "needs at least [tenants.default]")
    if "default" not in tenants:
        raise ConfigError(
            path, "tenants.default", None, "is required (tenants without a policy use it)"
        )
    policies = {tenant: _policy(path, tenant, table) for tenant, table in tenants.items()}
    defaults = ScorecardDefaults()
    if "scorecards" in doc:
        s = _Fields(
            path,
            "scorecards",
            doc["scorecards"],
            {"on_time_rate", "first_attempt_rate", "exception_rate", "prior_weight"},
        )
        defaults = ScorecardDefaults(
            on_time_rate=s.number("on_time_rate", defaults.on_time_rate, 0.0, 1.0),
            first_attempt_rate=s.number(
                "first_attempt_rate", defaults.first_attempt_rate, 0.0, 1.0
            ),
            exception_rate=s.number("exception_rate", defaults.exception_rate, 0.0, 1.0),
            prior_weight=s.integer("prior_weight", defaults.prior_weight, lo=0),
        )
    return PolicyBook(policies=policies, scorecard_defaults=defaults)


# ---- capacity -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CapacityLimits:
    """Daily shipments per carrier and hub; the carrier's `daily_limit` elsewhere."""

    default_daily_limit: int
    carrier_limits: Mapping[str, int] = field(default_factory=dict)
    hub_limits: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def limit_for(self, bucket: CapacityBucket) -> int:
        hub = self.hub_limits.get((bucket.carrier, bucket.hub_id))
        if hub is not None:
            return hub
        return self.carrier_limits.get(bucket.carrier, self.default_daily_limit)


def load_capacity(path: Path) -> CapacityLimits:
    doc = _read(path)
    top = _Fields(path, "(top level)", doc, {"default_daily_limit", "carriers"})
    default = top.integer("default_daily_limit", None)
    carriers = doc.get("carriers", {})
    if not isinstance(carriers, dict):
        raise top.error("carriers", "must be a table of carriers")
    carrier_limits: dict[str, int] = {}
    hub_limits: dict[tuple[str, str], int] = {}
    for code, table in carriers.items():
        f = _Fields(path, f"carriers.{code}", table, {"daily_limit", "hubs"})
        if not set(code) <= _CARRIER_CODE_CHARS:
            raise ConfigError(path, f"carriers.{code}", None, "is not a carrier code")
        carrier_limits[code] = f.integer("daily_limit", default)
        hubs = table.get("hubs", {})
        if not isinstance(hubs, dict):
            raise f.error("hubs", "must be a table of hub_id = daily limit")
        h = _Fields(path, f"carriers.{code}.hubs", hubs, set(hubs))
        for hub_id in hubs:
            hub_limits[(code, hub_id)] = h.integer(hub_id, None)
    return CapacityLimits(
        default_daily_limit=default, carrier_limits=carrier_limits, hub_limits=hub_limits
    )


# ---- tendering ----------------------------------------------------------------------------

TenderVia = Literal["topic", "http"]


@dataclass(frozen=True)
class HttpTenderRoute:
    carrier: str
    url: str
    timeout_s: float = 5.0
    retries: int = 2
    """Extra attempts after the first (transport errors and 5xx only)."""


@dataclass(frozen=True)
class TenderRoutes:
    http: Mapping[str, HttpTenderRoute] = field(default_factory=dict)

    def via(self, carrier: str) -> TenderVia:
        return "http" if carrier in self.http else "topic"


def load_tendering(path: Path) -> TenderRoutes:
    doc = _read(path)
    top = _Fields(path, "(top level)", doc, {"carriers"})
    carriers = doc.get("carriers", {})
    if not isinstance(carriers, dict):
        raise top.error("carriers", "must be a table of carriers")
    http: dict[str, HttpTenderRoute] = {}
    for code, table in carriers.items():
        f = _Fields(
            path, f"carriers.{code}", table, {"tender_via", "tender_url", "timeout_s", "retries"}
        )
        via = f.string("tender_via", "topic")
        if via not in ("topic", "http"):
            raise f.error("tender_via", f"must be 'topic' or 'http', got {via!r}")
        if via == "http":
            url = f.string("tender_url")
            if not url.startswith(("http://", "https://")):
                raise f.error("tender_url", f"must be an http(s) URL, got {url!r}")
            http[code] = HttpTenderRoute(
                carrier=code,
                url=url,
                timeout_s=f.number("timeout_s", 5.0, 0.05, 120.0),
                retries=f.integer("retries", 2, lo=0),
            )
        elif "tender_url" in table:
            raise f.error("tender_url", "only meaningful with tender_via = 'http'")
    return TenderRoutes(http=http)
