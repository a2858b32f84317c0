"""Operator commands of the `handoff` CLI: inspect shipments and topics, drain dead letters, rebuild state.

    handoff tail <topic> [--from-beginning] [--follow] [--limit N] [--key K] [--json]
    handoff shipment events <shipment-id> [--json]
    handoff dlq list <topic> [--limit N]
    handoff dlq drain <topic> [--dry-run] [--filter-reason R]
    handoff state rebuild --service S --stage X [--to-datetime T] [--state-dir D] [--dry-run]
    handoff replay <topic> --from-datetime T [--to-datetime T2] --to-topic X [--dry-run]

Topics are catalogue names (`handoff.shipments.state.v1`); the global
`--prefix` / HANDOFF_TOPIC_PREFIX is applied like the services do. Progress
goes to stderr, results to stdout, so the output pipes cleanly.

Registered into `handoff_events.cli.EXTENSIONS` when this module is imported
(cli.py imports it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord, TopicPartition

from handoff_events import cli as _cli
from handoff_events import topics as catalogue
from handoff_events.contracts import ShipmentState
from handoff_events.envelope import DecodeError, decode, rfc3339
from handoff_events.topics import BY_NAME, Names

DRAIN_GROUP = "handoff.ops.dlq-drain"
DLQ_HEADER_PREFIX = "handoff_dlq_"
_METADATA_LIMIT = 3500
"""Kafka keeps at most `offset.metadata.max.bytes` (4096 by default) per committed offset."""
_DATA_PREVIEW = 110


def say(message: str) -> None:
    """Progress for the operator (stderr, so stdout stays the result)."""
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ pure helpers


def resolve_topic(name: str, prefix: str) -> str:
    """A catalogue topic name (with or without the prefix) → the real topic name."""
    bare = name.removeprefix(prefix) if prefix else name
    if bare in BY_NAME:
        return prefix + bare
    close = difflib.get_close_matches(bare, list(BY_NAME), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else " (see `handoff topics list`)"
    raise SystemExit(f"{name!r} is not in the topic catalogue{hint}")


def header(record_headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    for key, raw in record_headers:
        if key == name and raw is not None:
            return raw.decode("utf-8", errors="replace")
    return None


def partition_for_key(key: str, partitions: Sequence[int]) -> int:
    """The partition the producers put `key` in (murmur2, like the Java client and the engine)."""
    ordered = sorted(partitions)
    chosen: int = DefaultPartitioner()(key.encode(), ordered, ordered)
    return chosen


def _time_of(record: ConsumerRecord, ce_time: datetime | None) -> str:
    if ce_time is not None:
        return rfc3339(ce_time.astimezone(UTC).replace(microsecond=0))
    return rfc3339(datetime.fromtimestamp(record.timestamp / 1000, UTC).replace(microsecond=0))


def _short(text: str, width: int = _DATA_PREVIEW) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_record(record: ConsumerRecord) -> dict[str, Any]:
    """A record as the operator wants to see it: CloudEvents attributes and the data, decoded."""
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
    doc: dict[str, Any] = {
        "partition": record.partition,
        "offset": record.offset,
        "key": key,
    }
    if record.value is None:
        doc.update(time=_time_of(record, None), type="(tombstone)", data=None)
        return doc
    try:
        env = decode(record.value, record.headers)
    except DecodeError as err:
        doc.update(
            time=_time_of(record, None),
            type=header(record.headers, "ce_type") or "(undecodable)",
            subject=header(record.headers, "ce_subject"),
            tenant=header(record.headers, "ce_tenantid"),
            error={"reason": err.reason, "field": err.field, "value": err.value_text},
            data=record.value[:_DATA_PREVIEW].decode("utf-8", errors="replace"),
        )
    else:
        doc.update(
            time=_time_of(record, env.time),
            type=env.type,
            id=env.id,
            subject=env.subject,
            tenant=env.tenant_id,
            data=msgspec.to_builtins(env.data),
        )
    dlq = {
        k.removeprefix(DLQ_HEADER_PREFIX): (v or b"").decode("utf-8", errors="replace")
        for k, v in record.headers
        if k.startswith(DLQ_HEADER_PREFIX)
    }
    if dlq:
        doc["dlq"] = dlq
    return doc


def format_line(doc: dict[str, Any]) -> str:
    """One line per record: time, type, key, subject, tenant, short data."""
    data = doc.get("data")
    if isinstance(data, dict):
        # The line already shows key, subject and tenant: spend the width on the rest.
        known = {doc.get("key"), doc.get("subject"), doc.get("tenant")}
        data = {
            k: v
            for k, v in data.items()
            if v not in (None, "", [], {}) and not (isinstance(v, str) and v in known)
        }
    text = (
        data
        if isinstance(data, str)
        else msgspec.json.encode(data).decode()
        if data is not None
        else ""
    )
    parts = [
        doc["time"],
        doc["type"],
        f"key={doc['key']}",
        f"subject={doc.get('subject') or '-'}",
        f"tenant={doc.get('tenant') or '-'}",
    ]
    if "error" in doc:
        err = doc["error"]
        parts.append(f"!{err['reason']} at {err['field']}")
    parts.append(_short(text))
    return "  ".join(parts)


def encode_offsets(offsets: Iterable[int]) -> str:
    """Sorted offsets as ranges: {3,4,5,9} → "3-5,9" (the drain's commit metadata)."""
    ordered = sorted(set(offsets))
    ranges: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        ranges.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(ranges)


def decode_offsets(text: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


@dataclass(frozen=True)
class DrainPosition:
    """Where a drain of one DLQ partition stands: every offset below `next_offset` is dealt
    with, and so is every offset in `drained_above` (records re-sent past a filtered one)."""

    next_offset: int
    drained_above: frozenset[int] = frozenset()

    def metadata(self) -> str:
        return "drained:" + encode_offsets(self.drained_above) if self.drained_above else ""

    @classmethod
    def parse(cls, offset: int, metadata: str) -> DrainPosition:
        above = (
            decode_offsets(metadata.removeprefix("drained:"))
            if metadata.startswith("drained:")
            else set()
        )
        return cls(offset, frozenset(o for o in above if o >= offset))

    def done(self, offset: int) -> bool:
        return offset < self.next_offset or offset in self.drained_above


@dataclass
class DrainPlan:
    """What a drain does with the records after its position (pure: decided before sending)."""

    resend: list[ConsumerRecord] = field(default_factory=list)
    already: int = 0
    filtered: int = 0
    position: DrainPosition = DrainPosition(0)


def plan_drain(
    records: Sequence[ConsumerRecord], start: DrainPosition, end_offset: int, reason: str | None
) -> DrainPlan:
    """Which records to re-send and the position to commit afterwards.

    Records filtered out by `reason` stay in the DLQ for a later drain: the committed
    position stops at the first of them, and the re-sent records beyond it are listed
    in the commit metadata so that no later drain sends them again.
    """
    plan = DrainPlan()
    first_kept_back: int | None = None
    sent_above: set[int] = set(start.drained_above)
    for record in records:
        if start.done(record.offset):
            plan.already += 1
            continue
        if reason is not None and header(record.headers, "handoff_dlq_reason") != reason:
            plan.filtered += 1
            if first_kept_back is None:
                first_kept_back = record.offset
            continue
        plan.resend.append(record)
        sent_above.add(record.offset)
    next_offset = end_offset if first_kept_back is None else first_kept_back
    next_offset = max(next_offset, start.next_offset)
    plan.position = DrainPosition(next_offset, frozenset(o for o in sent_above if o >= next_offset))
    return plan


def republished_headers(record: ConsumerRecord) -> list[tuple[str, bytes]]:
    """The original headers: everything but the DLQ's own `handoff_dlq_*` annotations."""
    return [
        (k, v) for k, v in record.headers if not k.startswith(DLQ_HEADER_PREFIX) and v is not None
    ]


# ------------------------------------------------------------------------ Kafka plumbing


@dataclass(frozen=True)
class Target:
    bootstrap: str
    prefix: str

    @classmethod
    def of(cls, args: argparse.Namespace) -> Target:
        return cls(_cli._bootstrap(args), _cli._prefix(args))

    def consumer(self, group_id: str | None = None) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            client_id="handoff-cli",
        )


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    cluster = await consumer._client.fetch_all_metadata()
    partitions = cluster.partitions_for_topic(topic)
    if not partitions:
        raise SystemExit(f"topic {topic} does not exist on this cluster (provision it first)")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def _read_range(
    consumer: AIOKafkaConsumer,
    start: dict[TopicPartition, int],
    end: dict[TopicPartition, int] | None,
    on_record: Callable[[ConsumerRecord], Awaitable[bool] | bool],
) -> None:
    """Read each partition from `start` to `end` (exclusive; None = forever).
    `on_record` returns False to stop early."""
    consumer.assign(list(start))
    for tp, offset in start.items():
        consumer.seek(tp, offset)
    pending = {tp for tp in start if end is None or start[tp] < end[tp]}
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=500, max_records=2000)
        records = sorted(
            (r for rs in batch.values() for r in rs),
            key=lambda r: (r.timestamp, r.partition, r.offset),
        )
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            if end is not None and record.offset >= end[tp]:
                continue
            result = on_record(record)
            keep_going = await result if not isinstance(result, bool) else result
            if not keep_going:
                return
        if end is not None:
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)


def _run(coro: Awaitable[int]) -> int:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        say("interrupted")
        return 130


# ------------------------------------------------------------------------ handoff tail


async def _tail(args: argparse.Namespace) -> int:
    target = Target.of(args)
    topic = resolve_topic(args.topic, target.prefix)
    consumer = target.consumer()
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        if args.key is not None:
            tps = [TopicPartition(topic, partition_for_key(args.key, [tp.partition for tp in tps]))]
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        backlog = args.limit or 10
        start = {
            tp: begin[tp] if args.from_beginning else max(begin[tp], end[tp] - backlog)
            for tp in tps
        }
        where = "the beginning" if args.from_beginning else f"the last {backlog} per partition"
        say(
            f"tail {topic}: {len(tps)} partition(s) from {where}"
            + (f", key {args.key!r} (partition {tps[0].partition})" if args.key is not None else "")
            + (", following (Ctrl-C to stop)" if args.follow else "")
        )
        shown = 0

        def show(record: ConsumerRecord) -> bool:
            nonlocal shown
            key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
            if args.key is not None and key != args.key:
                return True
            doc = describe_record(record)
            print(msgspec.json.encode(doc).decode() if args.json else format_line(doc), flush=True)
            shown += 1
            return not (args.limit and shown >= args.limit)

        await _read_range(consumer, start, None if args.follow else dict(end), show)
        say(f"{shown} record(s)")
        return 0
    finally:
        await consumer.stop()


# ------------------------------------------------------------------------ handoff shipment events


async def _read_key(target: Target, topic: str, key: str) -> list[ConsumerRecord]:
    """Every record of `key` in `topic`, reading only the key's partition."""
    consumer = target.consumer()
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        tp = TopicPartition(topic, partition_for_key(key, [t.partition for t in tps]))
        begin = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
        say(f"  reading {topic} partition {tp.partition} ({end - begin} records)")
        found: list[ConsumerRecord] = []

        def keep(record: ConsumerRecord) -> bool:
            if record.key is not None and record.key.decode("utf-8", errors="replace") == key:
                found.append(record)
            return True

        await _read_range(consumer, {tp: begin}, {tp: end}, keep)
        return found
    finally:
        await consumer.stop()


async def _shipment_events(args: argparse.Namespace) -> int:
    target = Target.of(args)
    shipment_id = args.shipment_id
    say(f"looking up shipment {shipment_id} on {target.bootstrap}")
    states = await _read_key(target, resolve_topic(catalogue.STATE, target.prefix), shipment_id)
    updates = await _read_key(target, resolve_topic(catalogue.UPDATES, target.prefix), shipment_id)
    state: ShipmentState | None = None
    for record in reversed(states):
        if record.value is None:
            break  # a tombstone: the shipment's state was deleted
        try:
            data = decode(record.value, record.headers, {ShipmentState.ce_type}).data
        except DecodeError as err:
            say(f"  skipping an undecodable state record at offset {record.offset}: {err}")
            continue
        if isinstance(data, ShipmentState):
            state = data
            break
    if args.json:
        print(
            msgspec.json.encode(
                {
                    "state": msgspec.to_builtins(state) if state else None,
                    "updates": [describe_record(r) for r in updates],
                }
            ).decode()
        )
        return 0 if state or updates else 1
    if state is None:
        print(f"no state for {shipment_id} on {catalogue.STATE}")
    else:
        print(f"shipment {state.shipment_id}  tenant {state.tenant_id}  order {state.order_id}")
        print(
            f"  status     {state.status}" + (f" ({state.sub_status})" if state.sub_status else "")
        )
        print(f"  carrier    {state.carrier or '-'}  tracking {state.tracking_number or '-'}")
        print(
            f"  promised   {rfc3339(state.promised_by) if state.promised_by else '-'}"
            f"  delivered {rfc3339(state.delivered_at) if state.delivered_at else '-'}"
        )
        print(
            f"  version    {state.version}, updated {rfc3339(state.updated_at)}"
            f" ({len(states)} state record(s) on the topic)"
        )
        for info in state.exceptions:
            print(
                f"  exception  {info.kind} at {rfc3339(info.detected_at)}"
                + (f": {info.detail}" if info.detail else "")
            )
        print(f"\nhistory ({len(state.history)} events, in event time)")
        for h in sorted(state.history, key=lambda h: (h.occurred_at, h.recorded_at, h.event_id)):
            status = h.status or "-"
            extra = " ".join(
                x
                for x in (
                    h.sub_status and f"({h.sub_status})",
                    h.source and f"from {h.source}",
                    h.description and f"“{h.description}”",
                    "" if h.applied else f"[not applied{': ' + h.note if h.note else ''}]",
                )
                if x
            )
            print(f"  {rfc3339(h.occurred_at)}  {status:<24} {h.type}  {extra}".rstrip())
    print(f"\nupdates on {catalogue.UPDATES} ({len(updates)})")
    for record in updates:
        print("  " + format_line(describe_record(record)))
    return 0 if state is not None or updates else 1


# ------------------------------------------------------------------------ handoff dlq


def _dlq_topic(name: str, prefix: str) -> tuple[str, str]:
    """(dlq topic, source topic), real names, from either the source or the DLQ name."""
    bare = name.removeprefix(prefix) if prefix else name
    spec = BY_NAME.get(bare) or BY_NAME.get(bare + ".dlq")
    if spec is not None and spec.dlq_of is None:
        spec = BY_NAME.get(spec.dlq)
    if spec is None or spec.dlq_of is None:
        resolve_topic(name, prefix)  # exits with a hint if it is not a topic at all
        raise SystemExit(f"{name!r} has no dead-letter topic (no service consumes it)")
    return prefix + spec.name, prefix + spec.dlq_of


async def _drain_position(
    target: Target, group: str, tps: list[TopicPartition]
) -> dict[TopicPartition, DrainPosition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=target.bootstrap, client_id="handoff-cli")
    await admin.start()
    try:
        # On a fresh cluster the first group lookup creates __consumer_offsets and answers
        # "coordinator not available" meanwhile: wait for it rather than fail.
        for attempt in range(60):
            try:
                committed = await admin.list_consumer_group_offsets(group, partitions=tps)
                break
            except GroupCoordinatorNotAvailableError:
                if attempt == 59:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await admin.close()
    out: dict[TopicPartition, DrainPosition] = {}
    for tp in tps:
        meta = committed.get(tp)
        if meta is None or meta.offset < 0:
            out[tp] = DrainPosition(0)
        else:
            out[tp] = DrainPosition.parse(meta.offset, meta.metadata or "")
    return out


async def _dlq_records(
    target: Target, dlq: str
) -> tuple[dict[TopicPartition, list[ConsumerRecord]], dict[TopicPartition, int]]:
    consumer = target.consumer()
    await consumer.start()
    try:
        tps = await _partitions(consumer, dlq)
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        records: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in tps}

        def keep(record: ConsumerRecord) -> bool:
            records[TopicPartition(record.topic, record.partition)].append(record)
            return True

        await _read_range(consumer, dict(begin), dict(end), keep)
        return records, {tp: int(o) for tp, o in end.items()}
    finally:
        await consumer.stop()


async def _dlq_list(args: argparse.Namespace) -> int:
    target = Target.of(args)
    dlq, source = _dlq_topic(args.topic, target.prefix)
    group = target.prefix + DRAIN_GROUP
    say(f"reading {dlq} (dead letters of {source})")
    records, _ = await _dlq_records(target, dlq)
    positions = await _drain_position(target, group, list(records))
    reasons: dict[str, int] = {}
    shown = pending = 0
    for tp, rs in records.items():
        for record in rs:
            doc = describe_record(record)
            dlq_headers = doc.get("dlq", {})
            reason = dlq_headers.get("reason", "?")
            drained = positions[tp].done(record.offset)
            if not drained:
                pending += 1
                reasons[reason] = reasons.get(reason, 0) + 1
            if args.limit and shown >= args.limit:
                continue
            shown += 1
            mark = "drained" if drained else "pending"
            print(
                f"{tp.partition}:{record.offset}  {mark}  {dlq_headers.get('at', doc['time'])}"
                f"  reason={reason}  field={dlq_headers.get('field', '-')}"
                f"  value={dlq_headers.get('value', '-')!s}"
            )
            print(
                f"    {doc['type']}  key={doc['key']}  from {dlq_headers.get('topic', '?')}"
                f"[{dlq_headers.get('partition', '?')}]@{dlq_headers.get('offset', '?')}"
                f" by {dlq_headers.get('service', '?')}"
            )
            if dlq_headers.get("message"):
                print(f"    {_short(dlq_headers['message'], 160)}")
    total = sum(len(rs) for rs in records.values())
    summary = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    print(f"{total} dead letter(s), {pending} pending" + (f": {summary}" if summary else ""))
    return 0


async def _dlq_drain(args: argparse.Namespace) -> int:
    target = Target.of(args)
    dlq, source = _dlq_topic(args.topic, target.prefix)
    group = target.prefix + DRAIN_GROUP
    say(
        f"draining {dlq} → {source} (group {group})"
        + (f", only reason {args.filter_reason!r}" if args.filter_reason else "")
        + (" [dry run]" if args.dry_run else "")
    )
    records, end = await _dlq_records(target, dlq)
    positions = await _drain_position(target, group, list(records))
    plans = {
        tp: plan_drain(rs, positions[tp], end[tp], args.filter_reason) for tp, rs in records.items()
    }
    resend = [r for p in plans.values() for r in p.resend]
    for tp, plan in plans.items():
        if len(plan.position.metadata()) > _METADATA_LIMIT:
            raise SystemExit(
                f"{tp.topic}[{tp.partition}]: too many scattered re-sent records to remember in "
                "the commit; drain the kept-back reasons first (or drain without --filter-reason)"
            )
    for record in resend:
        reason = header(record.headers, "handoff_dlq_reason") or "?"
        origin = header(record.headers, "handoff_dlq_topic")
        if origin is not None and origin != source:
            say(f"  note: offset {record.offset} came from {origin}, re-publishing to {source}")
        verb = "would re-publish" if args.dry_run else "re-publish"
        say(f"  {verb} {record.partition}:{record.offset} key={_key(record)} reason={reason}")
    already = sum(p.already for p in plans.values())
    filtered = sum(p.filtered for p in plans.values())
    if args.dry_run:
        print(
            f"dry run: {len(resend)} to re-publish, {filtered} kept back by the filter, "
            f"{already} drained before; nothing sent, nothing committed"
        )
        return 0
    changed = {tp: p.position for tp, p in plans.items() if p.resend or p.position != positions[tp]}
    if changed:
        await _publish_and_commit(target, source, group, dlq, resend, changed)
    for tp, position in changed.items():
        say(
            f"  committed drain position {position.next_offset} on {tp.topic}[{tp.partition}]"
            + (
                f" (+{len(position.drained_above)} re-sent beyond it)"
                if position.drained_above
                else ""
            )
        )
    print(
        f"re-published {len(resend)} record(s) to {source}, {filtered} kept back by the filter, "
        f"{already} drained before"
    )
    return 0


def _key(record: ConsumerRecord) -> str:
    return record.key.decode("utf-8", errors="replace") if record.key is not None else "-"


async def _publish_and_commit(
    target: Target,
    source: str,
    group: str,
    dlq: str,
    resend: list[ConsumerRecord],
    positions: dict[TopicPartition, DrainPosition],
) -> None:
    """Re-publish and commit the drain position in ONE transaction: a crash or a concurrent drain
    (fenced by the shared transactional id) can neither lose the position nor send twice."""
    async with _transaction(target, f"{group}.{dlq}", "handoff-cli-dlq-drain") as producer:
        for record in resend:
            await producer.send(
                source, record.value, key=record.key, headers=republished_headers(record)
            )
        offsets = {tp: (p.next_offset, p.metadata()) for tp, p in positions.items()}
        await producer.send_offsets_to_transaction(offsets, group)


@contextlib.asynccontextmanager
async def _transaction(
    target: Target, transactional_id: str, client_id: str
) -> AsyncIterator[AIOKafkaProducer]:
    """A transactional producer inside one transaction: committed when the block ends,
    aborted if it raises, and always stopped."""
    producer = AIOKafkaProducer(
        bootstrap_servers=target.bootstrap,
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        client_id=client_id,
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        try:
            yield producer
            await producer.commit_transaction()
        except BaseException:
            await producer.abort_transaction()
            raise
    finally:
        await producer.stop()


# ------------------------------------------------------------------------ handoff state rebuild


async def _state_rebuild(args: argparse.Namespace) -> int:
    target = Target.of(args)
    names = Names(target.prefix)
    group = names.group(args.service, args.stage)
    state_dir = Path(args.state_dir or os.environ.get("HANDOFF_STATE_DIR", ".run/state"))
    snapshot_dir = state_dir / group
    to_time: datetime | None = None
    if args.to_datetime:
        to_time = datetime.fromisoformat(args.to_datetime.replace("Z", "+00:00"))
        if to_time.tzinfo is None:
            raise SystemExit("--to-datetime needs an offset, e.g. 2026-11-20T08:00:00Z")
    say(f"rebuilding the state of stage {args.stage!r} of {args.service} (group {group})")

    # 1. The service must be stopped: a running member would keep its positions and state.
    admin = AIOKafkaAdminClient(bootstrap_servers=target.bootstrap, client_id="handoff-cli")
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    described = response.to_object()["groups"][0]
    members = list(described["members"])
    say(f"  1. group state {described['state']}, {len(members)} active member(s)")
    if members:
        for m in members:
            say(f"     - {m['client_id']} on {m['client_host']}")
        print(
            f"refusing: {args.service} is still running (group {group} has active members); "
            "stop every instance first"
        )
        return 3
    tps = sorted(
        (tp for tp, meta in committed.items() if meta.offset >= 0),
        key=lambda tp: (tp.topic, tp.partition),
    )
    if not tps:
        say("  2. the group has no committed offsets: it will start from the earliest anyway")

    # 2. Reset the group's committed input offsets.
    consumer = target.consumer(group_id=group)
    await consumer.start()
    try:
        if tps:
            if to_time is None:
                targets = {tp: int(o) for tp, o in (await consumer.beginning_offsets(tps)).items()}
                where = "the earliest offsets"
            else:
                found = await consumer.offsets_for_times(
                    {tp: int(to_time.timestamp() * 1000) for tp in tps}
                )
                ends = await consumer.end_offsets(tps)
                targets = {
                    tp: int(found[tp].offset) if found.get(tp) else int(ends[tp]) for tp in tps
                }
                where = f"the first offsets at or after {rfc3339(to_time)}"
            for tp in tps:
                say(f"     {tp.topic}[{tp.partition}]: {committed[tp].offset} → {targets[tp]}")
            if args.dry_run:
                say(f"  2. would reset {len(tps)} partition(s) to {where}")
            else:
                consumer.assign(tps)
                await consumer.commit(targets)
                say(f"  2. reset {len(tps)} partition(s) to {where}")
    finally:
        await consumer.stop()

    # 3. Delete the local snapshot: it was written at the old position.
    if snapshot_dir.exists():
        if args.dry_run:
            say(f"  3. would delete the local snapshot {snapshot_dir}")
        else:
            shutil.rmtree(snapshot_dir)
            say(f"  3. deleted the local snapshot {snapshot_dir}")
    else:
        say(f"  3. no local snapshot at {snapshot_dir}")
    print(
        ("dry run: nothing changed. " if args.dry_run else "done. ")
        + f"Start {args.service}: it restores the stage's store from its changelog, then "
        "re-processes the inputs from the reset offsets (outputs are re-emitted with the same "
        "deterministic ids)."
    )
    return 0


# ------------------------------------------------------------------------ handoff replay


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"{option}: {text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise SystemExit(f"{option} needs an offset, e.g. 2026-11-20T08:00:00Z")
    return moment


async def _replay(args: argparse.Namespace) -> int:
    target = Target.of(args)
    source = resolve_topic(args.topic, target.prefix)
    destination = resolve_topic(args.to_topic, target.prefix)
    if source == destination:
        raise SystemExit("--to-topic must differ from the topic read (that would loop)")
    since = _moment(args.from_datetime, "--from-datetime")
    until = _moment(args.to_datetime, "--to-datetime") if args.to_datetime else None
    consumer = target.consumer()
    await consumer.start()
    try:
        tps = await _partitions(consumer, source)
        found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
        end = {tp: int(o) for tp, o in (await consumer.end_offsets(tps)).items()}
        if until is not None:
            stop = await consumer.offsets_for_times(
                {tp: int(until.timestamp() * 1000) for tp in tps}
            )
            end = {tp: int(stop[tp].offset) if stop.get(tp) else end[tp] for tp in tps}
        start = {tp: int(found[tp].offset) if found.get(tp) else end[tp] for tp in tps}
        total = sum(max(0, end[tp] - start[tp]) for tp in tps)
        say(
            f"replaying {total} record(s) of {source} from {rfc3339(since)}"
            + (f" to {rfc3339(until)}" if until else " to the current end")
            + f" into {destination}"
            + (" [dry run]" if args.dry_run else "")
        )
        picked: list[ConsumerRecord] = []

        def keep(record: ConsumerRecord) -> bool:
            picked.append(record)
            return True

        await _read_range(consumer, start, end, keep)
    finally:
        await consumer.stop()
    if args.dry_run:
        print(f"dry run: {len(picked)} record(s) would be copied to {destination}")
        return 0
    # One transaction: read_committed consumers see the whole replay or none of it.
    replay_id = f"{target.prefix}handoff.ops.replay.{destination}"
    async with _transaction(target, replay_id, "handoff-cli-replay") as producer:
        for record in picked:
            await producer.send(
                destination,
                record.value,
                key=record.key,
                headers=[(k, v) for k, v in record.headers if v is not None],
            )
    print(f"copied {len(picked)} record(s) from {source} to {destination}")
    return 0


# ------------------------------------------------------------------------ registration

REBUILD_HELP = """\
The safe procedure to rebuild one stage's state by re-processing its inputs.

What it does, in order:
  1. checks that the service is stopped: its consumer group handoff.<service>.<stage>
     (with the topic prefix) must have no active members, otherwise it refuses (exit 3);
  2. resets the group's committed offsets on every input partition it has committed,
     to the earliest offsets (or, with --to-datetime, to the first offsets at or after
     that time);
  3. deletes the stage's local snapshot directory (<state-dir>/<group>), which was
     written at the old input position.
When the service starts again, each task restores its store from the stage's
changelog and re-processes its inputs from the reset offsets; the changelog is
re-derived by that re-processing (every changed key is written again), and the
outputs are re-emitted with the same deterministic event ids, so consumers can
recognise them as duplicates.

What it does NOT do:
  * it does not delete or truncate the changelog topic: the restored store is the
    starting point the inputs are re-applied to. A stage whose handler is idempotent
    per input event (tracking's fold keeps every applied event id in the history)
    converges to the old state plus whatever the re-processing changes, e.g. the
    output of a fixed handler; a stage that counts without remembering event ids
    would count twice, so check the stage first. To start from an empty store the
    changelog must be emptied, which this command never does (a changelog may be a
    public topic, e.g. handoff.shipments.state.v1);
  * it does not touch other stages, other services' groups, or output topics;
  * it cannot bring back input records that retention already deleted: the rebuild
    sees only what the input topics still hold.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    raw = argparse.RawDescriptionHelpFormatter

    tail = sub.add_parser(
        "tail",
        help="print a topic's records as decoded CloudEvents, one per line",
        description="Print a topic's records as decoded CloudEvents, one line each: time, type, "
        "key, subject, tenant and the start of the data. Without --from-beginning it starts "
        "with the last --limit (default 10) records of each partition.",
    )
    tail.add_argument("topic", help="catalogue topic name, e.g. handoff.shipments.updates.v1")
    tail.add_argument("--from-beginning", action="store_true", help="start at the earliest offsets")
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    tail.add_argument("--limit", "-n", type=int, default=0, help="stop after N records")
    tail.add_argument("--key", help="only records with this key (reads only its partition)")
    tail.add_argument("--json", action="store_true", help="one JSON document per record")
    tail.set_defaults(func=lambda a: _run(_tail(a)))

    shipment = sub.add_parser("shipment", help="inspect one shipment").add_subparsers(
        dest="shipment_cmd", required=True
    )
    events = shipment.add_parser(
        "events",
        help="a shipment's state, event history and updates",
        description="Read the shipment's latest state (and its full event history) from "
        "handoff.shipments.state.v1 and its records on handoff.shipments.updates.v1, reading "
        "only the partition its id hashes to. Exit 1 if nothing is found.",
    )
    events.add_argument("shipment_id")
    events.add_argument("--json", action="store_true", help="machine-readable output")
    events.set_defaults(func=lambda a: _run(_shipment_events(a)))

    dlq = sub.add_parser("dlq", help="dead letters: list and drain").add_subparsers(
        dest="dlq_cmd", required=True
    )
    lst = dlq.add_parser(
        "list",
        help="the dead letters of a topic, with reason, field and value",
        description="List a dead-letter topic (give the source topic or its .dlq): offset, "
        "whether a drain already re-published it, the reason/field/value/message headers and "
        "where the record came from.",
    )
    lst.add_argument("topic")
    lst.add_argument(
        "--limit", type=int, default=0, help="print at most N entries (counts stay complete)"
    )
    lst.set_defaults(func=lambda a: _run(_dlq_list(a)))
    drain = dlq.add_parser(
        "drain",
        help="re-publish dead letters to their source topic, once",
        formatter_class=raw,
        description="""\
Re-publish the dead letters of a topic to the topic they came from: original key,
value and headers (minus the handoff_dlq_* annotations), acks=all. The records are
sent and the drain position is committed for the consumer group
handoff.ops.dlq-drain in ONE Kafka transaction, so a second drain never re-sends
them, and a crashed or concurrent drain neither loses nor duplicates records.
With --filter-reason only that reason is re-sent; the others stay for a later
drain (the commit remembers which records past them were already re-sent).
Fix the cause first: a record that fails again lands in the DLQ again.""",
    )
    drain.add_argument("topic")
    drain.add_argument(
        "--dry-run", action="store_true", help="show what would be sent; send nothing"
    )
    drain.add_argument("--filter-reason", help="only records with this handoff_dlq_reason")
    drain.set_defaults(func=lambda a: _run(_dlq_drain(a)))

    state = sub.add_parser("state", help="stage state: rebuild").add_subparsers(
        dest="state_cmd", required=True
    )
    rebuild = state.add_parser(
        "rebuild",
        help="reset a stopped stage to re-process its inputs",
        formatter_class=raw,
        description=REBUILD_HELP,
    )
    rebuild.add_argument("--service", required=True, choices=catalogue.SERVICES)
    rebuild.add_argument("--stage", required=True, help="the stage name, e.g. fold")
    rebuild.add_argument(
        "--to-datetime", help="reset to this time (RFC 3339) instead of the earliest"
    )
    rebuild.add_argument("--state-dir", help="the service's HANDOFF_STATE_DIR (default .run/state)")
    rebuild.add_argument("--dry-run", action="store_true", help="show the plan; change nothing")
    rebuild.set_defaults(func=lambda a: _run(_state_rebuild(a)))

    replay = sub.add_parser(
        "replay",
        help="copy a time range of a topic into another topic",
        description="Copy the records of a topic written from --from-datetime (to --to-datetime, "
        "default: the end now) into --to-topic, with their keys, values and headers, in one "
        "transaction (acks=all): read_committed consumers see all of it or none. The copies are "
        "the same CloudEvents (same ids): a consumer that de-duplicates by event id (tracking's "
        "fold does) ignores the copies of events it has already applied.",
    )
    replay.add_argument("topic", help="catalogue topic to read")
    replay.add_argument(
        "--from-datetime", required=True, help="RFC 3339, e.g. 2026-11-20T08:00:00Z"
    )
    replay.add_argument("--to-datetime", help="stop before records written at or after this time")
    replay.add_argument("--to-topic", required=True, help="catalogue topic to write")
    replay.add_argument("--dry-run", action="store_true", help="count what would be copied")
    replay.set_defaults(func=lambda a: _run(_replay(a)))


_cli.EXTENSIONS.append(register)
# `python -m handoff_events.cli` runs cli.py as __main__, a second module object:
# register there too so the commands exist however the CLI is started.
_main = sys.modules.get("__main__")
if (
    _main is not None
    and _main is not _cli
    and getattr(getattr(_main, "__spec__", None), "name", None) == "handoff_events.cli"
):
    _main.EXTENSIONS.append(register)
