"""The peer for the fold benchmark: the same tracking fold, written with Quix Streams.

Runs in its own virtual environment (.cache/bench-peer-venv, made by bench/run.py):
every quixstreams release caps pydantic-settings below the version handoff-events
needs, so it cannot share Handoff's lock. That venv sees the workspace packages
through a .pth file, so this process imports the very same code as Handoff's fold
worker: the CloudEvents decoder, `FoldStage.handle` (which calls the pure
`handoff_tracking.domain.fold.fold`), and the state topic's codec.

What it does per carrier observation, like Handoff's fold stage:
decode the envelope -> `FoldStage.handle` against the shipment's state -> produce
every event the handler emitted (shipment updates, KPI contributions) and the new
state as a CloudEvent on the state topic. Quix keeps the state in RocksDB (values
as msgspec MessagePack) behind its own changelog topic, with
`processing_guarantee="exactly-once"`; everything else is left at Quix's defaults
(commit interval 5 s, its producer/consumer batching).

Differences that are Quix's design, not the benchmark's: Quix writes each state
twice (its changelog, and the public state topic), Handoff once (the public state
topic *is* its changelog); Quix commits every 5 s, Handoff per polled batch.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
from handoff_events import topics
from handoff_events.contracts import ShipmentState
from handoff_events.envelope import DecodeError, decode, encode
from handoff_events.stream.api import Emit, Rejected
from handoff_events.topics import BY_NAME, Names
from handoff_tracking.adapters.state_codec import ShipmentStateCodec
from handoff_tracking.domain.exceptions import ExceptionPolicy
from handoff_tracking.handlers import FoldStage
from handoff_tracking.settings import TrackingSettings
from quixstreams import Application, State
from quixstreams.models.serializers import Serializer
from quixstreams.models.topics.exceptions import TopicNotFoundError
from quixstreams.state.rocksdb import RocksDBOptions

from bench.report import Progress

Out = tuple[str, str, bytes, list[tuple[str, bytes]]]
"""(prefixed topic, key, value, headers) of one output record."""


class QuixStore:
    """The fold handler's `Store` view of Quix's per-key `State`."""

    def __init__(self, state: State):
        self._state = state
        self.written: ShipmentState | None = None

    def get(self, key: str) -> ShipmentState | None:
        value: ShipmentState | None = self._state.get(key)
        return value

    def put(self, key: str, value: ShipmentState) -> None:
        self._state.set(key, value)
        self.written = value

    def delete(self, key: str) -> None:
        self._state.delete(key)

    def items(self) -> Iterator[tuple[str, ShipmentState]]:
        raise RuntimeError(
            "the Quix Streams peer runs no timers: the benchmark events never need one"
        )

    def __len__(self) -> int:
        raise RuntimeError(
            "the Quix Streams peer runs no timers: the benchmark events never need one"
        )


class QuixContext:
    """The handler's `Context` for one record."""

    def __init__(self, state: State, key: str | None):
        self.store = QuixStore(state)
        self.key = key
        self.emits: list[Emit] = []
        self.partition = -1
        self.topic = topics.OBSERVATIONS
        self.offset = -1

    def emit(self, topic: str, key: str, envelope: Any) -> None:
        if topic not in BY_NAME:
            raise KeyError(f"{topic!r} is not in the topic catalogue")
        self.emits.append(Emit(topic, key, envelope))


class EmitValue(Serializer):  # type: ignore[misc]
    """Output rows are `Out` tuples; the record value is the already-encoded event."""

    def __call__(self, value: Out, ctx: Any) -> bytes:
        return value[2]


def build(args: argparse.Namespace, progress: Progress) -> Application:
    names = Names(args.prefix)
    settings = TrackingSettings(topic_prefix=args.prefix)
    stage = FoldStage(ExceptionPolicy(stuck_after=settings.stuck_after))
    codec = ShipmentStateCodec()
    accept = frozenset(BY_NAME[topics.OBSERVATIONS].event_types)
    state_topic = names(topics.STATE)
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder(ShipmentState)

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=f"{args.prefix}quix-peer.fold",
        processing_guarantee="exactly-once",
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        rocksdb_options=RocksDBOptions(dumps=encoder.encode, loads=decoder.decode),
        loglevel="WARNING",
    )
    source = app.topic(
        names(topics.OBSERVATIONS), key_deserializer="str", value_deserializer="bytes"
    )
    outputs = {
        names(t): app.topic(names(t), key_serializer="str", value_serializer=EmitValue())
        for t in (topics.UPDATES, topics.KPI_CONTRIBUTIONS, topics.TRACKING_NUMBERS, topics.STATE)
    }

    def fold_step(value: bytes, key: str, timestamp: int, headers: Any, state: State) -> list[Out]:
        progress.tick()
        try:
            envelope = decode(value, headers, accept)
        except DecodeError:
            return []  # Handoff would dead-letter it; the workload has none
        ctx = QuixContext(state, key)
        try:
            stage.handle(envelope, ctx)
        except Rejected:
            return []
        out: list[Out] = []
        for emit in ctx.emits:
            raw, hdrs = encode(emit.envelope)
            out.append((names(emit.topic), emit.key, raw, hdrs))
        written = ctx.store.written
        if written is not None:
            raw, hdrs = codec.encode(written.shipment_id, written)
            out.append((state_topic, written.shipment_id, raw, hdrs))
        return out

    sdf = app.dataframe(source)
    sdf = sdf.apply(fold_step, stateful=True, expand=True, metadata=True)
    sdf = sdf.set_headers(lambda value, key, timestamp, headers: value[3])
    sdf.to_topic(lambda value, key, timestamp, headers: outputs[value[0]], key=lambda v: v[1])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    progress = Progress(Path(args.report))
    progress.ready = True
    progress.start()
    try:
        for attempt in range(1, 4):
            try:
                app = build(args, progress)
                signal.signal(signal.SIGTERM, lambda *_, app=app: app.stop())
                app.run()
                return
            except TopicNotFoundError as exc:
                # Quix creates its changelog topic and describes it at once; on a loaded
                # broker the describe can miss it. By the next attempt it is there.
                print(f"attempt {attempt}: {exc}; retrying", file=sys.stderr, flush=True)
                time.sleep(2)
        raise SystemExit("the Quix application could not find its topics")
    finally:
        progress.stop()


if __name__ == "__main__":
    main()
