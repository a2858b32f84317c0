"""Deterministic notification identities and privacy-preserving recipient references.

A notification id is a function of (shipment, milestone occurrence, channel,
recipient) only, so every attempt, every re-send after a crash and every
replay carries the same e-mail Message-ID, SMS client reference and webhook
Idempotency-Key, and a receiver can drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac

from handoff_events.ids import digest, event_id


def notification_id(shipment_id: str, occurrence: str, channel: str, recipient: str) -> str:
    return "ntf_" + digest("notification", shipment_id, occurrence, channel, recipient, length=26)


def recipient_ref(recipient: str, pepper: bytes) -> str:
    """A keyed hash of the address: joinable across events, useless for a dictionary attack
    without the pepper, and never the address itself (PII stays out of topics)."""
    mac = hmac.new(pepper, recipient.strip().lower().encode(), hashlib.sha256).hexdigest()
    return "rcp_" + mac[:24]


def outcome_event_id(kind: str, notification: str, attempt: int) -> str:
    """Outcome events are re-emitted with the same id when an attempt is retried after a crash."""
    return event_id(f"notification.{kind}", notification, attempt)
