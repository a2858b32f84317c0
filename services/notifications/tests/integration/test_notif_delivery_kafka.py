"""The notifications service on the real broker with a real SMTP server, the webhook
receiver and the fake SMS provider: what each milestone sends, in which language,
signed how; retries, dead letters and paused endpoints that do not hold others up."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from handoff_events.contracts import ExceptionInfo, NotificationDeadLettered, NotificationSent
from handoff_events.values import Location, Proof
from handoff_notifications.bootstrap import build_app
from handoff_notifications.domain.identity import notification_id

pytestmark = pytest.mark.kafka

F = dict[str, Callable[..., Any]]

LATE = ExceptionInfo(kind="late", detected_at=datetime(2026, 11, 20, tzinfo=UTC), detail="weather")
# (update milestone, status, extra fields) → en subject, en phrase, de subject, de phrase
MILESTONES: list[tuple[str, str, dict[str, Any], str, str, str, str]] = [
    ("allocated", "allocated", {},
     "ACME: your order {o} is being prepared for shipping", "will be shipped with swift",
     "ACME: Ihre Bestellung {o} wird für den Versand vorbereitet", "wird mit swift versendet"),
    ("status_changed", "picked_up", {},
     "ACME: your order {o} has shipped", "is on its way",
     "ACME: Ihre Bestellung {o} wurde versendet", "ist unterwegs"),
    ("status_changed", "out_for_delivery", {},
     "ACME: your order {o} arrives today", "is out for delivery and arrives today",
     "ACME: Ihre Bestellung {o} kommt heute", "ist in Zustellung"),
    ("status_changed", "delivery_attempt_failed", {"sub_status": "recipient_absent"},
     "ACME: we missed you - order {o}", "will try again on the next working day",
     "ACME: Zustellversuch zu Bestellung {o}", "versucht es am nächsten Werktag erneut"),
    ("status_changed", "available_for_pickup", {"location": Location(city="Leipzig")},
     "ACME: your order {o} is ready for pickup", "is waiting for you in Leipzig",
     "ACME: Ihre Bestellung {o} liegt zur Abholung bereit", "liegt in Leipzig für Sie bereit"),
    ("exception", "in_transit", {"exception": LATE},
     "ACME: a problem with your order {o}", "problem with the delivery of your order {o}: weather",
     "ACME: Problem mit Ihrer Bestellung {o}", "gibt es ein Problem: weather"),
    ("delivered", "delivered", {"proof": Proof(safe_place="garage")},
     "Delivered! Your ACME order {o} has arrived", "(garage)",
     "Zugestellt! Ihre ACME-Bestellung {o} ist da", "(garage)"),
    ("return_authorised", "delivered", {"rma_id": "RMA-7"},
     "ACME: your return for order {o} is authorised", "your return RMA-7",
     "ACME: Ihre Rücksendung zu Bestellung {o} ist genehmigt", "Ihre Rücksendung RMA-7"),
    ("return_received", "delivered", {"rma_id": "RMA-7"},
     "ACME: we received your return for order {o}", "has arrived",
     "ACME: Ihre Rücksendung zu Bestellung {o} ist angekommen", "ist bei uns angekommen"),
]  # fmt: skip


async def test_each_milestone_sends_the_expected_mail_sms_and_signed_webhook(
    harness: Any, f: F, wait: Callable[..., Any]
) -> None:
    h = harness
    app = build_app(h.settings())
    await app.start()
    try:
        now = datetime.now(UTC)
        en = f["requested"](
            "shp_it_en01",
            email="sam@example.co.uk",
            phone="+447700900123",
            country="GB",
            locale="en-GB",
            name="Sam Smith",
        )
        de = f["requested"](
            "shp_it_de01",
            email="ada@example.de",
            phone="+49301234567",
            country="DE",
            locale="de-DE",
            name="Ada Muster",
        )
        await h.request(en, "acme")
        await h.request(de, "acme")
        for milestone, status, extra in ((m, s, e) for m, s, e, *_ in MILESTONES):
            for shipment in (en, de):
                await h.update(
                    f["update"](
                        milestone, shipment.shipment_id, status=status, occurred_at=now, **extra
                    ),
                    "acme",
                )
        expected_mails = 2 * len(MILESTONES)
        await wait(lambda: len(h.sink.messages) >= expected_mails, 40, "every e-mail")
        await wait(lambda: len(h.receiver.accepted("acme")) >= expected_mails, 20, "every webhook")
        await wait(lambda: len(h.sms.messages) >= 2 * 4, 10, "the SMS")
        # results are recorded by the tick after each send: wait for all before stopping
        sent: list[NotificationSent] = []
        for _ in range(100):
            sent = [o for o in await h.outcomes() if isinstance(o, NotificationSent)]
            if len(sent) >= expected_mails * 2 + 8:
                break
            await asyncio.sleep(0.1)
    finally:
        await app.stop()

    mails = {(m.rcpt_to[0], m.subject): m for m in h.sink.messages}
    assert len(h.sink.messages) == expected_mails  # nothing twice
    for _m, status, _e, en_subject, en_phrase, de_subject, de_phrase in MILESTONES:
        for shipment, subject, phrase, greeting in (
            (en, en_subject, en_phrase, "Sam Smith"),
            (de, de_subject, de_phrase, "Ada Muster"),
        ):
            order = shipment.order_id
            mail = mails.get((shipment.destination.email, subject.format(o=order)))
            assert mail is not None, f"no {status} mail for {shipment.shipment_id}: {sorted(mails)}"
            text = mail.body("plain")
            assert phrase.format(o=order) in text, (status, text)
            assert greeting in text
            occurrence = (
                "exception.late" if _m == "exception" else status if _m == "status_changed" else _m
            )
            nid = notification_id(
                shipment.shipment_id, occurrence, "email", shipment.destination.email
            )
            assert mail.message_id == f"<{nid}@notifications.handoff.dev>"
            assert "<p>" in mail.body("html")

    # one signed webhook per update, verified by the receiver with the tenant's secret
    hooks = h.receiver.accepted("acme")
    assert len(hooks) == expected_mails
    assert len({d.idempotency_key for d in hooks}) == expected_mails
    assert all(d.key_id == "acme-it" for d in hooks)
    assert not [d for d in h.receiver.deliveries if not d.verified]
    bodies = [json.loads(d.body) for d in hooks]
    assert {b["data"]["shipment_id"] for b in bodies} == {en.shipment_id, de.shipment_id}
    assert {b["type"] for b in bodies} >= {"handoff.shipment.update.delivered.v1"}
    assert all("email" not in json.dumps(b["data"]) for b in bodies)

    # SMS for the urgent milestones (and ACME's delivered), in the recipient's language
    texts = {(s.to, s.text) for s in h.sms.messages}
    assert (
        "+49301234567",
        f"ACME: Bestellung {de.order_id} ist in Zustellung und kommt heute. "
        "https://acme.example/track/SW123",
    ) in texts
    assert any(to == "+447700900123" and "ready for pickup in Leipzig" in t for to, t in texts)
    assert len(h.sms.messages) == 8 and not h.sms.duplicates

    assert len(sent) == expected_mails * 2 + 8
    assert len({o.notification_id for o in sent}) == len(sent)
    assert all(o.recipient_ref.startswith("rcp_") for o in sent)
    assert not any("example" in o.recipient_ref for o in sent)


async def test_retries_dead_letters_and_pauses_never_hold_up_other_shipments(
    harness: Any, f: F, wait: Callable[..., Any]
) -> None:
    h = harness
    h.receiver.fail("acme", times=3)
    h.receiver.fail("globex", always=True)
    app = build_app(
        h.settings(
            retry_base_s=0.2,
            retry_cap_s=0.8,
            # compressed 24 h: long enough that acme's 4th attempt fits even on a loaded CI box
            retry_horizon_s=6.0,
            endpoint_failure_threshold=3,
            endpoint_cooldown_s=0.5,
        )
    )
    await app.start()
    status = httpx.AsyncClient(transport=httpx.ASGITransport(app=app.http), base_url="http://t")
    try:
        now = datetime.now(UTC)
        flaky = f["update"]("delivered", "shp_it_flaky", occurred_at=now)
        doomed = f["update"]("delivered", "shp_it_doomed", occurred_at=now)
        await h.update(flaky, "acme")
        await h.update(doomed, "globex")
        # globex keeps failing; meanwhile another shipment's customer mail must go through
        await wait(lambda: len(h.receiver.deliveries) >= 3, 10, "first webhook attempts")
        other = f["requested"](
            "shp_it_other", email="kim@example.com", locale="en-GB", country="GB"
        )
        await h.request(other, "globex")
        await h.update(
            f["update"](
                "status_changed", "shp_it_other", status="out_for_delivery", occurred_at=now
            ),
            "globex",
        )
        await wait(
            lambda: any(m.rcpt_to == ["kim@example.com"] for m in h.sink.messages),
            10,
            "the other shipment's e-mail",
        )
        other_mail_at = next(
            m for m in h.sink.messages if m.rcpt_to == ["kim@example.com"]
        ).received_at

        await wait(lambda: len(h.receiver.accepted("acme")) >= 1, 15, "acme's eventual success")
        paused_seen: list[dict[str, Any]] = []

        async def globex_state() -> dict[str, Any]:
            doc = (await status.get("/v1/webhooks/status")).json()
            return next(e for e in doc["endpoints"] if e["tenant"] == "globex")

        dead: list[Any] = []
        deadline_hit = False
        for _ in range(200):
            state = await globex_state()
            if state["state"] == "paused":
                paused_seen.append(state)
            dead = [
                o
                for o in await h.outcomes()
                if isinstance(o, NotificationDeadLettered) and o.shipment_id == "shp_it_doomed"
            ]
            if dead:
                break
            await asyncio.sleep(0.1)
        else:
            deadline_hit = True
        assert not deadline_hit, "globex's notification was never dead-lettered"
    finally:
        await status.aclose()
        await app.stop()

    # acme: 3 failures, then exactly one successful, verified delivery
    acme = [d for d in h.receiver.deliveries if d.tenant == "acme"]
    assert [d.status for d in acme] == [503, 503, 503, 200]
    assert len({d.idempotency_key for d in acme}) == 1
    assert acme[0].idempotency_key == notification_id(
        "shp_it_flaky", "delivered", "webhook", "acme"
    )
    assert len({d.body for d in acme}) == 1  # the same body every attempt, freshly signed

    # globex: retried until the horizon, then dead-lettered with the full delivery log
    doomed_id = notification_id("shp_it_doomed", "delivered", "webhook", "globex")
    globex = [d for d in h.receiver.deliveries if d.idempotency_key == doomed_id]
    assert len(globex) >= 3 and all(d.status == 503 and d.verified for d in globex)
    # (the other shipment's globex webhook fails too and may dead-letter as well)
    assert len(dead) == 1
    assert dead[0].attempts == len(globex)
    assert len(dead[0].delivery_log) >= dead[0].attempts
    assert any(d.received_at > other_mail_at for d in globex), "other mail waited for the retries"
    # after 3 consecutive failures the endpoint was paused and reported, not hammered
    assert paused_seen and paused_seen[0]["consecutive_failures"] >= 2
    assert paused_seen[0]["last_error"].startswith("HTTP 503")
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(globex)]
    assert max(gaps) >= 0.45  # a cool-down pause shows as a gap of at least ~0.5 s
