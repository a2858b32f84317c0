"""What every benchmark scenario shares: the bench broker, result rows, machine facts,
topic set-up, the carrier-observation workload, fast and paced producers, the
latency probe, and the handling of worker processes.

Latency is always measured the same way: the load generator stamps each input
event's CloudEvents time (`ce_time`) with the wall clock at the moment it hands
the record to the producer, and a `read_committed` consumer on the output topic
subtracts the `ce_time` of the output record (the shipment state's `updated_at`,
which the fold derives from the latest input's `ce_time`) from the wall clock
when it sees the record. So each sample spans produce -> broker -> processor ->
transaction commit -> visible to a read_committed reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition
from handoff_events import topics
from handoff_events.contracts import TrackingObserved
from handoff_events.envelope import encode, new_envelope, rfc3339
from handoff_events.ids import event_id
from handoff_events.provision import provision
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.engine import _send_batched
from handoff_events.values import Location

REPO = Path(__file__).resolve().parent.parent
RUN_DIR = REPO / ".run" / "bench"
PEER_VENV = REPO / ".cache" / "bench-peer-venv"
QUIX_VERSION = "3.28.1"
BENCH_PORT = 31092
"""Below Linux's ephemeral range (32768+), like every port the harness binds, so an
outgoing connection can never be holding it."""
PARTITIONS = int(os.environ.get("HANDOFF_BENCH_PARTITIONS", "12"))
"""Partitions of every catalogue topic a scenario provisions (and `HANDOFF_PARTITIONS` of
the services it starts): 12, the catalogue's default, unless `HANDOFF_BENCH_PARTITIONS`
says otherwise (to see what a smaller layout costs; the results record the number)."""
Record = tuple[int, bytes, bytes, list[tuple[str, bytes]]]
"""(partition, key, value, headers) of one pre-encoded input record."""


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- results


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    metric: str
    value: float | None
    unit: str
    target: str | None = None
    ok: bool | None = None
    note: str = ""

    @classmethod
    def na(
        cls, scenario: str, metric: str, unit: str, reason: str, target: str | None = None
    ) -> Row:
        reason = " ".join(reason.split())  # one line in the table, whatever the error said
        return cls(scenario, metric, None, unit, target, None, f"n/a ({reason})")

    def shown_value(self) -> str:
        if self.value is None:
            return "n/a"
        if abs(self.value) >= 100:
            return f"{self.value:,.0f}"
        return f"{self.value:,.2f}"

    def mark(self) -> str:
        return {True: "✓", False: "✗", None: ""}[self.ok]


def at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


def percentile(samples: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


# ---------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_mb() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # e.g. the venv is being re-synced right now
        return "unknown"


def machine_facts(kafka_version: str) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "memory_mb": _mem_total_mb(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiokafka": _version("aiokafka"),
        "msgspec": _version("msgspec"),
        "kafka": kafka_version,
        "quixstreams": QUIX_VERSION,
        "partitions": PARTITIONS,
    }


# ---------------------------------------------------------------------------- broker


def kafkactl() -> ModuleType:
    """deploy/kafka/kafkactl.py as a library (it is a stdlib-only script, not a package)."""
    path = REPO / "deploy" / "kafka" / "kafkactl.py"
    spec = importlib.util.spec_from_file_location("handoff_kafkactl", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("handoff_kafkactl", module)
    spec.loader.exec_module(module)
    return module


class BenchBroker:
    """A single Kafka node of its own for the benchmarks: own data directory under
    .run/bench/kafka and own ports (default 31092/31093), so a run neither disturbs
    nor is disturbed by the test broker on 19092. Wiped before every run: the
    numbers never depend on what an earlier run left behind.

    kafkactl's `--port-base` moves the ports but not the data directory (both
    nodes would share .run/kafka/single), so this builds kafkactl's `Node` itself.
    """

    def __init__(self, port: int = BENCH_PORT, heap: str = "1g"):
        self.ctl = kafkactl()
        self.node = self.ctl.Node(
            "bench",
            1,
            # Per port, so two runs on different ports never share (or wipe) a data directory.
            RUN_DIR / ("kafka" if port == BENCH_PORT else f"kafka-{port}"),
            port,
            port + 1,
            heap,
            in_cluster=False,
        )

    @property
    def bootstrap(self) -> str:
        return str(self.node.bootstrap)

    @property
    def version(self) -> str:
        return str(self.ctl.kafka_version())

    def classpath(self) -> str:
        return str(self.ctl.classpath())

    def start(self, wait_s: float = 180.0) -> None:
        if self.ctl.node_pid(self.node) is not None:
            self.stop()
        if self.node.directory.exists():
            shutil.rmtree(self.node.directory)
        self.node.directory.mkdir(parents=True)
        with self.ctl.quiet():
            self.ctl._start_nodes([self.node], wait_s, RUN_DIR / ".kafka.lock")

    def stop(self) -> None:
        with self.ctl.quiet():
            self.ctl._signal_nodes([self.node], "TERM", 30.0)

    def pid(self) -> int | None:
        pid: int | None = self.ctl.node_pid(self.node)
        return pid


# ---------------------------------------------------------------------------- topics


async def provision_catalogue(bootstrap: str, prefix: str, partitions: int = PARTITIONS) -> None:
    report = await provision(bootstrap, prefix=prefix, partitions=partitions, replication_factor=1)
    if not report.ok:
        raise RuntimeError(f"provisioning {prefix} failed: {report.mismatched}")


async def create_topic(bootstrap: str, name: str, partitions: int, **config: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=dict(config))], timeout_ms=30_000
        )
        for error in getattr(response, "topic_errors", ()):
            if error[1] not in (0, 36):  # 36: already exists
                raise RuntimeError(f"creating {name} failed: {error}")
        # Wait until the broker's metadata lists it: clients that describe a topic right
        # after creating it (Quix does) must not find it missing.
        deadline = time.monotonic() + 30
        while name not in await admin.list_topics():
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {name} did not appear within 30 s")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def committed_total(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return sum(max(0, meta.offset) for meta in offsets.values())
    finally:
        await admin.close()


async def wait_committed(
    bootstrap: str, group: str, topic: str, expected: int, timeout_s: float
) -> bool:
    """Poll until the group's committed offsets on `topic` add up to `expected`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            offsets = await admin.list_consumer_group_offsets(group)
            done = sum(m.offset for tp, m in offsets.items() if tp.topic == topic and m.offset > 0)
            if done >= expected:
                return True
            await asyncio.sleep(0.25)
        return False
    finally:
        await admin.close()


def partition_of(key: bytes, partitions: int) -> int:
    """The Java client's (and aiokafka's) default partitioner: murmur2 of the key."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


# ---------------------------------------------------------------------------- workload

# A parcel's carrier scans, in order: what a Swift (express) shipment typically reports.
LIFECYCLE: tuple[tuple[str, str, str | None], ...] = (
    ("PUP", "picked_up", "collected_from_sender"),
    ("ARR", "in_transit", "arrived_at_facility"),
    ("DEP", "in_transit", "departed_facility"),
    ("ARR", "in_transit", "arrived_at_facility"),
    ("DEP", "in_transit", "departed_facility"),
    ("ARR", "in_transit", "arrived_at_facility"),
    ("OFD", "out_for_delivery", None),
    ("DLV", "delivered", None),
)
CITIES = (("Berlin", "10115"), ("Leipzig", "04109"), ("Hamburg", "20095"), ("München", "80331"))
TENANT = "acme"


def bench_shipment_id(run: str, n: int) -> str:
    return f"shp_{run}{n:0{20 - len(run)}d}"


def observations(
    shipments: int,
    per_shipment: int,
    run: str,
    partitions: int = PARTITIONS,
    numbers: Sequence[int] | None = None,
) -> list[Record]:
    """Carrier observations for `shipments` shipments, `per_shipment` scans each (at most
    len(LIFECYCLE)), interleaved as live traffic is: scan k of every shipment comes
    before scan k+1 of any. Keyed by shipment id (as the join emits them); `ce_time`
    is a placeholder the sender overwrites with the send time. `numbers` picks which
    shipments of the run (instead of the first `shipments`)."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    placeholder = datetime(2000, 1, 1, tzinfo=UTC)
    out: list[Record] = []
    for step in range(min(per_shipment, len(LIFECYCLE))):
        code, status, sub_status = LIFECYCLE[step]
        for n in range(shipments) if numbers is None else numbers:
            sid = bench_shipment_id(run, n)
            city, postal = CITIES[(n + step) % len(CITIES)]
            obs = TrackingObserved(
                shipment_id=sid,
                carrier="swift",
                tracking_number=f"SW{n % 1_000_000_000:09d}",
                carrier_event_id=f"swift-{run}-{n}-{step}",
                carrier_code=code,
                status=status,  # type: ignore[arg-type]
                sub_status=sub_status,
                description=f"{code} scan",
                occurred_at=base + timedelta(minutes=10 * step, seconds=n % 600),
                received_at=datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC),  # RECEIVED_MARK
                location=Location(city=city, postal_code=postal, country="DE"),
            )
            env = new_envelope(
                obs,
                source="handoff/tracking",
                tenant_id=TENANT,
                id=event_id(obs.ce_type, sid, obs.carrier_event_id),
                time=placeholder,
            )
            value, headers = encode(env)
            key = sid.encode()
            out.append((partition_of(key, partitions), key, value, headers))
    return out


def record_size(record: Record) -> int:
    """Bytes of one record as the broker stores them: key + value + header names/values."""
    _, key, value, headers = record
    return len(key) + len(value) + sum(len(k) + len(v) for k, v in headers)


# The fold takes an observation's `received_at` (when Handoff got the scan) as the time
# it was recorded, and the state's `updated_at` -- its `ce_time` on the state topic -- is
# the latest of those. The workload carries this placeholder there; the sender replaces
# it with the send time, which is what the latency probe subtracts.
RECEIVED_MARK = msgspec.json.encode(datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC))


def _mark(moment: datetime) -> bytes:
    # A whole second would be encoded without a fraction; keep the form stable.
    return msgspec.json.encode(moment if moment.microsecond else moment.replace(microsecond=1))


def stamped(record: Record, moment: datetime) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(value, headers) of a workload record stamped with `moment` as its receive time
    (`received_at` in the data, `ce_time` in the headers)."""
    _, _, value, headers = record
    stamp = rfc3339(moment).encode()
    return (
        value.replace(RECEIVED_MARK, _mark(moment), 1),
        [(k, stamp if k == "ce_time" else v) for k, v in headers],
    )


def _producer(bootstrap: str, linger_ms: int = 5) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=512 * 1024,
        request_timeout_ms=60_000,
        # As Handoff's own producers write (the webhook edge writes the carrier events).
        compression_type=ServiceSettings().kafka_compression(),
    )


async def blast(
    bootstrap: str,
    topic: str,
    records: Sequence[Record],
    chunk: int = 500,
    batch_bytes: int | None = None,
) -> float:
    """Produce pre-encoded records as fast as the client allows (acks=all, idempotent),
    `chunk` per partition at a time, cut into record batches and sent in rounds as a
    stream stage sends a transaction's records (`engine._send_batched`; `batch_bytes`
    caps a batch's value bytes as `changelog_batch_bytes` does for a changelog). Every
    record is stamped with its chunk's send time. Returns the seconds it took."""
    producer = _producer(bootstrap)
    await producer.start()
    started = time.monotonic()
    caps = None if batch_bytes is None else {topic: batch_bytes}
    try:
        await producer.partitions_for(topic)
        futures = []
        by_partition: dict[int, list[Record]] = {}
        for record in records:
            by_partition.setdefault(record[0], []).append(record)
        for start in range(0, max(len(v) for v in by_partition.values()), chunk):
            now = datetime.now(UTC)
            outgoing: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]], int]]
            outgoing = [
                (topic, record[1], *stamped(record, now), partition)
                for partition, items in by_partition.items()
                for record in items[start : start + chunk]
            ]
            futures += await _send_batched(producer, outgoing, caps)  # type: ignore[arg-type]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def paced(
    bootstrap: str, topic: str, records: Iterable[Record], rate: float, seconds: float
) -> tuple[int, float]:
    """Offer records at `rate` per second for `seconds` (open loop: the schedule does not
    wait for the processor), each stamped with its own send time. Returns (sent,
    achieved rate)."""
    producer = _producer(bootstrap, linger_ms=1)
    await producer.start()
    sent = 0
    futures = []
    try:
        started = time.monotonic()
        source = iter(records)
        exhausted = False
        while not exhausted:
            elapsed = time.monotonic() - started
            if elapsed >= seconds:
                break
            due = int(elapsed * rate) + 1
            while sent < due:
                record = next(source, None)
                if record is None:
                    exhausted = True
                    break
                value, headers = stamped(record, datetime.now(UTC))
                futures.append(
                    await producer.send(
                        topic, value, key=record[1], partition=record[0], headers=headers
                    )
                )
                sent += 1
            await asyncio.sleep(0.005)  # 5 ms slices: smooth enough, cheap enough
        took = time.monotonic() - started
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent, sent / took if took else 0.0


class LatencyProbe:
    """A read_committed consumer that turns output records into latency samples:
    wall clock at arrival minus the record's `ce_time` (see the module docstring).

    Only outputs of events sent since `collect()` count: a processor that commits on an
    interval (the Quix Streams peer: every 5 s) still makes the previous phase's last
    outputs visible after the next phase began, stamped with their own, older send times;
    those are counted in `stale` and left out of the samples."""

    def __init__(self, bootstrap: str, topic: str, ce_type: bytes | None = None):
        self.topic = topic
        self.ce_type = ce_type
        self.samples: list[float] = []
        self.handled: list[float] = []
        """Per sample: produced -> output record created (the processor's send: fetch,
        queueing, handling); the rest of the sample is committed and read back."""
        self.since: float | None = None
        """Wall clock when collecting began (None: not yet); outputs stamped earlier are
        `stale`."""
        self.seen = 0
        self.stale = 0
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            isolation_level="read_committed",
            auto_offset_reset="latest",
            enable_auto_commit=False,
            fetch_max_wait_ms=500,  # returns as soon as a record is there; 10 ms kept the broker busy
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer.seek_to_end()
        # Resolve the positions now, so records produced from here on are all seen.
        for tp in self._consumer.assignment():
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    def collect(self) -> None:
        """Count from now on: outputs of events sent from this moment. In whole microseconds,
        as the outputs' `ce_time` stamps are: `time.time()` keeps the fraction, and an event
        stamped in the same microsecond read as sent before (a flaky unit test)."""
        self.since = datetime.now(UTC).timestamp()

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.time()
            for records in batch.values():
                for record in records:
                    self.seen += 1
                    if self.since is None:
                        continue
                    headers = dict(record.headers or ())
                    if self.ce_type is not None and headers.get("ce_type") != self.ce_type:
                        continue
                    stamp = headers.get("ce_time")
                    if stamp is None:
                        continue
                    at = datetime.fromisoformat(stamp.decode()).timestamp()
                    if at < self.since:
                        self.stale += 1
                        continue
                    self.samples.append((now - at) * 1000.0)
                    self.handled.append(record.timestamp - at * 1000.0)  # CreateTime, ms

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._consumer.stop()


async def measure_latency(
    bootstrap: str,
    input_topic: str,
    output_topic: str,
    records: Sequence[Record],
    rate: float,
    seconds: float,
    ce_type: bytes | None = None,
    drain_s: float = 3.0,
) -> dict[str, Any]:
    """Offer `records` at `rate`/s for `seconds` and report p50/p99 of produce -> committed output."""
    probe = LatencyProbe(bootstrap, output_topic, ce_type)
    await probe.start()
    probe.collect()
    try:
        sent, achieved = await paced(bootstrap, input_topic, records, rate, seconds)
        await asyncio.sleep(drain_s)
    finally:
        await probe.stop()
    samples = probe.samples
    visible = [total - handled for total, handled in zip(samples, probe.handled, strict=True)]
    return {
        "handled_p50_ms": percentile(probe.handled, 50),
        "handled_p99_ms": percentile(probe.handled, 99),
        "visible_p50_ms": percentile(visible, 50),
        "visible_p99_ms": percentile(visible, 99),
        "offered_rate": rate,
        "achieved_rate": round(achieved, 1),
        "sent": sent,
        "samples": len(samples),
        "stale": probe.stale,
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "max_ms": max(samples) if samples else None,
    }


# ---------------------------------------------------------------------------- processes


def process_cpu_seconds(pid: int | None) -> float:
    """utime + stime of process `pid` so far (from /proc; 0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Worker:
    """A child process started by a scenario, with its log file and report file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    report: Path | None = None
    cpu_mark: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """utime + stime of the process so far (from /proc; 0 once it has exited)."""
        return process_cpu_seconds(self.proc.pid)

    def rss(self) -> int:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def spawn(
    name: str,
    argv: Sequence[str],
    logs: Path,
    env: dict[str, str] | None = None,
    report: Path | None = None,
) -> Worker:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    handle = log.open("wb")
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        list(argv), stdout=handle, stderr=subprocess.STDOUT, env=full_env, cwd=REPO
    )
    handle.close()
    return Worker(name, proc, log, report)


def stop_workers(workers: Iterable[Worker], timeout_s: float = 20.0) -> None:
    """SIGTERM (a clean drain), then SIGKILL whatever is still running after `timeout_s`."""
    workers = list(workers)
    for worker in workers:
        if worker.alive():
            worker.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for worker in workers:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            worker.proc.wait(remaining)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait(5)


def service_env(bootstrap: str, prefix: str, state_dir: Path, port: int) -> dict[str, str]:
    """Environment for a Handoff service process under the bench broker and a topic prefix."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "HANDOFF_TOPIC_PREFIX": prefix,
        "HANDOFF_PARTITIONS": str(PARTITIONS),
        "HANDOFF_STATE_DIR": str(state_dir),
        "HANDOFF_HTTP_PORT": str(port),
        "HANDOFF_LOG_LEVEL": "WARNING",
        "HANDOFF_CONFIG_DIR": str(REPO / "deploy" / "config"),
    }


async def wait_for(predicate: Any, timeout_s: float, interval_s: float = 0.2) -> bool:
    """Poll `predicate()` (sync or async) until true or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return True
        await asyncio.sleep(interval_s)
    return False


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


OBSERVATIONS = topics.OBSERVATIONS
STATE = topics.STATE
STATE_TYPE = b"handoff.shipment.state.v1"
__all__ = ["TopicPartition"]
