"""Tenant return policies and the authorisation rules, as pure functions.

A policy is data (deploy/config/returns/policies.toml, loaded by
`adapters.policy_file`). This module owns what the data means: the return
window counted from the ACTUAL delivery time and closing at the end of the
local day in the customer's time zone, the reasons a tenant accepts, the SKUs
it never takes back, what a return costs, and how long a return label stays
valid. Nothing here reads a clock: every instant is a parameter.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from fnmatch import fnmatchcase
from zoneinfo import ZoneInfo

from handoff_events.contracts import ReturnItem, ReturnRequested
from handoff_events.values import Money, Reason

ANY_COUNTRY = "*"
_END_OF_DAY = time(23, 59, 59, 999_999)


@dataclass(frozen=True, slots=True)
class ReturnPolicy:
    """One tenant's return terms."""

    tenant_id: str
    window_days: int
    """Days after the local delivery day on which a return may still be requested."""
    eligible_reasons: frozenset[str]
    methods: frozenset[str]
    non_returnable_skus: tuple[str, ...]
    """Shell-style SKU patterns (`GIFT-*`): matching items are never taken back."""
    fees: Mapping[str, Money]
    """Fee by reason code; a reason without a fee is free for the customer."""
    label_validity: timedelta
    return_centres: Mapping[str, str]
    """Country (ISO alpha-2, or `*` for any other) -> return centre location id."""
    default_time_zone: str
    """The customer's zone when their country is not in the country table."""
    customer_time_zones: Mapping[str, str] = field(default_factory=dict)
    """Country -> IANA zone of customers there (shared table, copied into every policy)."""

    def fee_for(self, reason_code: str) -> Money | None:
        return self.fees.get(reason_code)

    def return_centre_for(self, country: str) -> str | None:
        return self.return_centres.get(country) or self.return_centres.get(ANY_COUNTRY)

    def time_zone_for(self, country: str) -> ZoneInfo:
        return ZoneInfo(self.customer_time_zones.get(country, self.default_time_zone))

    def is_returnable(self, sku: str) -> bool:
        return not any(fnmatchcase(sku, pattern) for pattern in self.non_returnable_skus)


def window_closes_at(delivered_at: datetime, window_days: int, zone: ZoneInfo) -> datetime:
    """The last instant a return may be requested: end of the local day `window_days` after
    the local delivery day. Delivered 23:30 local on day 0 with 14 days -> 23:59:59.999999
    local on day 14 (calendar days, so a DST change inside the window does not shift it)."""
    if delivered_at.tzinfo is None:
        raise ValueError("delivered_at must be timezone-aware")
    delivery_day: date = delivered_at.astimezone(zone).date()
    last_day = delivery_day + timedelta(days=window_days)
    return datetime.combine(last_day, _END_OF_DAY, tzinfo=zone)


@dataclass(frozen=True, slots=True)
class ShipmentFacts:
    """What the ledger knows about the shipment a return is requested for."""

    tenant_id: str
    order_id: str
    skus: frozenset[str]
    delivered_at: datetime | None
    customer_country: str
    skus_under_return: frozenset[str] = frozenset()
    """SKUs already covered by an RMA that is not expired (authorised or received)."""


@dataclass(frozen=True, slots=True)
class ReturnTerms:
    """What an authorised return costs and how long its label is valid."""

    free_of_charge: bool
    fee: Money | None
    label_valid_until: datetime
    return_centre_id: str
    policy_outcome: str
    """`free_return` or `charged_return:<reason>`: carried into RefundEligible."""


def assess(policy: ReturnPolicy, request: ReturnRequested, shipment: ShipmentFacts) -> list[Reason]:
    """Every reason to refuse `request` (empty: it may be authorised).

    The window is judged at `request.requested_at`, the moment the customer asked, so a
    request made on the last day is honoured even if it is processed after midnight.
    """
    reasons: list[Reason] = []
    if shipment.order_id != request.order_id:
        reasons.append(
            Reason(
                code="shipment_not_in_order",
                field="$.shipment_id",
                message=f"the shipment belongs to order {shipment.order_id}",
                value=request.shipment_id,
            )
        )
        return reasons
    if shipment.delivered_at is None:
        reasons.append(
            Reason(
                code="not_delivered", field="$.order_id", message="the shipment was never delivered"
            )
        )
        return reasons
    zone = policy.time_zone_for(shipment.customer_country)
    closes = window_closes_at(shipment.delivered_at, policy.window_days, zone)
    if request.requested_at > closes:
        reasons.append(
            Reason(
                code="outside_return_window",
                field="$.requested_at",
                message=f"the {policy.window_days}-day window closed at {closes.isoformat()}",
                value=request.requested_at.isoformat(),
            )
        )
    if request.reason_code not in policy.eligible_reasons:
        reasons.append(
            Reason(
                code="reason_not_eligible",
                field="$.reason_code",
                message="this reason is not accepted by the tenant's return policy",
                value=request.reason_code,
            )
        )
    if request.method not in policy.methods:
        reasons.append(
            Reason(
                code="method_not_offered",
                field="$.method",
                message="this return method is not offered",
                value=request.method,
            )
        )
    reasons.extend(_item_reasons(policy, request.items, shipment))
    if policy.return_centre_for(shipment.customer_country) is None:
        reasons.append(
            Reason(
                code="no_return_centre",
                field="$.pickup_address.country",
                message="no return centre serves this country",
                value=shipment.customer_country,
            )
        )
    return reasons


def _item_reasons(
    policy: ReturnPolicy, items: Collection[ReturnItem], shipment: ShipmentFacts
) -> list[Reason]:
    reasons: list[Reason] = []
    for index, item in enumerate(items):
        field_path = f"$.items[{index}].sku"
        if item.sku not in shipment.skus:
            reasons.append(
                Reason(
                    code="item_not_in_shipment",
                    field=field_path,
                    message="the shipment did not contain this SKU",
                    value=item.sku,
                )
            )
        elif not policy.is_returnable(item.sku):
            reasons.append(
                Reason(
                    code="item_not_returnable",
                    field=field_path,
                    message="the tenant does not take this item back",
                    value=item.sku,
                )
            )
        elif item.sku in shipment.skus_under_return:
            reasons.append(
                Reason(
                    code="already_returned",
                    field=field_path,
                    message="an RMA was already issued for this item",
                    value=item.sku,
                )
            )
    return reasons


def terms(
    policy: ReturnPolicy, reason_code: str, customer_country: str, authorised_at: datetime
) -> ReturnTerms:
    """The terms of an authorised return (call only when `assess` found no reason)."""
    centre = policy.return_centre_for(customer_country)
    if centre is None:
        raise ValueError(f"no return centre for {customer_country}: assess() refuses this")
    fee = policy.fee_for(reason_code)
    return ReturnTerms(
        free_of_charge=fee is None or fee.amount == 0,
        fee=fee,
        label_valid_until=authorised_at + policy.label_validity,
        return_centre_id=centre,
        policy_outcome="free_return"
        if fee is None or fee.amount == 0
        else f"charged_return:{reason_code}",
    )
