"""The tracking query read model's cost per followed state record, without a broker.

Every tracking instance follows the whole state topic into its read model
(`adapters/read_model.py`, decision 0003). This feeds the restore benchmark's shipment
states (the same records the fold writes) through the read model's follower callback,
and, for comparison, through what it did until 2026-11-22: decode every record into a
`ShipmentState` and keep the object. Prints CPU per record and the memory each
shipment adds (tracemalloc: the kept record bytes, the index, the objects).

    python -m bench.read_model --states 20000
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from aiokafka.structs import ConsumerRecord
from handoff_events.contracts import ShipmentState
from handoff_events.envelope import decode
from handoff_events.runtime.settings import ServiceSettings
from handoff_tracking.adapters.read_model import ReadModels

from bench.scenarios.restore import shipments, templates

_ACCEPT = frozenset({ShipmentState.ce_type})


class _Decoded:
    """The read model as it was: every state decoded on arrival and kept as an object."""

    def __init__(self) -> None:
        self.states: dict[str, ShipmentState] = {}

    def feed(self, record: ConsumerRecord) -> None:
        data = decode(record.value, record.headers, _ACCEPT).data
        assert isinstance(data, ShipmentState)
        self.states[data.shipment_id] = data


class _Kept:
    """The read model as it is (`ReadModels`' follower callback)."""

    def __init__(self) -> None:
        self.models = ReadModels(ServiceSettings())

    def feed(self, record: ConsumerRecord) -> None:
        self.models._on_state(record)


def _records(count: int) -> list[ConsumerRecord]:
    """The states as the follower receives them: fresh `bytes` per value, as fetched."""
    out = []
    for offset, (partition, key, value, headers) in enumerate(shipments(templates(), 0, count)):
        raw = bytes(bytearray(value))
        out.append(ConsumerRecord("state", partition, offset, 0, 0, key, raw, None,
                                  len(key), len(raw), headers))  # fmt: skip
    return out


def measure(make: Callable[[], Any], count: int) -> tuple[float, float]:
    """(µs of CPU per record, bytes per shipment) for one way of keeping the states."""
    records = _records(count)
    model = make()
    began = time.process_time()
    for record in records:
        model.feed(record)
    cpu = time.process_time() - began
    del model, records
    gc.collect()
    tracemalloc.start()
    records = _records(count)  # allocated while traced: the values a model keeps count
    model = make()
    for record in records:
        model.feed(record)
    del records
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return cpu / count * 1e6, held / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--states", type=int, default=20_000, help="shipment states to feed")
    args = parser.parse_args()
    sizes = sorted(len(r.value or b"") for r in _records(min(args.states, 2_000)))
    print(
        f"{args.states:,} states, JSON {sizes[0]:,}-{sizes[-1]:,} B (median {sizes[len(sizes) // 2]:,})"
    )
    for label, make in (
        ("decoded objects (until 2026-11-22)", _Decoded),
        ("kept JSON (now)", _Kept),
    ):
        per_record, per_shipment = measure(make, args.states)
        print(
            f"  {label:36} {per_record:7.1f} µs CPU per record  {per_shipment:9,.0f} B per shipment"
        )


if __name__ == "__main__":
    main()
