"""The tracking fold's own Python path, without a broker: CPU per event.

Runs the production fold stage (`build_fold`) inside the production `StreamEngine`'s
batch handling (`_handle`: envelope decode, log binding, handler, store staging) and
the commit's encoding side (`_encode` of every emitted envelope, `_encode_value` of
every staged state with its due time, aiokafka's record batch builder with the
configured codec) over the same observations the fold benchmark sends. No sockets, no
transactions, no waiting: what is left is the CPU that Handoff's Python code spends
per carrier event, which bounds what one process can fold on one core whatever the
broker does.

    python -m bench.fold_cpu --shipments 2500 --codec zstd

With `--unpacked-max N` the stores are bounded as the engine bounds them
(`HANDOFF_STORE_UNPACKED_MAX`): after each batch every store keeps its share of N
states unpacked and packs the rest. Below the number of shipments in flight that is
the worst case, every event reading a packed state and packing it again; the row
also reports the store's resident memory per shipment. `--waves K` sends the shipments
in K waves, one after the other (each wave's scans interleaved), as days of traffic
are: shipments start, are delivered and are not seen again.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from typing import Any

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition
from handoff_events.runtime.app import tune_gc
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.engine import StreamEngine, TaskStore, _Batch, _encode, _Task
from handoff_tracking.domain.exceptions import ExceptionPolicy
from handoff_tracking.handlers import build_fold
from handoff_tracking.settings import TrackingSettings

from bench.common import OBSERVATIONS, PARTITIONS, observations
from bench.report import rss_bytes

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
PER_TASK = 500
"""Records each task takes into one batch (the engine's fair share of a busy batch)."""
BATCH_BYTES = 512 * 1024  # the engine producer's max_batch_size
STATE_BATCH_BYTES = ServiceSettings().changelog_batch_bytes  # value bytes, the changelog's cap


class _Record:
    """What the engine reads of an aiokafka ConsumerRecord."""

    __slots__ = ("headers", "key", "offset", "partition", "value")

    def __init__(
        self, key: bytes, value: bytes, headers: list[tuple[str, bytes]], offset: int, part: int
    ):
        self.key, self.value, self.headers = key, value, tuple(headers)
        self.offset, self.partition = offset, part


async def measure(
    shipments: int, codec: str, unpacked_max: int = 0, waves: int = 1
) -> dict[str, Any]:
    settings = TrackingSettings(kafka_bootstrap_servers="unused:9092", log_level="WARNING")
    processor = build_fold(
        ExceptionPolicy(stuck_after=settings.stuck_after),
        settings.exception_check_every_s,
        remember=unpacked_max,
    )
    engine = StreamEngine(processor, settings)
    topic = engine.names(OBSERVATIONS)
    tasks = {p: _Task(p, TaskStore(processor.codec, processor.due)) for p in range(PARTITIONS)}
    pending: dict[int, list[tuple[TopicPartition, Any]]] = {}
    size = -(-shipments // waves)
    inputs = [
        record
        for start in range(0, shipments, size)
        for record in observations(
            0, 8, run="cpu", numbers=range(start, min(start + size, shipments))
        )
    ]
    for offset, (part, key, value, headers) in enumerate(inputs):
        record = _Record(key, value, headers, offset, part)
        pending.setdefault(part, []).append((TopicPartition(topic, part), record))
    tune_gc()  # as a service does at start-up; the inputs above are frozen with it
    gc.collect()
    rss_before = rss_bytes()
    keep = max(1, unpacked_max // PARTITIONS) if unpacked_max > 0 else None
    compression = None if codec == "none" else codec
    events, handle_s, encode_s, records_out = 0, 0.0, 0.0, 0
    longest = max(len(items) for items in pending.values())
    for start in range(0, longest, PER_TASK):
        batch: _Batch[Any] = _Batch(generation=None)  # type: ignore[arg-type]
        began = time.process_time()
        for part, items in pending.items():
            chunk = items[start : start + PER_TASK]
            if chunk:
                batch.tasks.append(tasks[part])
                await engine._handle(tasks[part], chunk, batch)
                events += len(chunk)
        handled = time.process_time()
        outgoing: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
        for emit in batch.emits:
            value, headers = _encode(emit.envelope)
            outgoing.append((emit.key.encode(), value, headers))
        states: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
        for task in batch.tasks:
            due: dict[str, float | None] = {}
            for shipment, state in task.store.staged().items():
                raw, headers = engine._encode_value(task.store, shipment, state, due)
                states.append((shipment.encode(), raw, headers))
            task.store.apply_batch(due)
            if keep is not None:
                task.store.shed(keep, compression, STATE_BATCH_BYTES)
        _build(outgoing, CODECS[codec], None)
        _build(states, CODECS[codec], STATE_BATCH_BYTES)
        records_out += len(outgoing) + len(states)
        handle_s += handled - began
        encode_s += time.process_time() - handled
    gc.collect()
    store_rss = rss_bytes() - rss_before
    return {
        "codec": codec,
        "unpacked_max": unpacked_max,
        "unpacked": sum(t.store.unpacked for t in tasks.values()),
        "store_rss_per_shipment": store_rss / shipments,
        "events": events,
        "records_out": records_out,
        "handle_us": handle_s / events * 1e6,
        "commit_encode_us": encode_s / events * 1e6,
        "total_us": (handle_s + encode_s) / events * 1e6,
        "events_per_cpu_s": events / (handle_s + encode_s),
    }


def _build(
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]], codec: int, cap: int | None
) -> None:
    """Record batches as the engine's producer builds them (`cap`: value bytes per batch)."""
    builder = DefaultRecordBatchBuilder(2, codec, False, -1, -1, -1, BATCH_BYTES)
    filled = 0
    for key_bytes, value, headers in records:
        if (cap is not None and filled and filled + len(value) > cap) or builder.append(
            0, None, key_bytes, value, headers
        ) is None:
            builder.build()
            builder = DefaultRecordBatchBuilder(2, codec, False, -1, -1, -1, BATCH_BYTES)
            builder.append(0, None, key_bytes, value, headers)
            filled = 0
        filled += len(value)
    builder.build()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=2500, help="x 8 scans (default 2500)")
    parser.add_argument("--codec", choices=sorted(CODECS), default="zstd")
    parser.add_argument(
        "--unpacked-max",
        type=int,
        default=0,
        help="bound the stores as HANDOFF_STORE_UNPACKED_MAX does (default 0: unbounded)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--waves", type=int, default=1, help="send the shipments in this many waves (default 1)"
    )
    args = parser.parse_args()
    result = asyncio.run(measure(args.shipments, args.codec, args.unpacked_max, args.waves))
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['events']:,} events, codec {result['codec']}: "
            f"{result['total_us']:.1f} µs CPU per event (handling {result['handle_us']:.1f}, "
            f"commit-side encoding {result['commit_encode_us']:.1f}); "
            f"{result['events_per_cpu_s']:,.0f} events per CPU-second; "
            f"{result['unpacked']:,} states unpacked at the end (bound: "
            f"{result['unpacked_max'] or 'none'}), the store's RSS "
            f"{result['store_rss_per_shipment']:,.0f} B per shipment"
        )


if __name__ == "__main__":
    main()
