"""A stand-alone process running a counting stage on the stream engine, to be SIGKILLed by tests.

usage: python tests/integration/engine_runner.py <bootstrap> <topic-prefix> <state-dir>
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import msgspec
from handoff_events import topics
from handoff_events.contracts import Event, ShipmentCancelled
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.api import Context, MsgpackCodec, StatefulProcessor
from handoff_events.stream.engine import StreamEngine

CHANGELOG = "handoff.carrier_allocation.shipments-changelog.v1"


class Tally(msgspec.Struct, frozen=True):
    seen: int
    last_offset: int


def handle(env: Envelope[Event], ctx: Context[Tally]) -> None:
    data = env.data
    assert isinstance(data, ShipmentCancelled)
    old = ctx.store.get(data.shipment_id) or Tally(0, -1)
    ctx.store.put(data.shipment_id, Tally(old.seen + 1, ctx.offset))
    # The output's id is derived from the input's: a re-run after a crash re-emits the same id.
    ctx.emit(
        topics.ALLOCATIONS,
        data.shipment_id,
        new_envelope(data, source="runner", tenant_id=env.tenant_id, caused_by=env.id),
    )


PROCESSOR = StatefulProcessor(
    service="carrier_allocation",
    stage="killtest",
    inputs=[topics.INTAKE_SHIPMENTS],
    changelog=CHANGELOG,
    codec=MsgpackCodec(Tally),
    handle=handle,
)


async def main(bootstrap: str, prefix: str, state_dir: str) -> None:
    settings = ServiceSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        partitions=3,
        state_dir=Path(state_dir),
        max_batch_records=200,
        # 300 shipments over 3 tasks, room for 20 unpacked per task: nearly every record
        # reads a state packed after an earlier commit, so the kills also cover that path.
        store_unpacked_max=60,
    )
    engine = StreamEngine(PROCESSOR, settings)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await engine.start()
    print("started", flush=True)
    await stop.wait()
    await engine.stop()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
