"""The notification ledger: per shipment, who is to be told what, and what has been sent.

One `ShipmentLedger` per shipment id is the value in the dispatch stage's
store (and so in its changelog). It holds the recipient's contact details
(PII: learnt from the shipment request, never published), the updates still
needed for rendering, and one `Delivery` per notification with its state:
pending (due at `due_at`), sent, dead-lettered or superseded. Exactly-once
rests on it: a notification id already in the ledger is never planned again,
and a delivery recorded as sent is never sent again.

Everything here is a pure function of (ledger, input, now).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import msgspec
import phonenumbers
from handoff_events.contracts import (
    NotificationDeadLettered,
    NotificationFailed,
    NotificationSent,
    ShipmentRequested,
    ShipmentUpdate,
)
from handoff_events.values import Channel

from handoff_notifications.domain.backoff import RetryPolicy, next_attempt_at
from handoff_notifications.domain.identity import notification_id, recipient_ref
from handoff_notifications.domain.milestones import milestone_of, occurrence_of
from handoff_notifications.domain.preferences import (
    customer_channels,
    deliver_at,
    is_stale,
    language_of,
)
from handoff_notifications.domain.rules import RuleBook, TenantRules

DeliveryStatus = Literal["pending", "sent", "dead_lettered", "superseded"]
Audience = Literal["customer", "marketplace"]


class Contact(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach the recipient (PII: lives only in this service's internal changelog)."""

    name: str
    email: str | None = None
    phone: str | None = None
    """E.164 when it could be parsed."""
    country: str | None = None
    locale: str = "en"
    channels: list[str] = []
    opted_out: bool = False


class StoredUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """The update a notification is about, with the attributes the webhook body repeats."""

    event_id: str
    event_type: str
    event_source: str
    event_time: datetime | None
    update: ShipmentUpdate


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    notification_id: str
    occurrence: str
    milestone: str
    channel: Channel
    audience: Audience
    recipient: str
    """Address, E.164 number, or the tenant whose marketplace endpoint is meant."""
    recipient_ref: str
    template: str
    locale: str
    urgent: bool
    occurred_at: datetime
    created_at: datetime
    due_at: datetime
    status: DeliveryStatus = "pending"
    attempts: int = 0
    first_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    log: list[str] = []


class ShipmentLedger(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    last_activity_at: datetime
    contact: Contact | None = None
    updates: dict[str, StoredUpdate] = {}
    deliveries: dict[str, Delivery] = {}
    awaiting_contact: dict[str, datetime] = {}
    """Occurrences with customer rules that arrived before the contact; value = when received."""


@dataclass(frozen=True, slots=True)
class Planner:
    """What planning needs besides the ledger: the rules, the pepper, configured endpoints."""

    rules: RuleBook
    pepper: bytes
    webhook_tenants: frozenset[str]
    """Tenants with a marketplace webhook endpoint configured."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A notification deliberately not planned (for metrics and logs; never stored)."""

    occurrence: str
    channel: str
    reason: str
    """stale, opted_out, no_address, channel_not_chosen, duplicate"""


def _normalise_phone(raw: str | None, country: str | None) -> str | None:
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _normalise_email(raw: str | None) -> str | None:
    if not raw or "@" not in raw:
        return None
    local, _, domain = raw.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if local and domain else None


def contact_from(requested: ShipmentRequested) -> Contact:
    dest = requested.destination
    prefs = requested.preferences
    return Contact(
        name=dest.name,
        email=_normalise_email(dest.email),
        phone=_normalise_phone(dest.phone, dest.country),
        country=dest.country,
        locale=prefs.locale,
        channels=list(prefs.channels),
        opted_out=prefs.opted_out,
    )


def _touch(ledger: ShipmentLedger, now: datetime) -> ShipmentLedger:
    return msgspec.structs.replace(ledger, last_activity_at=max(now, ledger.last_activity_at))


def _supersede(
    deliveries: dict[str, Delivery], new: Delivery, now: datetime
) -> tuple[dict[str, Delivery], bool]:
    """Of customer messages on one channel still waiting out quiet hours, only the newest
    milestone is worth sending in the morning. Returns the deliveries and whether `new` lives."""
    out = dict(deliveries)
    keep_new = True
    for nid, old in deliveries.items():
        if (
            old.audience != "customer"
            or old.channel != new.channel
            or old.status != "pending"
            or old.attempts
            or old.due_at <= now
        ):
            continue
        if old.occurred_at < new.occurred_at:
            out[nid] = msgspec.structs.replace(old, status="superseded")
        elif new.due_at > now:
            keep_new = False
    return out, keep_new


def _plan_customer(
    ledger: ShipmentLedger,
    shipment_id: str,
    occurrence: str,
    now: datetime,
    planner: Planner,
) -> tuple[ShipmentLedger, list[Skipped]]:
    contact = ledger.contact
    stored = ledger.updates[occurrence]
    update = stored.update
    rules = planner.rules.for_tenant(ledger.tenant_id)
    rule = rules.customer_rule(occurrence, milestone_of(update))
    if rule is None or contact is None:
        return ledger, []
    if is_stale(update.occurred_at, now, rules.staleness):
        return ledger, [Skipped(occurrence, c, "stale") for c in rule.channels]
    chosen = customer_channels(rule.channels, contact.channels, contact.opted_out)
    skipped = [
        Skipped(occurrence, c, "opted_out" if contact.opted_out else "channel_not_chosen")
        for c in rule.channels
        if c not in chosen
    ]
    deliveries = dict(ledger.deliveries)
    zone = planner.rules.zone_for(contact.country, rules)
    due = deliver_at(now, zone, rules.quiet_hours, rule.urgent)
    for channel in chosen:
        address = contact.email if channel == "email" else contact.phone
        if address is None:
            skipped.append(Skipped(occurrence, channel, "no_address"))
            continue
        nid = notification_id(shipment_id, occurrence, channel, address)
        if nid in deliveries:
            skipped.append(Skipped(occurrence, channel, "duplicate"))
            continue
        new = Delivery(
            notification_id=nid,
            occurrence=occurrence,
            milestone=milestone_of(update),
            channel="email" if channel == "email" else "sms",
            audience="customer",
            recipient=address,
            recipient_ref=recipient_ref(address, planner.pepper),
            template=rule.template,
            locale=language_of(contact.locale) or rules.locale,
            urgent=rule.urgent,
            occurred_at=update.occurred_at,
            created_at=now,
            due_at=due,
        )
        deliveries, alive = _supersede(deliveries, new, now)
        deliveries[nid] = new if alive else msgspec.structs.replace(new, status="superseded")
    return msgspec.structs.replace(ledger, deliveries=deliveries), skipped


def _plan_webhook(
    ledger: ShipmentLedger, shipment_id: str, occurrence: str, now: datetime, planner: Planner
) -> ShipmentLedger:
    tenant = ledger.tenant_id
    update = ledger.updates[occurrence].update
    rules = planner.rules.for_tenant(tenant)
    milestone = milestone_of(update)
    if tenant not in planner.webhook_tenants or not rules.webhook_wanted(milestone):
        return ledger
    nid = notification_id(shipment_id, occurrence, "webhook", tenant)
    if nid in ledger.deliveries:
        return ledger
    delivery = Delivery(
        notification_id=nid,
        occurrence=occurrence,
        milestone=milestone,
        channel="webhook",
        audience="marketplace",
        recipient=tenant,
        recipient_ref=recipient_ref(f"webhook:{tenant}", planner.pepper),
        template="",
        locale=rules.locale,
        urgent=milestone in rules.webhook_urgent,
        occurred_at=update.occurred_at,
        created_at=now,
        # marketplaces are machines: no quiet hours, no staleness (they want every milestone)
        due_at=now,
    )
    return msgspec.structs.replace(ledger, deliveries={**ledger.deliveries, nid: delivery})


def record_contact(
    ledger: ShipmentLedger | None,
    tenant_id: str,
    requested: ShipmentRequested,
    now: datetime,
    planner: Planner,
) -> tuple[ShipmentLedger, list[Skipped]]:
    """Learn the recipient; plan customer messages for milestones that arrived before it."""
    if ledger is None:
        ledger = ShipmentLedger(tenant_id=tenant_id, last_activity_at=now)
    if ledger.contact is not None:
        return ledger, []  # a redelivered request: the first one is the recipient
    ledger = _touch(msgspec.structs.replace(ledger, contact=contact_from(requested)), now)
    skipped: list[Skipped] = []
    updates = ledger.updates
    for occurrence in sorted(ledger.awaiting_contact, key=lambda o: updates[o].update.occurred_at):
        ledger, more = _plan_customer(ledger, requested.shipment_id, occurrence, now, planner)
        skipped += more
    return msgspec.structs.replace(ledger, awaiting_contact={}), skipped


def record_update(
    ledger: ShipmentLedger | None,
    tenant_id: str,
    stored: StoredUpdate,
    now: datetime,
    planner: Planner,
) -> tuple[ShipmentLedger, list[Skipped]]:
    """Plan every notification an update calls for; a milestone seen before plans nothing."""
    update = stored.update
    if ledger is None:
        ledger = ShipmentLedger(tenant_id=tenant_id, last_activity_at=now)
    occurrence = occurrence_of(update)
    if occurrence in ledger.updates:
        return ledger, [Skipped(occurrence, "*", "duplicate")]
    ledger = _touch(
        msgspec.structs.replace(ledger, updates={**ledger.updates, occurrence: stored}), now
    )
    ledger = _plan_webhook(ledger, update.shipment_id, occurrence, now, planner)
    rules = planner.rules.for_tenant(tenant_id)
    if rules.customer_rule(occurrence, milestone_of(update)) is None:
        return ledger, []
    if ledger.contact is None:
        waiting = {**ledger.awaiting_contact, occurrence: now}
        return msgspec.structs.replace(ledger, awaiting_contact=waiting), []
    return _plan_customer(ledger, update.shipment_id, occurrence, now, planner)


def due(ledger: ShipmentLedger, now: datetime) -> list[Delivery]:
    """Pending deliveries whose time has come, oldest milestone first."""
    ready = [d for d in ledger.deliveries.values() if d.status == "pending" and d.due_at <= now]
    return sorted(ready, key=lambda d: (d.occurred_at, d.notification_id))


def next_due_at(ledger: ShipmentLedger) -> datetime | None:
    pending = [d.due_at for d in ledger.deliveries.values() if d.status == "pending"]
    return min(pending) if pending else None


def _entry(now: datetime, attempt: int, what: str) -> str:
    return f"{now.isoformat()} attempt {attempt}: {what}"


def _shipment(ledger: ShipmentLedger, delivery: Delivery) -> str:
    return ledger.updates[delivery.occurrence].update.shipment_id


def record_sent(
    ledger: ShipmentLedger, nid: str, now: datetime, detail: str = "accepted"
) -> tuple[ShipmentLedger, NotificationSent]:
    d = ledger.deliveries[nid]
    attempt = d.attempts + 1
    done = msgspec.structs.replace(
        d,
        status="sent",
        attempts=attempt,
        first_attempt_at=d.first_attempt_at or now,
        sent_at=now,
        log=[*d.log, _entry(now, attempt, f"sent ({detail})")],
    )
    event = NotificationSent(
        notification_id=nid,
        shipment_id=_shipment(ledger, d),
        milestone=d.occurrence,
        channel=d.channel,
        recipient_ref=d.recipient_ref,
        sent_at=now,
        attempt=attempt,
    )
    return _touch(_with(ledger, done), now), event


def _with(ledger: ShipmentLedger, delivery: Delivery) -> ShipmentLedger:
    return msgspec.structs.replace(
        ledger, deliveries={**ledger.deliveries, delivery.notification_id: delivery}
    )


def _dead(
    ledger: ShipmentLedger, d: Delivery, now: datetime, log: list[str]
) -> tuple[ShipmentLedger, NotificationDeadLettered]:
    dead = msgspec.structs.replace(d, status="dead_lettered", log=log)
    event = NotificationDeadLettered(
        notification_id=d.notification_id,
        shipment_id=_shipment(ledger, d),
        milestone=d.occurrence,
        channel=d.channel,
        recipient_ref=d.recipient_ref,
        dead_lettered_at=now,
        attempts=d.attempts,
        delivery_log=log,
    )
    return _touch(_with(ledger, dead), now), event


def record_failure(
    ledger: ShipmentLedger,
    nid: str,
    now: datetime,
    error: str,
    *,
    permanent: bool,
    policy: RetryPolicy,
) -> tuple[ShipmentLedger, list[NotificationFailed | NotificationDeadLettered]]:
    """A failed attempt: schedule the next one, or dead-letter when permanent or out of time."""
    d = ledger.deliveries[nid]
    attempt = d.attempts + 1
    first = d.first_attempt_at or now
    retry_at = None if permanent else next_attempt_at(policy, nid, attempt, first, now)
    outcome = "permanent failure" if permanent else "failed"
    log = [*d.log, _entry(now, attempt, f"{outcome}: {error}")]
    failed = NotificationFailed(
        notification_id=nid,
        shipment_id=_shipment(ledger, d),
        milestone=d.occurrence,
        channel=d.channel,
        recipient_ref=d.recipient_ref,
        failed_at=now,
        attempt=attempt,
        error=error[:500],
        next_attempt_at=retry_at,
    )
    tried = msgspec.structs.replace(d, attempts=attempt, first_attempt_at=first)
    if retry_at is None:
        ledger, dead = _dead(ledger, tried, now, log)
        return ledger, [failed, dead]
    tried = msgspec.structs.replace(tried, due_at=retry_at, log=log)
    return _touch(_with(ledger, tried), now), [failed]


def give_up_if_expired(
    ledger: ShipmentLedger, nid: str, now: datetime, policy: RetryPolicy, why: str
) -> tuple[ShipmentLedger, NotificationDeadLettered | None]:
    """A delivery held back without an attempt (its endpoint is paused) still has a horizon."""
    d = ledger.deliveries[nid]
    started = d.first_attempt_at or d.created_at
    if now <= started + timedelta(seconds=policy.horizon_s):
        return ledger, None
    return _dead(
        ledger, d, now, [*d.log, f"{now.isoformat()} not attempted: {why}; horizon passed"]
    )


def expire_waiting(
    ledger: ShipmentLedger, now: datetime, rules: TenantRules
) -> tuple[ShipmentLedger, list[str]]:
    """Milestones that waited longer than the staleness limit for a contact are dropped."""
    expired = [o for o, since in ledger.awaiting_contact.items() if now - since > rules.staleness]
    if not expired:
        return ledger, []
    kept = {o: t for o, t in ledger.awaiting_contact.items() if o not in expired}
    return msgspec.structs.replace(ledger, awaiting_contact=kept), expired


_JUST_AFTER = timedelta(microseconds=1)
"""`expire_waiting` and `forgettable` act once a limit is strictly passed."""


def next_visit(ledger: ShipmentLedger, staleness: timedelta, retention: timedelta) -> datetime:
    """When the timer next has something to do for `ledger`: the earliest pending
    delivery's due time or contact wait running out, or -- with nothing pending -- the
    moment it becomes `forgettable`. Every change to the ledger moves it."""
    moments = [d.due_at for d in ledger.deliveries.values() if d.status == "pending"]
    moments += [since + staleness + _JUST_AFTER for since in ledger.awaiting_contact.values()]
    if not moments:
        return ledger.last_activity_at + retention + _JUST_AFTER
    return min(moments)


def forgettable(ledger: ShipmentLedger, now: datetime, retention: timedelta) -> bool:
    """Nothing left to do and quiet for `retention`: the ledger (and the PII in it) may go.

    `retention` must exceed the updates topic's retention, or a replay of the
    topic could find no ledger and notify again (staleness stops customer
    messages regardless; webhooks rely on this).
    """
    busy = ledger.awaiting_contact or any(d.status == "pending" for d in ledger.deliveries.values())
    return not busy and now - ledger.last_activity_at > retention
