"""Follow Handoff's shipment updates with plain aiokafka (what a Python marketplace would write).

    python consume_updates.py                        # follow forever
    python consume_updates.py --max 1 --timeout 30   # stop after the first update

Environment: KAFKA (default 127.0.0.1:19092), TOPIC_PREFIX (default empty), TENANT
(default acme), GROUP (your consumer group, default `<tenant>-shipment-updates`).

Prints one JSON line per update. The rules it follows are the integration guide's:
read_committed, commit only after handling, skip other tenants' records, drop duplicates
by `ce_id`, and ignore fields it does not know (new optional fields may appear in v1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections import OrderedDict

from aiokafka import AIOKafkaConsumer


class SeenIds:
    """The last `size` event ids. A real integration keeps the ids it has applied in its own
    database, in the same transaction as the effect, so duplicates stay harmless across
    restarts; a bounded in-memory window is enough for a demo."""

    def __init__(self, size: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first_time(self, event_id: str) -> bool:
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


def headers_of(record: object) -> dict[str, str]:
    return {k: v.decode() for k, v in getattr(record, "headers", ()) or () if v is not None}


async def follow(max_updates: int | None, timeout_s: float | None, order_id: str | None) -> int:
    tenant = os.environ.get("TENANT", "acme")
    consumer = AIOKafkaConsumer(
        os.environ.get("TOPIC_PREFIX", "") + "handoff.shipments.updates.v1",
        bootstrap_servers=os.environ.get("KAFKA", "127.0.0.1:19092"),
        group_id=os.environ.get("GROUP", f"{tenant}-shipment-updates"),
        isolation_level="read_committed",  # never see records of aborted transactions
        enable_auto_commit=False,  # commit after handling: at-least-once, never at-most-once
        auto_offset_reset="earliest",  # a new group starts at the oldest retained update
    )
    seen = SeenIds()
    handled = 0
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    await consumer.start()
    try:
        while max_updates is None or handled < max_updates:
            if deadline is not None and loop.time() > deadline:
                break
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    headers = headers_of(record)
                    if headers.get("ce_tenantid") != tenant:
                        continue
                    if not seen.first_time(headers.get("ce_id", "")):
                        continue  # a duplicate: already handled
                    update = json.loads(record.value)
                    if order_id is not None and update.get("order_id") != order_id:
                        continue
                    print(
                        json.dumps(
                            {
                                "type": headers.get("ce_type"),
                                "shipment_id": update["shipment_id"],
                                "order_id": update["order_id"],
                                "milestone": update["milestone"],
                                "status": update["status"],
                                "update_id": update["update_id"],
                            }
                        ),
                        flush=True,
                    )
                    handled += 1
            if batches:
                await consumer.commit()  # after handling: a crash re-delivers, never skips
    finally:
        await consumer.stop()
    return handled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max", type=int, default=None, help="stop once this many updates were handled"
    )
    parser.add_argument("--timeout", type=float, default=None, help="stop after this many s")
    parser.add_argument("--order-id", default=None, help="only this order's updates")
    args = parser.parse_args()
    handled = asyncio.run(follow(args.max, args.timeout, args.order_id))
    if args.max is not None and handled < args.max:
        raise SystemExit(f"only {handled} of {args.max} updates before the timeout")


if __name__ == "__main__":
    main()
