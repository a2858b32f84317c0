"""Webhook signing and endpoint health (pause after N consecutive failures, probes, cool-down)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from handoff_notifications.adapters.webhook import EndpointHealthBook, WebhookEndpoint
from handoff_notifications.domain.signing import signed_headers, verify

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ENDPOINT = WebhookEndpoint("acme", "https://hooks.acme.example/h", "acme-1", b"s3cret")


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"evt_1"}'
    headers = signed_headers(b"s3cret", "acme-1", 1_790_000_000, body, "ntf_1")
    mac = hmac.new(b"s3cret", b"1790000000." + body, hashlib.sha256).hexdigest()
    assert headers == {
        "X-Handoff-Timestamp": "1790000000",
        "X-Handoff-Signature": f"v1={mac}",
        "X-Handoff-Key-Id": "acme-1",
        "Idempotency-Key": "ntf_1",
    }


def test_verify_accepts_the_signature_and_rejects_tampering_and_replays() -> None:
    body = b'{"id":"evt_1"}'
    h = signed_headers(b"s3cret", "acme-1", 1000, body, "ntf_1")
    ts, sig = h["X-Handoff-Timestamp"], h["X-Handoff-Signature"]
    assert verify(b"s3cret", ts, sig, body, now_s=1010) is None
    assert verify(b"s3cret", ts, f"v1=00, {sig}", body, now_s=1010) is None  # rotation
    assert verify(b"s3cret", ts, sig, body + b" ", now_s=1010) == "signature mismatch"
    assert verify(b"other", ts, sig, body, now_s=1010) == "signature mismatch"
    assert verify(b"s3cret", ts, sig, body, now_s=2000) == "timestamp outside the replay window"
    assert verify(b"s3cret", None, sig, body, now_s=1000) == "missing signature headers"


def test_endpoint_pauses_after_consecutive_failures_and_probes_after_cooldown() -> None:
    book = EndpointHealthBook(threshold=3, cooldown=timedelta(seconds=60))
    assert book.may_send(ENDPOINT, T0)
    assert not book.failure(ENDPOINT, T0, "HTTP 503")
    book.of(ENDPOINT).in_flight = 1
    assert not book.may_send(ENDPOINT, T0)  # failing: one probe at a time
    book.of(ENDPOINT).in_flight = 0
    assert book.may_send(ENDPOINT, T0)
    assert not book.failure(ENDPOINT, T0, "HTTP 503")
    assert book.failure(ENDPOINT, T0, "HTTP 503")  # the third in a row pauses
    assert not book.may_send(ENDPOINT, T0 + timedelta(seconds=59))
    assert book.may_send(ENDPOINT, T0 + timedelta(seconds=61))
    # the probe after the cool-down fails: paused again at once
    assert book.failure(ENDPOINT, T0 + timedelta(seconds=61), "HTTP 503")
    assert book.of(ENDPOINT).pauses == 2
    book.success(ENDPOINT, T0 + timedelta(seconds=200))
    assert book.may_send(ENDPOINT, T0 + timedelta(seconds=200))
    assert book.of(ENDPOINT).consecutive_failures == 0


def test_successes_in_between_reset_the_count() -> None:
    book = EndpointHealthBook(threshold=3)
    for _ in range(10):
        book.failure(ENDPOINT, T0, "x")
        book.failure(ENDPOINT, T0, "x")
        book.success(ENDPOINT, T0)
    assert book.of(ENDPOINT).pauses == 0
