"""Deterministic identifiers.

Anything that can be emitted again (after a crash, a replay, a retry) derives
its id from the facts that caused it, so a re-emission carries the same id and
consumers can drop it as a duplicate.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import msgspec

_SEP = "\x1f"  # unit separator: cannot occur in ids, so ("a|b","c") != ("a","b|c")


def digest(*parts: object, length: int = 20) -> str:
    """A short, URL-safe, lower-case digest of the parts (hex of SHA-256; 20 chars = 80 bits)."""
    return hashlib.sha256(_SEP.join(map(str, parts)).encode()).hexdigest()[:length]


_JSON = msgspec.json.Encoder()


def utc_text(moment: datetime) -> bytes:
    """A UTC time (`tzinfo is UTC`) as msgspec writes it: `isoformat()`'s very text with `Z`
    for `+00:00` (`tests/unit/test_contracts.py` checks it over arbitrary times), at an
    eighth of its cost on this machine. The fast path of `iso_text` and of the envelope's
    `rfc3339`, which every event's `ce_time` header takes."""
    return _JSON.encode(moment)[1:-1]


def iso_text(moment: datetime) -> str:
    """Exactly `moment.isoformat()` (ids hash that text), without its cost for UTC (180 vs
    710 ns)."""
    if moment.tzinfo is UTC:
        return utc_text(moment)[:-1].decode() + "+00:00"
    return moment.isoformat()


def shipment_id(tenant_id: str, order_id: str, origin_location_id: str) -> str:
    """One shipment per (tenant, order, origin): a replay yields the same id."""
    return "shp_" + digest("shipment", tenant_id, order_id, origin_location_id)


def return_shipment_id(tenant_id: str, rma_id: str) -> str:
    return "shp_" + digest("return-shipment", tenant_id, rma_id)


def event_id(kind: str, *facts: object) -> str:
    """The CloudEvents id of an event caused by `facts`; same facts, same id."""
    return "evt_" + digest(kind, *facts, length=26)
