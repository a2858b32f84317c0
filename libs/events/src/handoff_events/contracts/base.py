"""The base class of every event payload (the CloudEvents `data`)."""

from __future__ import annotations

from typing import ClassVar

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An immutable event payload. `ce_type` is its CloudEvents type, `handoff.<thing>.<happened>.v1`.

    Not tracked by Python's cycle collector (`gc=False`, decision 0009): a payload holds
    data only, never a reference back to itself, and a fold's store holds hundreds of
    thousands of them, which every full collection would otherwise walk.

    Contract rules (v1): fields are only ever added, as optional with a default;
    consumers ignore fields they do not know; a breaking change is a new type
    with `.v2` on a new topic.
    """

    ce_type: ClassVar[str]
    subject_field: ClassVar[str] = "shipment_id"
    """The payload field copied into `ce_subject` (the shipment or order id)."""
