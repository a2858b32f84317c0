"""What a message may say: the template variables built from an update and a contact.

Only facts a customer should see go in (no internal ids beyond the order and
tracking number); dates are rendered in the recipient's time zone and language.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from handoff_events.contracts import ShipmentUpdate

from handoff_notifications.domain.milestones import milestone_of
from handoff_notifications.domain.rules import TenantRules

_MONTHS = {
    "en": (
        "January", "February", "March", "April", "May", "June", "July",
        "August", "September", "October", "November", "December",
    ),
    "de": (
        "Januar", "Februar", "März", "April", "Mai", "Juni", "Juli",
        "August", "September", "Oktober", "November", "Dezember",
    ),
}  # fmt: skip


def format_date(day: date | datetime | None, lang: str) -> str:
    """`21 November 2026` / `21. November 2026`; unknown languages get ISO 8601."""
    if day is None:
        return ""
    months = _MONTHS.get(lang)
    if months is None:
        return day.isoformat()[:10]
    sep = ". " if lang == "de" else " "
    return f"{day.day}{sep}{months[day.month - 1]} {day.year}"


def format_time(moment: datetime | None, zone: ZoneInfo, lang: str) -> str:
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    return f"{local:%H:%M} Uhr" if lang == "de" else f"{local:%H:%M}"


def tracking_link(rules: TenantRules, update: ShipmentUpdate) -> str:
    if not rules.tracking_url or not update.tracking_number:
        return ""
    return rules.tracking_url.format(
        tracking_number=update.tracking_number,
        carrier=update.carrier or "",
        shipment_id=update.shipment_id,
    )


def message_context(
    update: ShipmentUpdate,
    recipient_name: str | None,
    rules: TenantRules,
    zone: ZoneInfo,
    lang: str,
) -> dict[str, Any]:
    """The variables every template may use (documented in docs/notifications.md)."""
    exception = update.exception
    return {
        "brand": rules.brand,
        "recipient_name": recipient_name or "",
        "order_id": update.order_id,
        "milestone": milestone_of(update),
        "status": update.status,
        "sub_status": update.sub_status or "",
        "carrier": update.carrier or "",
        "tracking_number": update.tracking_number or "",
        "tracking_url": tracking_link(rules, update),
        "estimated_delivery": format_date(update.estimated_delivery_date, lang),
        "promised_by": format_date(update.promised_by, lang),
        "occurred_on": format_date(update.occurred_at.astimezone(zone), lang),
        "occurred_at": format_time(update.occurred_at, zone, lang),
        "city": (update.location.city or "") if update.location else "",
        "exception_kind": exception.kind if exception else "",
        "exception_detail": (exception.detail or "") if exception else "",
        "safe_place": (update.proof.safe_place or "") if update.proof else "",
        "signed_by": (update.proof.signed_by or "") if update.proof else "",
        "rma_id": update.rma_id or "",
        "lang": lang,
    }
