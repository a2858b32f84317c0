"""The local notification servers: SMTP sink, webhook receiver, fake SMS provider (real sockets)."""

from __future__ import annotations

import hashlib
import hmac
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from handoff_sim.sms_provider import FakeSmsProvider
from handoff_sim.smtp_sink import SmtpSink
from handoff_sim.webhook_receiver import WebhookReceiver, start_http


def _mail(message_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "shop@example.com"
    msg["To"] = "ada@example.com"
    msg["Subject"] = "Ihre Bestellung wurde zugestellt"
    msg["Message-ID"] = message_id
    msg.set_content("Hallo Ada, grüße!")
    return msg


async def test_smtp_sink_stores_readable_eml_files(tmp_path: Path) -> None:
    sink = SmtpSink(tmp_path / "mail")
    port = await sink.start()
    try:
        await aiosmtplib.send(_mail("<ntf_1@test>"), hostname="127.0.0.1", port=port)
        sink.fail_next(1)
        with pytest.raises(aiosmtplib.SMTPResponseException) as err:
            await aiosmtplib.send(_mail("<ntf_2@test>"), hostname="127.0.0.1", port=port)
        assert err.value.code == 451
    finally:
        await sink.stop()
    assert [m.message_id for m in sink.messages] == ["<ntf_1@test>"]
    mail = sink.messages[0]
    assert mail.subject == "Ihre Bestellung wurde zugestellt"
    assert "grüße" in mail.body()
    assert mail.rcpt_to == ["ada@example.com"]
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert files == [mail.path]
    assert b"Message-ID: <ntf_1@test>" in files[0].read_bytes()


def _signed(secret: bytes, body: bytes, timestamp: int) -> str:
    return "v1=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


async def test_webhook_receiver_verifies_signatures_and_fails_on_request() -> None:
    receiver = WebhookReceiver(keys={"k1": b"s3cret"})
    server = await start_http(receiver.app())
    body = b'{"type": "handoff.shipment.update.delivered.v1"}'
    now = int(time.time())
    good = {
        "X-Handoff-Timestamp": str(now),
        "X-Handoff-Signature": _signed(b"s3cret", body, now),
        "X-Handoff-Key-Id": "k1",
        "Idempotency-Key": "ntf_1",
    }
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.post("/hooks/acme", content=body, headers=good)).status_code == 200
            forged = {**good, "X-Handoff-Signature": _signed(b"guess", body, now)}
            assert (
                await client.post("/hooks/acme", content=body, headers=forged)
            ).status_code == 401
            old = now - 3600
            replayed = {
                **good,
                "X-Handoff-Timestamp": str(old),
                "X-Handoff-Signature": _signed(b"s3cret", body, old),
            }
            assert (
                await client.post("/hooks/acme", content=body, headers=replayed)
            ).status_code == 401
            tampered = await client.post("/hooks/acme", content=body + b" ", headers=good)
            assert tampered.status_code == 401
            await client.post("/_control/acme", json={"fail_times": 2})
            codes = [
                (await client.post("/hooks/acme", content=body, headers=good)).status_code
                for _ in range(3)
            ]
            assert codes == [503, 503, 200]
            listed = (await client.get("/deliveries")).json()
    finally:
        await server.stop()
    assert [d.idempotency_key for d in receiver.accepted("acme")] == ["ntf_1", "ntf_1"]
    assert [d["problem"] for d in listed[1:4]] == [
        "signature mismatch",
        "timestamp outside the replay window",
        "signature mismatch",
    ]
    assert receiver.accepted()[0].event_type == "handoff.shipment.update.delivered.v1"


async def test_fake_sms_provider_stores_dedupes_and_fails_on_request() -> None:
    provider = FakeSmsProvider(api_key="k")
    server = await start_http(provider.app())
    message = {"to": "+49301234567", "from": "ACME", "text": "hi", "client_reference": "ntf_1"}
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": "Bearer k"}
        ) as c:
            first = await c.post("/v1/messages", json=message)
            again = await c.post("/v1/messages", json=message)
            assert first.status_code == 201 and again.status_code == 200
            assert again.json() == {"message_id": first.json()["message_id"], "duplicate": True}
            provider.fail(times=1)
            assert (
                await c.post("/v1/messages", json={**message, "client_reference": "n2"})
            ).status_code == 503
            bad = await c.post("/v1/messages", json={**message, "to": "0301234"})
            assert bad.status_code == 422
            unauthorised = await c.post(
                "/v1/messages", json=message, headers={"Authorization": "Bearer x"}
            )
            assert unauthorised.status_code == 401
    finally:
        await server.stop()
    assert [m.client_reference for m in provider.messages] == ["ntf_1"]
    assert provider.duplicates == ["ntf_1"]
