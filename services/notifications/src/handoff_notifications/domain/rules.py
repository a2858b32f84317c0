"""Per-tenant notification rules: who hears about which milestone, how, and how urgently.

The rules are data (`deploy/config/notifications/rules.toml`); this module
turns the parsed TOML into typed values and rejects mistakes with an error
that names the file, the entry and the field. `tenants.default` is the base
every tenant starts from and the rule set for tenants without an entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from handoff_notifications.domain.milestones import MILESTONES
from handoff_notifications.domain.preferences import QuietHours, parse_clock

CUSTOMER_CHANNELS: tuple[str, ...] = ("email", "sms")
DEFAULT_TENANT = "default"


class RulesError(ValueError):
    """A rules file entry that cannot be used; the message names file, entry and field."""

    def __init__(self, source: str, entry: str, field: str, problem: str):
        super().__init__(f"{source}: [{entry}] field {field!r}: {problem}")
        self.source = source
        self.entry = entry
        self.field = field


@dataclass(frozen=True, slots=True)
class CustomerRule:
    """Tell the customer about `milestone` on these channels with this template."""

    milestone: str
    channels: tuple[str, ...]
    template: str
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class TenantRules:
    tenant: str
    brand: str = "Handoff"
    sender: str = "Handoff Deliveries <deliveries@handoff.example>"
    locale: str = "en"
    """The tenant's default language: used when the recipient's has no template."""
    time_zone: str = "Europe/Berlin"
    """Recipients whose country is not in the time-zone table are assumed to live here."""
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    staleness: timedelta = timedelta(hours=6)
    tracking_url: str = ""
    """`str.format` pattern with {tracking_number}, {carrier}, {shipment_id}; empty = none."""
    customer: Mapping[str, CustomerRule] = field(default_factory=dict)
    webhook_milestones: frozenset[str] | None = None
    """None = every milestone; otherwise only these."""
    webhook_urgent: frozenset[str] = frozenset()

    def customer_rule(self, occurrence: str, milestone: str) -> CustomerRule | None:
        """A rule for the exact occurrence (`exception.late`) wins over the milestone's."""
        return self.customer.get(occurrence) or self.customer.get(milestone)

    def webhook_wanted(self, milestone: str) -> bool:
        return self.webhook_milestones is None or milestone in self.webhook_milestones


@dataclass(frozen=True, slots=True)
class RuleBook:
    tenants: Mapping[str, TenantRules]
    time_zones: Mapping[str, str]

    def for_tenant(self, tenant: str) -> TenantRules:
        return self.tenants.get(tenant) or self.tenants[DEFAULT_TENANT]

    def zone_for(self, country: str | None, rules: TenantRules) -> ZoneInfo:
        """The recipient's time zone from their destination country (a country-level guess:
        good enough for quiet hours, which only need to know roughly when people sleep)."""
        name = self.time_zones.get((country or "").upper(), rules.time_zone)
        return ZoneInfo(name)


def _valid_milestone(name: str) -> bool:
    base, _, kind = name.partition(".")
    return base in MILESTONES and (not kind or base == "exception")


def _str(source: str, entry: str, table: Mapping[str, Any], key: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise RulesError(source, entry, key, f"expected a string, got {value!r}")
    return value


def _str_list(source: str, entry: str, table: Mapping[str, Any], key: str) -> list[str] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RulesError(source, entry, key, f"expected a list of strings, got {value!r}")
    return list(value)


def _customer(
    source: str, entry: str, table: Mapping[str, Any], base: Mapping[str, CustomerRule]
) -> dict[str, CustomerRule]:
    out = dict(base)
    for milestone, spec in table.items():
        where = f"{entry}.{milestone}"
        if not _valid_milestone(milestone):
            raise RulesError(source, where, "milestone", f"unknown milestone {milestone!r}")
        if not isinstance(spec, dict):
            raise RulesError(source, where, "milestone", "expected a table")
        unknown = set(spec) - {"channels", "template", "urgent", "enabled"}
        if unknown:
            raise RulesError(source, where, sorted(unknown)[0], "unknown field")
        if spec.get("enabled", True) is False:
            out.pop(milestone, None)
            continue
        previous = base.get(milestone)
        channels = _str_list(source, where, spec, "channels")
        if channels is None:
            if previous is None:
                raise RulesError(source, where, "channels", "required for a new rule")
            channels = list(previous.channels)
        bad = [c for c in channels if c not in CUSTOMER_CHANNELS]
        if bad or not channels:
            raise RulesError(
                source, where, "channels", f"{bad or channels!r}: use some of {CUSTOMER_CHANNELS}"
            )
        urgent = spec.get("urgent", previous.urgent if previous else False)
        if not isinstance(urgent, bool):
            raise RulesError(source, where, "urgent", f"expected true or false, got {urgent!r}")
        template = _str(
            source, where, spec, "template", previous.template if previous else milestone
        )
        out[milestone] = CustomerRule(milestone, tuple(channels), template, urgent)
    return out


_TENANT_FIELDS = {
    "brand",
    "sender",
    "locale",
    "time_zone",
    "quiet_hours",
    "staleness_minutes",
    "tracking_url",
    "customer",
    "webhook_milestones",
    "webhook_urgent",
}


def _tenant(source: str, name: str, table: Mapping[str, Any], base: TenantRules) -> TenantRules:
    entry = f"tenants.{name}"
    unknown = set(table) - _TENANT_FIELDS
    if unknown:
        raise RulesError(source, entry, sorted(unknown)[0], "unknown field")
    rules = replace(
        base,
        tenant=name,
        brand=_str(source, entry, table, "brand", base.brand),
        sender=_str(source, entry, table, "sender", base.sender),
        locale=_str(source, entry, table, "locale", base.locale),
        tracking_url=_str(source, entry, table, "tracking_url", base.tracking_url),
    )
    zone = _str(source, entry, table, "time_zone", base.time_zone)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise RulesError(source, entry, "time_zone", f"unknown time zone {zone!r}") from None
    rules = replace(rules, time_zone=zone)
    if "quiet_hours" in table:
        text = table["quiet_hours"]
        if text in ("off", "none"):
            rules = replace(
                rules, quiet_hours=QuietHours(parse_clock("00:00"), parse_clock("00:00"))
            )
        else:
            try:
                start, end = str(text).split("-")
                rules = replace(rules, quiet_hours=QuietHours(parse_clock(start), parse_clock(end)))
            except ValueError:
                raise RulesError(
                    source, entry, "quiet_hours", f"{text!r}: use 'HH:MM-HH:MM' or 'off'"
                ) from None
    if "staleness_minutes" in table:
        minutes = table["staleness_minutes"]
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes <= 0:
            raise RulesError(source, entry, "staleness_minutes", f"{minutes!r}: a positive integer")
        rules = replace(rules, staleness=timedelta(minutes=minutes))
    customer = table.get("customer", {})
    if not isinstance(customer, dict):
        raise RulesError(source, entry, "customer", "expected a table of milestones")
    rules = replace(rules, customer=_customer(source, f"{entry}.customer", customer, base.customer))
    hooks = _str_list(source, entry, table, "webhook_milestones")
    if hooks is not None:
        if hooks == ["*"]:
            rules = replace(rules, webhook_milestones=None)
        else:
            bad = [m for m in hooks if not _valid_milestone(m)]
            if bad:
                raise RulesError(source, entry, "webhook_milestones", f"unknown milestones {bad!r}")
            rules = replace(rules, webhook_milestones=frozenset(hooks))
    urgent = _str_list(source, entry, table, "webhook_urgent")
    if urgent is not None:
        rules = replace(rules, webhook_urgent=frozenset(urgent))
    return rules


def parse_rules(
    doc: Mapping[str, Any], source: str, time_zones: Mapping[str, Any] | None = None
) -> RuleBook:
    """Validate a parsed rules document (and the country → time zone table)."""
    unknown = set(doc) - {"tenants"}
    if unknown:
        raise RulesError(source, sorted(unknown)[0], "-", "unknown top-level table")
    tenants = doc.get("tenants")
    if not isinstance(tenants, dict) or DEFAULT_TENANT not in tenants:
        raise RulesError(source, "tenants", DEFAULT_TENANT, "a [tenants.default] entry is required")
    default = _tenant(source, DEFAULT_TENANT, tenants[DEFAULT_TENANT], TenantRules(DEFAULT_TENANT))
    out = {DEFAULT_TENANT: default}
    for name, table in tenants.items():
        if name == DEFAULT_TENANT:
            continue
        if not isinstance(table, dict):
            raise RulesError(source, f"tenants.{name}", "-", "expected a table")
        out[name] = _tenant(source, name, table, default)
    zones: dict[str, str] = {}
    for country, zone in (time_zones or {}).items():
        if not isinstance(zone, str) or len(country) != 2 or not country.isupper():
            raise RulesError(source, f"time_zones.{country}", country, 'use XX = "Area/City"')
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise RulesError(source, "time_zones", country, f"unknown time zone {zone!r}") from None
        zones[country] = zone
    return RuleBook(tenants=out, time_zones=zones)
