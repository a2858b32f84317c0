"""Marketplace webhook signatures: HMAC-SHA256 over `<timestamp>.<body>`.

The receiver recomputes the MAC with the secret named by `X-Handoff-Key-Id`,
compares in constant time, and rejects timestamps outside its replay window.
Signing the timestamp with the body means a captured request cannot be replayed
later with a fresh timestamp.
"""

from __future__ import annotations

import hashlib
import hmac

SCHEME = "v1"
TIMESTAMP_HEADER = "X-Handoff-Timestamp"
SIGNATURE_HEADER = "X-Handoff-Signature"
KEY_ID_HEADER = "X-Handoff-Key-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}={mac}"


def signed_headers(
    secret: bytes, key_id: str, timestamp: int, body: bytes, notification_id: str
) -> dict[str, str]:
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        KEY_ID_HEADER: key_id,
        IDEMPOTENCY_HEADER: notification_id,
    }


def verify(
    secret: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    now_s: float,
    tolerance_s: float = 300.0,
) -> str | None:
    """None when valid, otherwise why not (for the receiver's 401 body)."""
    if not timestamp_header or not signature_header:
        return "missing signature headers"
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        return "timestamp is not an integer"
    if abs(now_s - timestamp) > tolerance_s:
        return "timestamp outside the replay window"
    expected = signature(secret, timestamp, body)
    offered = [s.strip() for s in signature_header.split(",")]
    # several signatures may be offered during a secret rotation
    if any(hmac.compare_digest(expected, s) for s in offered):
        return None
    return "signature mismatch"
