"""Webhook signatures: HMAC-SHA256 over `<timestamp>.<raw body>` with a per-carrier secret.

Pure: the current time is a parameter. The carrier sends
`X-Handoff-Timestamp: <unix seconds>` and `X-Handoff-Signature: v1=<hex>`
(several comma-separated signatures are accepted, so a carrier can sign with
its old and new secret while a rotation is under way). Handoff accepts the
request when any signature matches any of the carrier's current secrets
(also several during a rotation) and the timestamp is within the replay
window of now, in either direction.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

TIMESTAMP_HEADER = "X-Handoff-Timestamp"
SIGNATURE_HEADER = "X-Handoff-Signature"
SCHEME = "v1"
DEFAULT_REPLAY_WINDOW = timedelta(minutes=5)


class SignatureError(Exception):
    """Why a request is not authentic. `reason`: missing_timestamp, invalid_timestamp,
    missing_signature, bad_signature, stale_timestamp."""

    def __init__(self, reason: str, message: str, field: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class Verified:
    signed_at: datetime


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>`: what a carrier puts after `v1=`."""
    message = str(timestamp).encode("ascii") + b"." + body
    # One-shot C HMAC: no HMAC object per secret and request.
    return hmac.digest(secret.encode(), message, "sha256").hex()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """`v1=<hex>[,v1=<hex>…]`, one per secret (client side: tests, docs, the simulator)."""
    return ",".join(f"{SCHEME}={sign(secret, timestamp, body)}" for secret in secrets)


def _presented(signature_header_value: str) -> list[str]:
    out = []
    for item in signature_header_value.split(","):
        scheme, _, value = item.strip().partition("=")
        if scheme == SCHEME and value:
            out.append(value.strip().lower())
    return out


def verify(
    *,
    secrets: Sequence[str],
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: datetime,
    replay_window: timedelta = DEFAULT_REPLAY_WINDOW,
) -> Verified:
    """Check a signed request; raise `SignatureError` saying what is wrong.

    The signature is checked before the timestamp's age, so a forged request
    is reported as a bad signature whatever its timestamp, and a stale one is
    reported as stale only when it was authentic.
    """
    if timestamp is None or not timestamp.strip():
        raise SignatureError("missing_timestamp", "the request has no timestamp", TIMESTAMP_HEADER)
    timestamp = timestamp.strip()
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError(
            "invalid_timestamp", "the timestamp must be unix seconds", TIMESTAMP_HEADER
        )
    if signature is None or not signature.strip():
        raise SignatureError("missing_signature", "the request is not signed", SIGNATURE_HEADER)
    presented = _presented(signature)
    expected = [sign(secret, timestamp, body) for secret in secrets]
    # Compare every pair in constant time; no early exit reveals which one matched.
    matched = False
    for candidate in presented:
        for wanted in expected:
            matched |= hmac.compare_digest(candidate.encode(), wanted.encode())
    if not matched:
        raise SignatureError(
            "bad_signature", "no v1 signature matches the carrier's secret", SIGNATURE_HEADER
        )
    signed_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
    if abs(now - signed_at) > replay_window:
        raise SignatureError(
            "stale_timestamp",
            f"the timestamp is outside the {int(replay_window.total_seconds())} s replay window",
            TIMESTAMP_HEADER,
        )
    return Verified(signed_at=signed_at)
