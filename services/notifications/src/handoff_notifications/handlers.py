"""The dispatch stage: plan notifications from events, send them from the timer.

`handle` is deterministic in (store, event, ctx.now): it learns contacts from
shipment requests and plans deliveries from shipment updates, writing them
into the ledger. It never sends.

`tick` (the punctuator, every `dispatch_every_s` per owned partition) does the
I/O without ever waiting for it: it records the outcomes of sends that have
finished since the last tick (ledger + outcome events, in the tick's
transaction), then starts the sends that are due as background tasks, bounded
by `max_in_flight` and short timeouts. So a slow or dead endpoint costs the
partition nothing but a pending entry in the ledger; see docs/notifications.md
for why this is the design and which duplicate window remains.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from handoff_events import topics
from handoff_events.contracts import (
    Event,
    NotificationDeadLettered,
    NotificationFailed,
    NotificationSent,
    ShipmentRequested,
    ShipmentUpdate,
)
from handoff_events.envelope import Envelope, encode_structured, new_envelope
from handoff_events.runtime.logging import get_logger
from handoff_events.stream.api import Context, MsgpackCodec, StatefulProcessor

from handoff_notifications import metrics
from handoff_notifications.adapters.email import SmtpMailer, build_message
from handoff_notifications.adapters.outcome import SendResult
from handoff_notifications.adapters.sms import SmsProvider
from handoff_notifications.adapters.templates import TemplateError, TemplateRenderer
from handoff_notifications.adapters.webhook import (
    EndpointHealthBook,
    WebhookEndpoint,
    WebhookSender,
)
from handoff_notifications.domain.backoff import RetryPolicy
from handoff_notifications.domain.content import message_context
from handoff_notifications.domain.identity import outcome_event_id
from handoff_notifications.domain.ledger import (
    Delivery,
    Planner,
    ShipmentLedger,
    Skipped,
    StoredUpdate,
    due,
    expire_waiting,
    forgettable,
    give_up_if_expired,
    next_visit,
    record_contact,
    record_failure,
    record_sent,
    record_update,
)

SERVICE = "notifications"
SOURCE = "handoff/notifications"
LEDGER_CHANGELOG = "handoff.notifications.ledger-changelog.v1"
log = get_logger("handoff.notifications")

Outcome = NotificationSent | NotificationFailed | NotificationDeadLettered
_KIND = {NotificationSent: "sent", NotificationFailed: "failed", NotificationDeadLettered: "dead"}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _InFlight:
    key: str
    delivery: Delivery
    task: asyncio.Task[SendResult]


@dataclass
class Channels:
    """The real (or test) adapters the dispatcher sends through."""

    mailer: SmtpMailer
    sms: SmsProvider
    webhooks: WebhookSender
    endpoints: Mapping[str, WebhookEndpoint]

    async def close(self) -> None:
        await self.sms.close()
        await self.webhooks.close()


@dataclass
class Notifier:
    planner: Planner
    renderer: TemplateRenderer
    channels: Channels
    policy: RetryPolicy
    health: EndpointHealthBook
    retention: timedelta = timedelta(days=30)
    max_in_flight: int = 64
    clock: Callable[[], datetime] = _utcnow
    """Wall clock for webhook timestamps and endpoint health (never for ledger decisions)."""
    _in_flight: dict[int, dict[str, _InFlight]] = field(default_factory=dict)

    # ---- the stage -------------------------------------------------------------------
    def processor(self, every_s: float) -> StatefulProcessor[ShipmentLedger]:
        return StatefulProcessor(
            service=SERVICE,
            stage="dispatch",
            inputs=[topics.UPDATES, topics.INTAKE_SHIPMENTS],
            changelog=LEDGER_CHANGELOG,
            codec=MsgpackCodec(ShipmentLedger),
            handle=self.handle,
            punctuate=self.tick,
            punctuate_every_s=every_s,
            due=self.next_visit,
        )

    def next_visit(self, ledger: ShipmentLedger) -> datetime:
        staleness = self.planner.rules.for_tenant(ledger.tenant_id).staleness
        return next_visit(ledger, staleness, self.retention)

    def in_flight(self) -> int:
        """Sends still running (finished ones of a partition we lost do not take a slot)."""
        return sum(1 for p in self._in_flight.values() for f in p.values() if not f.task.done())

    # ---- handler: plan, never send ---------------------------------------------------
    def handle(self, env: Envelope[Event], ctx: Context[ShipmentLedger]) -> None:
        data = env.data
        skipped: list[Skipped]
        if isinstance(data, ShipmentRequested):
            key = data.shipment_id
            ledger, skipped = record_contact(
                ctx.store.get(key), env.tenant_id, data, ctx.now, self.planner
            )
        elif isinstance(data, ShipmentUpdate):
            key = data.shipment_id
            stored = StoredUpdate(
                event_id=env.id,
                event_type=env.type,
                event_source=env.source,
                event_time=env.time,
                update=data,
            )
            ledger, skipped = record_update(
                ctx.store.get(key), env.tenant_id, stored, ctx.now, self.planner
            )
        else:
            return  # rejections and cancellations carry nothing to notify about here
        ctx.store.put(key, ledger)
        for s in skipped:
            metrics.SKIPPED.labels(s.channel, s.reason).inc()

    # ---- timer: record finished sends, start due ones --------------------------------
    async def tick(self, ctx: Context[ShipmentLedger]) -> None:
        now = ctx.now
        flights = self._in_flight.setdefault(ctx.partition, {})
        self._harvest(ctx, flights)
        for key, ledger in ctx.due():
            rules = self.planner.rules.for_tenant(ledger.tenant_id)
            current, expired = expire_waiting(ledger, now, rules)
            for occurrence in expired:
                metrics.SKIPPED.labels("customer", "contact_never_arrived").inc()
                log.info("no contact within the staleness limit", occurrence=occurrence)
            if forgettable(current, now, self.retention):
                ctx.store.delete(key)
                continue
            for delivery in due(current, now):
                if delivery.notification_id in flights:
                    continue
                if self.in_flight() >= self.max_in_flight:
                    ctx.keep_due(key)  # no free send slot: again at the next tick
                    break
                current = self._start(ctx, key, current, delivery, flights)
            if current is not ledger:
                ctx.store.put(key, current)
            elif self.next_visit(current) > now:
                # Handed over before its time: indexed under other rules (a staleness
                # limit or retention changed since it was written). Written back, it is
                # indexed at its time under these; left alone, it would never come back.
                ctx.store.put(key, current)
        metrics.IN_FLIGHT.set(self.in_flight())

    def _harvest(self, ctx: Context[ShipmentLedger], flights: dict[str, _InFlight]) -> None:
        for nid, flight in list(flights.items()):
            if not flight.task.done():
                continue
            del flights[nid]
            result = flight.task.result()  # _attempt never raises
            ledger = ctx.store.get(flight.key)
            if ledger is None:
                continue
            delivery = ledger.deliveries.get(nid)
            if delivery is None or delivery.status != "pending":
                continue  # recorded meanwhile (another owner after a rebalance)
            self._record(ctx, flight.key, ledger, delivery, result)

    def _record(
        self,
        ctx: Context[ShipmentLedger],
        key: str,
        ledger: ShipmentLedger,
        delivery: Delivery,
        result: SendResult,
    ) -> ShipmentLedger:
        nid = delivery.notification_id
        outcomes: list[Outcome]
        if result.ok:
            ledger, sent = record_sent(ledger, nid, ctx.now, result.detail)
            outcomes = [sent]
            metrics.ATTEMPTS.labels(ledger.tenant_id, delivery.channel, "sent").inc()
        else:
            ledger, failures = record_failure(
                ledger,
                nid,
                ctx.now,
                result.detail,
                permanent=result.permanent,
                policy=self.policy,
            )
            outcomes = list(failures)
            verdict = "rejected" if result.permanent else "failed"
            metrics.ATTEMPTS.labels(ledger.tenant_id, delivery.channel, verdict).inc()
        self._emit(ctx, key, ledger.tenant_id, outcomes)
        ctx.store.put(key, ledger)
        return ledger

    def _emit(
        self, ctx: Context[ShipmentLedger], key: str, tenant: str, outcomes: list[Outcome]
    ) -> None:
        for event in outcomes:
            attempt = (
                event.attempts if isinstance(event, NotificationDeadLettered) else event.attempt
            )
            if isinstance(event, NotificationDeadLettered):
                metrics.DEAD_LETTERED.labels(tenant, event.channel).inc()
                log.warning(
                    "notification dead-lettered",
                    notification_id=event.notification_id,
                    channel=event.channel,
                    attempts=event.attempts,
                )
            envelope = new_envelope(
                event,
                source=SOURCE,
                tenant_id=tenant,
                id=outcome_event_id(_KIND[type(event)], event.notification_id, attempt),
                time=ctx.now,
            )
            ctx.emit(topics.NOTIFICATION_OUTCOMES, key, envelope)

    def _start(
        self,
        ctx: Context[ShipmentLedger],
        key: str,
        ledger: ShipmentLedger,
        delivery: Delivery,
        flights: dict[str, _InFlight],
    ) -> ShipmentLedger:
        """Start one send in the background; failures known before sending are recorded now."""
        now = ctx.now
        endpoint = None
        if delivery.channel == "webhook":
            endpoint = self.channels.endpoints.get(delivery.recipient)
            if endpoint is None:
                return self._record(
                    ctx, key, ledger, delivery, SendResult.rejected("no endpoint configured")
                )
            if not self.health.may_send(endpoint, self.clock()):
                why = "endpoint paused" if self.health.paused(endpoint, self.clock()) else "probing"
                ledger, dead = give_up_if_expired(
                    ledger, delivery.notification_id, now, self.policy, why
                )
                if dead is not None:
                    self._emit(ctx, key, ledger.tenant_id, [dead])
                else:
                    ctx.keep_due(key)  # held back, unchanged: look again at the next tick
                return ledger
        try:
            send = self._prepare(ledger, delivery, endpoint, now)
        except TemplateError as exc:
            return self._record(ctx, key, ledger, delivery, SendResult.rejected(str(exc)))
        if endpoint is not None:
            # counted before the task runs, so the next due delivery in this same tick
            # already sees the probe slot taken
            self.health.of(endpoint).in_flight += 1
        task = asyncio.create_task(self._attempt(send, endpoint), name=delivery.notification_id)
        flights[delivery.notification_id] = _InFlight(key, delivery, task)
        return ledger

    def _prepare(
        self,
        ledger: ShipmentLedger,
        delivery: Delivery,
        endpoint: WebhookEndpoint | None,
        now: datetime,
    ) -> Callable[[], Any]:
        """Render now (errors are permanent and recorded at once); return the I/O to run."""
        stored = ledger.updates[delivery.occurrence]
        nid = delivery.notification_id
        if delivery.channel == "webhook":
            assert endpoint is not None
            body = encode_structured(
                Envelope(
                    id=stored.event_id,
                    source=stored.event_source,
                    type=stored.event_type,
                    tenant_id=ledger.tenant_id,
                    data=stored.update,
                    time=stored.event_time,
                    subject=stored.update.shipment_id,
                )
            )
            webhooks = self.channels.webhooks
            return lambda: webhooks.send(endpoint, body, nid, int(self.clock().timestamp()))
        rules = self.planner.rules.for_tenant(ledger.tenant_id)
        contact = ledger.contact
        zone = self.planner.rules.zone_for(contact.country if contact else None, rules)
        variables = message_context(
            stored.update, contact.name if contact else None, rules, zone, delivery.locale
        )
        tenant = ledger.tenant_id
        if delivery.channel == "email":
            rendered = self.renderer.email(
                tenant, delivery.template, delivery.locale, rules.locale, variables
            )
            message: EmailMessage = build_message(
                self.channels.mailer.config,
                sender=rules.sender,
                recipient=delivery.recipient,
                rendered=rendered,
                notification_id=nid,
                now=now,
            )
            mailer = self.channels.mailer
            return lambda: mailer.send(message)
        sms_text = self.renderer.sms(
            tenant, delivery.template, delivery.locale, rules.locale, variables
        ).text
        sms = self.channels.sms
        return lambda: sms.send(delivery.recipient, sms_text, nid)

    async def _attempt(
        self, send: Callable[[], Any], endpoint: WebhookEndpoint | None
    ) -> SendResult:
        try:
            result: SendResult = await send()
        except Exception as exc:  # an adapter bug must not kill the dispatcher
            result = SendResult.transient(f"{type(exc).__name__}: {exc}")
        finally:
            if endpoint is not None:
                self.health.of(endpoint).in_flight -= 1
        if endpoint is not None:
            self._observe(endpoint, result)
        return result

    def _observe(self, endpoint: WebhookEndpoint, result: SendResult) -> None:
        now = self.clock()
        if result.ok:
            if self.health.of(endpoint).paused_until is not None:
                log.info("webhook endpoint recovered", tenant=endpoint.tenant)
            self.health.success(endpoint, now)
            metrics.ENDPOINT_PAUSED.labels(endpoint.tenant).set(0)
        elif self.health.failure(endpoint, now, result.detail):
            health = self.health.of(endpoint)
            metrics.ENDPOINT_PAUSED.labels(endpoint.tenant).set(1)
            metrics.ENDPOINT_PAUSES.labels(endpoint.tenant).inc()
            log.warning(
                "webhook endpoint paused",
                tenant=endpoint.tenant,
                url=endpoint.url,
                until=health.paused_until.isoformat() if health.paused_until else None,
                error=health.last_error,
            )

    async def close(self) -> None:
        """Let sends in progress finish briefly; what does not finish is re-sent after restart."""
        tasks = [f.task for p in self._in_flight.values() for f in p.values()]
        if tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait(tasks, timeout=2.0)
        for task in tasks:
            task.cancel()
        await self.channels.close()
