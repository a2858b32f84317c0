"""The fold's store codec: ShipmentState as a CloudEvent on the public state topic.

`handoff.shipments.state.v1` is both the public, compacted "latest state" topic
and the fold stage's changelog, so its records must be what marketplaces read:
CloudEvents binary mode, JSON data, `ce_type` `handoff.shipment.state.v1`, and a
`ce_id` derived from (shipment, version, updated_at) -- a re-written state after a
crash carries the same id as the first attempt.
"""

from __future__ import annotations

from collections.abc import Sequence

from handoff_events.contracts import ShipmentState
from handoff_events.envelope import DecodeError, decode, encode, new_envelope
from handoff_events.ids import event_id, iso_text

SOURCE = "handoff/tracking"
_ACCEPT = frozenset({ShipmentState.ce_type})


def state_event_id(state: ShipmentState) -> str:
    return event_id(
        ShipmentState.ce_type, state.shipment_id, state.version, iso_text(state.updated_at)
    )


class ShipmentStateCodec:
    """`StateCodec[ShipmentState]` in CloudEvents binary mode."""

    def encode(self, key: str, value: ShipmentState) -> tuple[bytes, list[tuple[str, bytes]]]:
        envelope = new_envelope(
            value,
            source=SOURCE,
            tenant_id=value.tenant_id,
            id=state_event_id(value),
            time=value.updated_at,
        )
        return encode(envelope)

    def decode(self, value: bytes, headers: Sequence[tuple[str, bytes | None]]) -> ShipmentState:
        data = decode(value, headers, _ACCEPT).data
        if not isinstance(data, ShipmentState):  # pragma: no cover - accept guarantees it
            raise DecodeError("unexpected_type", "not a shipment state", "ce_type")
        return data
