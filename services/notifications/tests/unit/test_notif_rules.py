"""The rules file: tenant inheritance, overrides, and errors that name file, entry and field."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any, get_args

import pytest
from handoff_events.contracts import UPDATE_TYPES, CanonicalStatus
from handoff_notifications.domain.rules import RuleBook, RulesError, parse_rules


def test_shipped_rules_cover_the_customer_milestones(rulebook: RuleBook) -> None:
    default = rulebook.for_tenant("default")
    assert set(default.customer) >= {
        "allocated",
        "picked_up",
        "out_for_delivery",
        "delivery_attempt_failed",
        "exception",
        "available_for_pickup",
        "delivered",
        "return_authorised",
        "return_received",
    }
    assert default.customer["out_for_delivery"].urgent
    assert not default.customer["delivered"].urgent
    assert default.webhook_milestones is None  # all


def test_tenants_inherit_and_override(rulebook: RuleBook) -> None:
    acme = rulebook.for_tenant("acme")
    globex = rulebook.for_tenant("globex")
    assert acme.customer["delivered"].channels == ("email", "sms")
    assert acme.customer["picked_up"] == rulebook.for_tenant("default").customer["picked_up"]
    assert "allocated" not in globex.customer
    assert globex.quiet_hours.start == time(22, 0)
    assert globex.staleness == timedelta(hours=4)
    assert globex.webhook_wanted("delivered")
    assert not globex.webhook_wanted("quoted")
    assert globex.customer_rule("exception.late", "exception") is not None
    assert globex.customer_rule("exception.late", "exception").template == "delay"  # type: ignore[union-attr]
    assert globex.customer_rule("exception.stuck", "exception").template == "exception"  # type: ignore[union-attr]


def test_unknown_tenant_gets_the_default(rulebook: RuleBook) -> None:
    assert rulebook.for_tenant("initech").tenant == "default"


def test_time_zone_from_country_with_tenant_fallback(rulebook: RuleBook) -> None:
    default = rulebook.for_tenant("default")
    assert rulebook.zone_for("GB", default).key == "Europe/London"
    assert rulebook.zone_for("ZZ", default).key == "Europe/Berlin"


def _doc(**tenant: Any) -> dict[str, Any]:
    return {
        "tenants": {"default": {"customer": {"delivered": {"channels": ["email"]}}}, "x": tenant}
    }


@pytest.mark.parametrize(
    ("doc", "entry", "field"),
    [
        (
            _doc(customer={"delivered": {"channels": ["fax"]}}),
            "tenants.x.customer.delivered",
            "channels",
        ),
        (
            _doc(customer={"teleported": {"channels": ["email"]}}),
            "tenants.x.customer.teleported",
            "milestone",
        ),
        (_doc(customer={"picked_up": {}}), "tenants.x.customer.picked_up", "channels"),
        (_doc(quiet_hours="late"), "tenants.x", "quiet_hours"),
        (_doc(staleness_minutes=-5), "tenants.x", "staleness_minutes"),
        (_doc(time_zone="Mars/Olympus"), "tenants.x", "time_zone"),
        (_doc(webhook_milestones=["delivered", "beamed"]), "tenants.x", "webhook_milestones"),
        (_doc(colour="red"), "tenants.x", "colour"),
        (_doc(customer={"delivered": {"urgent": "yes"}}), "tenants.x.customer.delivered", "urgent"),
    ],
)
def test_errors_name_file_entry_and_field(doc: dict[str, Any], entry: str, field: str) -> None:
    with pytest.raises(RulesError) as err:
        parse_rules(doc, "rules.toml")
    assert err.value.source == "rules.toml"
    assert err.value.entry == entry
    assert err.value.field == field
    assert str(err.value).startswith(f"rules.toml: [{entry}] field '{field}'")


def test_every_update_milestone_of_the_contract_can_be_named() -> None:
    # status_changed is named by its status; every other update milestone by itself
    named = [m for m in UPDATE_TYPES if m != "status_changed"]
    named += [s for s in get_args(CanonicalStatus) if s not in named]
    customer = {m: {"channels": ["email"]} for m in named}
    book = parse_rules(_doc(customer=customer, webhook_milestones=named), "rules.toml")
    assert "cancellation_refused" in book.for_tenant("x").customer


def test_default_tenant_is_required() -> None:
    with pytest.raises(RulesError, match=r"tenants\.default"):
        parse_rules({"tenants": {"acme": {}}}, "rules.toml")


def test_bad_time_zone_table_is_refused() -> None:
    with pytest.raises(RulesError, match="time_zones"):
        parse_rules({"tenants": {"default": {}}}, "tz.toml", {"DE": "Europe/Nowhere"})
