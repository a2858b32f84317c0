"""The chaos harness: Handoff's shipment pipeline as real processes on the 3-broker cluster,
a seeded load with its oracle, and the checks that prove the faults changed nothing.

- `Pipeline` runs TWO processes of every stateful service of the shipment path
  (order_intake, rate_shopping, carrier_allocation, tracking) plus the simulated
  carriers' tender responder, each as `python -m handoff_<service>`, and kills,
  pauses, restarts and scales them.
- `Load` is the input side and the oracle: orders from the sim marketplace's
  seeded `generate_orders`, and, for every allocation it sees, the carrier's
  scans from the sim's seeded `plan_scans`. Everything it produced is kept (and
  written as JSONL): that list is the independent truth the outcome is checked
  against.
- `Observed` reads the outcome back (read_committed, group-less) and `verify`
  proves: every accepted order and every carrier scan is accounted for in the
  shipment state; every shipment state equals a fault-free refold of the events
  on the fold's input topics and the final status the oracle's journey implies;
  no milestone or update id was published twice; every DLQ record has a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, TopicPartition
from handoff_events import topics
from handoff_events.contracts import (
    CarrierAllocated,
    CarrierTrackingEvent,
    ShipmentState,
    ShipmentUpdate,
)
from handoff_events.envelope import DecodeError, decode, encode, new_envelope
from handoff_events.ids import event_id
from handoff_events.provision import provision
from handoff_events.topics import Names
from handoff_sim.carriers import (
    DEFAULT_PROFILES,
    CarrierProfile,
    code_for,
    load_service_levels,
    plan_journey,
    plan_scans,
)
from handoff_sim.marketplace import PlannedOrder, generate_orders
from handoff_sim.world import load_all_carrier_codes
from handoff_tracking.adapters.state_codec import ShipmentStateCodec
from handoff_tracking.domain.fold import FoldInput, entry_for, fold_all
from handoff_tracking.handlers import FOLD_INPUTS

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "deploy" / "config"
SERVICES: tuple[str, ...] = ("order_intake", "rate_shopping", "carrier_allocation", "tracking")
TERMINAL_STEP_STATUSES = frozenset({"delivered", "returned_to_sender"})
# Topics that must never hold a customer's e-mail address or phone number (docs/security.md).
CONTACT_FREE_TOPICS: tuple[str, ...] = (
    topics.STATE,
    topics.UPDATES,
    topics.QUOTES,
    topics.ALLOCATIONS,
    topics.OBSERVATIONS,
    topics.TRACKING_NUMBERS,
)
# Milestones a shipment reaches once at most: a second copy is a duplicate publication.
ONCE_MILESTONES = frozenset({"requested", "rejected", "quoted", "allocated", "delivered"})


HTTP_PORTS = range(20_000, 25_000)
"""Where the instances' HTTP ports come from: below Linux's ephemeral range (32768-60999),
so none of the outgoing connections every Kafka client opens can take a port between its
pick and the service's bind (a port from `bind(0)` could be, and the instance then
crash-looped on EADDRINUSE), and clear of kafkactl's broker ports (base, +10000, +10100
for the port bases in use: 15092, 16092, 19092, 31092)."""
_handed_out: set[int] = set()


def free_port() -> int:
    """A port of `HTTP_PORTS` that is free now and was not handed out before in this run."""
    for _ in range(1_000):
        port = random.choice(HTTP_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {HTTP_PORTS}")


# ---- processes ------------------------------------------------------------------------------


# Like Kubernetes restarting a pod: an instance that exits on its own (a failed stage makes
# the service exit; HANDOFF_STALL_TIMEOUT_S makes a wedged one fail) is started again after a
# back-off that doubles with each exit in a row (1, 2, 4 ... 16 s).
RESTART_BACKOFF_S = 1.0
RESTART_BACKOFF_MAX_S = 16.0
CRASH_LOOP_RESTARTS = 6
"""Exits in a row (none reaching ready in between) that count as a crash loop."""
MEMBERSHIP_SIGNALS = (
    "member_id was not recognized",  # aiokafka: the group dropped this member
    "session expired",
    "revoked after the group dropped this member",  # the engine, on the late revoke
    "refused by the group",
    "producer fenced",
    "transaction failed",
    "changelog transaction still open",
    "stage failed",
)
"""Log lines (at the pipeline's WARNING level) that a failed verdict quotes."""
STALL_TIMEOUT_S = 30
"""HANDOFF_STALL_TIMEOUT_S of the pipeline: a member with records waiting and no progress
for this long fails its stage (and exits), so the supervisor replaces it quickly."""


@dataclass(frozen=True)
class Restart:
    """One exit the supervisor answered with a restart."""

    instance: str
    exit_code: int | None
    reason: str
    at: float
    """time.monotonic() of the exit being noticed."""

    def describe(self) -> str:
        return f"{self.instance} (exit {self.exit_code}: {self.reason})"


@dataclass
class Instance:
    service: str
    index: int
    port: int
    process: subprocess.Popen[bytes] | None = None
    stopped: bool = False
    """SIGSTOPped and not yet continued."""
    retiring: bool = False
    """Being stopped on purpose (scale-in, restart_all, stop): not restarted by supervision."""
    exited_at: float | None = None
    """When the supervisor noticed an exit of its own (restart pending)."""
    exits_in_a_row: int = 0
    """Exits without reaching ready in between (drives the back-off)."""

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Pipeline:
    """The shipment path as real processes, N instances per service, on one topic prefix."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        run_dir: Path,
        *,
        partitions: int = 3,
        instances: int = 2,
        seed: int = 7,
    ):
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.names = Names(prefix)
        self.run_dir = run_dir
        self.partitions = partitions
        self.seed = seed
        self.instances: dict[str, list[Instance]] = {s: [] for s in SERVICES}
        self._initial = instances
        self.responder: subprocess.Popen[bytes] | None = None
        self.responder_restarts = 0
        self.restarts: list[Restart] = []
        """Every exit of its own that supervision answered with a restart (services and the
        simulated tender responder), in order."""
        self.tender_port = free_port()
        self.logs = run_dir / "logs"
        self._supervisor: asyncio.Task[None] | None = None

    # -- life cycle --------------------------------------------------------------------
    async def start(self, ready_within: float = 240.0) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        report = await provision(
            self.bootstrap, prefix=self.prefix, partitions=self.partitions, replication_factor=3
        )
        if not report.ok:
            raise RuntimeError(f"provisioning failed: {report.mismatched}")
        self._start_responder()
        self._supervisor = asyncio.create_task(self._supervise_forever(), name="chaos-supervisor")
        try:
            for service in SERVICES:
                for _ in range(self._initial):
                    self.add(service)
            await self.wait_ready(within=ready_within)
        except BaseException:
            await self.stop()  # never leave orphaned service processes behind
            raise

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "HANDOFF_TOPIC_PREFIX": self.prefix,
            "HANDOFF_PARTITIONS": str(self.partitions),
            "HANDOFF_CONFIG_DIR": str(CONFIG_DIR),
            "HANDOFF_LOG_LEVEL": "WARNING",
            "HANDOFF_STALL_TIMEOUT_S": str(STALL_TIMEOUT_S),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
        return env

    def _tendering_file(self) -> Path:
        """tendering.toml with the HTTP-tendered carriers pointed at this run's responder."""
        text = (CONFIG_DIR / "allocation" / "tendering.toml").read_text(encoding="utf-8")
        text = text.replace("127.0.0.1:8093/", f"127.0.0.1:{self.tender_port}/")
        target = self.run_dir / "tendering.toml"
        target.write_text(text, encoding="utf-8")
        return target

    def _start_responder(self) -> None:
        log = (self.logs / "tender_responder.log").open("ab")
        self.responder = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "handoff_sim.tender_responder",
                "--seed",
                str(self.seed),
                "--http-port",
                str(self.tender_port),
            ],
            env=self._env({}),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )

    def supervise_carriers(self) -> None:
        """The simulated carriers are not under test: if the tender responder died (it does
        not survive every broker fault: CommitFailedError after a broker pause), restart it
        like a real carrier would recover."""
        if self._supervisor is None:
            return
        if self.responder is not None and self.responder.poll() is not None:
            self.responder_restarts += 1
            code = self.responder.returncode
            reason = _exit_reason(self.logs / "tender_responder.log")
            self.restarts.append(Restart("tender_responder", code, reason, time.monotonic()))
            self._start_responder()

    def supervise(self) -> None:
        """Restart every instance that exited on its own (not retired by a fault or a scale-in),
        after its back-off; the simulated tender responder too."""
        if self._supervisor is None:
            return  # stopping: nothing is restarted any more
        self.supervise_carriers()
        now = time.monotonic()
        for instance in self.all_instances():
            process = instance.process
            if instance.retiring or process is None or process.poll() is None:
                continue
            if instance.exited_at is None:
                instance.exited_at = now
                instance.exits_in_a_row += 1
                reason = _exit_reason(self.logs / f"{instance.name}.log")
                self.restarts.append(Restart(instance.name, process.returncode, reason, now))
            backoff = min(
                RESTART_BACKOFF_S * 2 ** (instance.exits_in_a_row - 1), RESTART_BACKOFF_MAX_S
            )
            if now - instance.exited_at >= backoff:
                with (self.logs / f"{instance.name}.log").open("a", encoding="utf-8") as log:
                    log.write(
                        f"==> chaos supervisor: exited with {process.returncode}, "
                        f"restarting (exit {instance.exits_in_a_row} in a row)\n"
                    )
                self._spawn(instance)

    async def _supervise_forever(self) -> None:
        while True:
            self.supervise()
            await asyncio.sleep(0.5)

    def crash_looping(self) -> list[str]:
        return [i.name for i in self.all_instances() if i.exits_in_a_row >= CRASH_LOOP_RESTARTS]

    def add(self, service: str) -> Instance:
        """Start one more instance of `service` (scaling out, or a fresh process)."""
        index = max((i.index for i in self.instances[service]), default=0) + 1
        instance = Instance(service, index, free_port())
        self.instances[service].append(instance)
        self._spawn(instance)
        return instance

    def _spawn(self, instance: Instance) -> None:
        extra = {
            "HANDOFF_HTTP_PORT": str(instance.port),
            "HANDOFF_STATE_DIR": str(self.run_dir / "state" / instance.name),
            "HANDOFF_INSTANCE_ID": instance.name,
            # Upstream tables that only tune decisions: off, so start-up waits for nothing.
            "HANDOFF_FOLLOW_KPIS": "false",
            "HANDOFF_FOLLOW_HISTORY": "false",
            "HANDOFF_TENDERING_FILE": str(self._tendering_file()),
            # The clock-driven detector (stuck / late) is not part of what the oracle can
            # predict; the short runs stay far inside its thresholds anyway.
            "HANDOFF_EXCEPTION_CHECK_EVERY_S": "3600",
        }
        with (self.logs / f"{instance.name}.log").open("ab") as log:
            instance.process = subprocess.Popen(
                [sys.executable, "-m", f"handoff_{instance.service}"],
                env=self._env(extra),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
        instance.stopped = False
        instance.retiring = False
        instance.exited_at = None

    def log_marks(self) -> dict[Path, int]:
        """Where every log file ends now (`membership_lines` reads what comes after)."""
        return {path: path.stat().st_size for path in self.logs.glob("*.log")}

    def membership_lines(self, marks: dict[Path, int], limit: int = 40) -> list[str]:
        """The lines since `marks` that say a member lost its place or a task's state came
        from somewhere unusual: what a failed verdict needs to be explained from CI output
        alone (the run's directory is gone by then)."""
        found: list[str] = []
        for path in sorted(self.logs.glob("*.log")):
            with path.open("rb") as log:
                log.seek(marks.get(path, 0))
                for raw in log:
                    line = raw.decode(errors="replace").strip()
                    if any(signal in line for signal in MEMBERSHIP_SIGNALS):
                        found.append(f"{path.stem}: {line[:240]}")
        return found[:limit]

    def all_instances(self) -> list[Instance]:
        return [i for group in self.instances.values() for i in group]

    def signal(self, instance: Instance, sig: signal.Signals) -> None:
        assert instance.process is not None
        with contextlib.suppress(ProcessLookupError):
            instance.process.send_signal(sig)
        if sig == signal.SIGKILL:
            instance.process.wait()
        instance.stopped = sig == signal.SIGSTOP

    def restart(self, instance: Instance) -> None:
        if instance.alive:
            self.signal(instance, signal.SIGKILL)
        self._spawn(instance)

    async def remove(self, instance: Instance, within: float = 40.0) -> None:
        """Scale in: SIGTERM (a clean hand-over), waited for without blocking the loop."""
        assert instance.process is not None
        instance.retiring = True
        instance.process.send_signal(signal.SIGTERM)
        await _exited(instance.process, time.monotonic() + within)
        if instance.process.poll() is None:
            instance.process.kill()
            instance.process.wait()
        self.instances[instance.service].remove(instance)

    async def restart_all(self, ready_within: float = 600.0) -> None:
        """Fresh processes for every instance (after a fault left the pipeline stuck), so
        the next fault starts from a working pipeline."""
        for instance in self.all_instances():
            instance.retiring = True
            instance.exits_in_a_row = 0
            if instance.alive:
                assert instance.process is not None
                if instance.stopped:
                    instance.process.send_signal(signal.SIGCONT)
                instance.process.send_signal(signal.SIGTERM)
                await _exited(instance.process, time.monotonic() + 30)
                if instance.process.poll() is None:
                    instance.process.kill()
                    instance.process.wait()
            self._spawn(instance)
        await self.wait_ready(within=ready_within)

    async def stop(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        for instance in self.all_instances():
            instance.retiring = True
            if instance.alive:
                assert instance.process is not None
                if instance.stopped:
                    instance.process.send_signal(signal.SIGCONT)
                instance.process.send_signal(signal.SIGTERM)
        if self.responder is not None and self.responder.poll() is None:
            self.responder.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in [i.process for i in self.all_instances()] + [self.responder]:
            if proc is None:
                continue
            await _exited(proc, deadline)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # -- readiness and lag -------------------------------------------------------------
    async def not_ready(self) -> list[str]:
        """Instances that are not (yet) ready: dead, paused, or /health/ready != 200."""
        waiting = []
        async with httpx.AsyncClient(timeout=2.0) as http:
            for instance in self.all_instances():
                if not instance.alive or instance.stopped:
                    waiting.append(instance.name)
                    continue
                try:
                    answer = await http.get(f"http://127.0.0.1:{instance.port}/health/ready")
                except httpx.HTTPError:
                    waiting.append(instance.name)
                    continue
                if answer.status_code != 200:
                    waiting.append(instance.name)
                else:
                    instance.exits_in_a_row = 0  # it came up: the back-off starts over
        return waiting

    async def wait_ready(self, within: float = 180.0) -> float:
        """Until every instance answers ready; instances that exit meanwhile are restarted by
        supervision, and only a crash loop (or the deadline) ends the wait early."""
        started = time.monotonic()
        while True:
            waiting = await self.not_ready()
            if not waiting:
                return time.monotonic() - started
            looping = self.crash_looping()
            if looping:
                raise RuntimeError(f"instances crash-looping: {looping} (logs in {self.logs})")
            if time.monotonic() - started > within:
                raise TimeoutError(f"not ready after {within:.0f}s: {waiting}")
            await asyncio.sleep(1.0)

    async def lagging(self) -> dict[str, int]:
        """Records (not transaction markers) still unprocessed, per consumer group."""
        return {g: sum(p.pending for p in parts)
                for g, parts in (await lag_by_group(self.bootstrap, self.prefix)).items()}  # fmt: skip

    async def wait_recovered(self, since: float, within: float = 240.0) -> float:
        """Seconds from `since` (a fault, monotonic) until every instance is ready and no
        group of the pipeline lags: the fault's recovery time."""
        deadline = time.monotonic() + within
        last_error: Exception | None = None
        next_note = time.monotonic() + 30.0
        while True:
            waiting = await self.not_ready()
            lag: dict[str, list[PartitionLag]] = {}
            if not waiting:
                try:
                    lag = await lag_by_group(self.bootstrap, self.prefix)
                except Exception as exc:  # a broker still loading groups, a leader moving
                    last_error = exc
                else:
                    if not lag:
                        return time.monotonic() - since
            if time.monotonic() > next_note:  # a trace of slow recoveries, for the logs
                next_note = time.monotonic() + 30.0
                behind = {g.rsplit(".handoff.", 1)[-1]: sum(p.pending for p in parts)
                          for g, parts in lag.items()}  # fmt: skip
                print(f"    recovering for {time.monotonic() - since:.0f}s: not ready {waiting}, "
                      f"lagging {behind}", flush=True)  # fmt: skip
            if time.monotonic() > deadline:
                try:
                    lag = await lag_by_group(self.bootstrap, self.prefix)
                except Exception as exc:
                    lag, last_error = {}, exc
                details = "; ".join(p.describe() for parts in lag.values() for p in parts)
                if last_error is not None:
                    details += f" (last lag query error: {last_error!r})"
                groups = await group_states(self.bootstrap, list(lag))
                raise TimeoutError(
                    f"no recovery within {within:.0f}s: not ready {await self.not_ready()}, "
                    f"lagging {details or 'none'}; groups {groups}"
                )
            await asyncio.sleep(1.0)


def _exit_reason(log: Path, tail: int = 16_384) -> str:
    """Why a process exited, from the end of its log: the last failure line, else the last."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - tail))
            lines = [ln.strip() for ln in handle.read().decode(errors="replace").splitlines()]
    except OSError:
        return "no log"
    lines = [ln for ln in lines if ln and not ln.startswith("==> chaos supervisor")]
    # ServiceApp's exit message ("stage <name> failed: ..."), then a traceback's last line
    # ("aiokafka.errors.CommitFailedError: ..."), then anything that mentions an error.
    for pattern in (r"stage (\S+ )?failed", r"^[\w.]+(Error|Exception|Exit)\b", r"[Ee]rror"):
        hits = [ln for ln in lines if re.search(pattern, ln)]
        if hits:
            return hits[-1][:240]
    return lines[-1][:240] if lines else "empty log"


async def delete_topics(bootstrap: str, prefix: str) -> int:
    """Remove a run's topics (hundreds of replicated partitions weigh on a small cluster)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=30_000)
        return len(doomed)
    finally:
        await admin.close()


async def _exited(process: subprocess.Popen[bytes], deadline: float) -> None:
    """Wait (without blocking the loop) until `process` exits or the deadline passes."""
    while True:
        if process.poll() is not None or time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class PartitionLag:
    """Records of one partition a consumer group has not processed (committed) yet."""

    group: str
    topic: str
    partition: int
    committed: int | None
    """The group's committed offset (None: it never committed on this partition)."""
    stable_end: int
    """The last stable offset (what a read_committed reader can reach)."""
    pending: int
    """Data records between the committed offset and the stable end (markers and aborted
    records excluded)."""
    first_pending: int | None

    def describe(self) -> str:
        return (
            f"{self.group.rsplit('.handoff.', 1)[-1]} {self.topic.rsplit('.handoff.', 1)[-1]}"
            f"[{self.partition}] committed={self.committed} lso={self.stable_end} "
            f"pending={self.pending} first={self.first_pending}"
        )


async def lag_by_group(
    bootstrap: str, prefix: str, within: float = 20.0
) -> dict[str, list[PartitionLag]]:
    """Unprocessed records per consumer group of the run, counted exactly.

    The committed offset of a stage is one past its last processed record; a
    transactional topic then holds a commit marker (and aborted records) that no reader
    ever receives, so `LSO - committed` overstates the lag. Each partition that looks
    behind is therefore read (read_committed) from the lowest committed offset up to its
    LSO -- the reader's position moves past markers and aborted batches -- and only data
    records at or after a group's committed offset count. A partition of a topic the group
    consumes on which it never committed counts from the start of the log."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    committed: dict[str, dict[TopicPartition, int | None]] = {}
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if g[0].startswith(prefix)]
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            committed[group] = {tp: meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()
    if not any(committed.values()):
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        metadata = await consumer._client.fetch_all_metadata()
        for offsets in committed.values():
            for topic in {tp.topic for tp in offsets}:
                for p in metadata.partitions_for_topic(topic) or ():
                    offsets.setdefault(TopicPartition(topic, p), None)
        tps = sorted({tp for offsets in committed.values() for tp in offsets})
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        lowest: dict[TopicPartition, int] = {}
        for offsets in committed.values():
            for tp, off in offsets.items():
                begin = starts[tp] if off is None or off < 0 else off
                if begin < ends[tp]:
                    lowest[tp] = min(lowest.get(tp, begin), begin)
        data: dict[TopicPartition, list[int]] = {tp: [] for tp in lowest}
        if lowest:
            consumer.assign(list(lowest))
            for tp, begin in lowest.items():
                consumer.seek(tp, begin)
            deadline = time.monotonic() + within
            while True:
                behind = [tp for tp in lowest if await consumer.position(tp) < ends[tp]]
                if not behind:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"lag: could not read {behind} up to their LSO")
                for tp, recs in (await consumer.getmany(*behind, timeout_ms=500)).items():
                    data[tp].extend(r.offset for r in recs if r.offset < ends[tp])
        lag: dict[str, list[PartitionLag]] = {}
        for group, offsets in committed.items():
            for tp, off in sorted(offsets.items()):
                begin = starts[tp] if off is None or off < 0 else off
                pending = [o for o in data.get(tp, ()) if o >= begin]
                if pending:
                    lag.setdefault(group, []).append(
                        PartitionLag(
                            group, tp.topic, tp.partition, off, ends[tp], len(pending), pending[0]
                        )
                    )
        return lag
    finally:
        await consumer.stop()


async def group_states(bootstrap: str, groups: Sequence[str]) -> dict[str, str]:
    """`state/members` of consumer groups (diagnostics: an Empty group has no member)."""
    if not groups:
        return {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    out: dict[str, str] = {}
    try:
        await admin.start()
        for response in await admin.describe_consumer_groups(list(groups)):
            for described in response.groups:
                # (error_code, group_id, state, protocol_type, protocol, members, ...)
                name = str(described[1]).rsplit(".handoff.", 1)[-1]
                out[name] = f"{described[2]}/{len(described[5])} members"
    except Exception as exc:  # diagnostics only
        out["?"] = repr(exc)
    finally:
        await admin.close()
    return out


# ---- the load and its oracle ----------------------------------------------------------------


@dataclass(frozen=True)
class PlannedJourney:
    """What the oracle predicts for one allocated parcel from its carrier's scans."""

    shipment_id: str
    carrier: str
    tracking_number: str
    scan_ids: tuple[str, ...]
    final_status: str
    attempts: int
    """Failed delivery attempts (the successful one is not counted)."""
    delivered_at: datetime | None


def _this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class Load:
    """Produces the seeded inputs and records them: the oracle of one chaos run."""

    bootstrap: str
    prefix: str
    seed: int
    oracle_path: Path
    start: datetime = field(default_factory=_this_hour)
    """When the seeded orders are placed. The tracking fold flags a shipment late once the
    wall clock passes its promise, and the oracle's fault-free fold cannot predict that;
    orders placed now keep every promise days ahead of any run. A fixed date would turn
    every run after it into a run full of "late" exceptions."""
    orders: list[PlannedOrder] = field(default_factory=list)
    journeys: dict[str, PlannedJourney] = field(default_factory=dict)
    scans_sent: int = 0
    poison_sent: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.names = Names(self.prefix)
        self.tables = load_all_carrier_codes(CONFIG_DIR / "carrier-codes")
        self.levels = load_service_levels(CONFIG_DIR / "carriers")
        self.oracle_path.parent.mkdir(parents=True, exist_ok=True)
        self._oracle = self.oracle_path.open("a", encoding="utf-8")
        self._producer: AIOKafkaProducer | None = None

    def _record(self, entry: dict[str, Any]) -> None:
        self._oracle.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
        self._oracle.flush()

    async def _send(self, topic: str, key: bytes | None, value: bytes | None, headers: Any) -> None:
        if self._producer is None:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=60_000,
                max_request_size=2 * 1024 * 1024,
            )
            await self._producer.start()
        # Durable before it counts: the oracle only lists what the cluster acknowledged.
        await (await self._producer.send(topic, value=value, key=key, headers=list(headers)))

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        self._oracle.close()

    @property
    def accepted_orders(self) -> list[PlannedOrder]:
        return [o for o in self.orders if o.defect is None]

    @property
    def expected_shipments(self) -> set[str]:
        return {s for o in self.orders for s in o.expected_shipment_ids}

    async def place_orders(self, count: int, per_second: float, start_seq: int = 0) -> None:
        """Send `count` more orders of the seed (no cancellations: their race with allocation
        is legitimate nondeterminism), paced at `per_second`."""
        planned = generate_orders(self.seed, start_seq + count, start=self.start)[start_seq:]
        for order in planned:
            data = order.order
            env = new_envelope(
                data,
                source=f"marketplace/{order.tenant_id}",
                tenant_id=order.tenant_id,
                id=event_id(data.ce_type, order.tenant_id, data.order_id),
            )
            value, headers = encode(env)
            if order.defect is not None:
                value = order.body  # the defective JSON as the marketplace sent it
            key = f"{order.tenant_id}/{data.order_id}".encode()
            await self._send(self.names(topics.ORDERS), key, value, headers)
            self.orders.append(order)
            self._record(
                {
                    "kind": "order",
                    "order_id": data.order_id,
                    "tenant": order.tenant_id,
                    "defect": order.defect,
                    "shipments": list(order.expected_shipment_ids),
                }
            )
            await asyncio.sleep(1.0 / per_second)

    def plan_journey_of(self, allocated: CarrierAllocated) -> tuple[PlannedJourney, list[Any]]:
        table = self.tables[allocated.carrier]
        level = self.levels.get((allocated.carrier, allocated.service), "standard")
        profile = DEFAULT_PROFILES.get(allocated.carrier, CarrierProfile())
        _, scans = plan_scans(
            self.seed, table, allocated.tracking_number, level, allocated.allocated_at, profile
        )
        # The journey's canonical steps, re-derived with the same seed plan_scans used.
        rng = random.Random(f"{self.seed}:{table.carrier}:{allocated.tracking_number}")
        _, steps = plan_journey(rng, level, profile)
        scanned = [s for s in steps if code_for(table, s) is not None]
        terminal = [s for s in scanned if s.status in TERMINAL_STEP_STATUSES]
        final = terminal[0] if terminal else max(scanned, key=lambda s: s.at_h)
        delivered = next((s for s in scanned if s.status == "delivered"), None)
        journey = PlannedJourney(
            shipment_id=allocated.shipment_id,
            carrier=allocated.carrier,
            tracking_number=allocated.tracking_number,
            scan_ids=tuple(dict.fromkeys(s.event.event_id for s in scans)),
            final_status=final.status,
            attempts=sum(1 for s in scanned if s.status == "delivery_attempt_failed"),
            delivered_at=(
                allocated.allocated_at + _hours(delivered.at_h) if delivered is not None else None
            ),
        )
        return journey, [s.event for s in scans]

    async def follow_allocations(self, stop: asyncio.Event) -> None:
        """Play the carriers: for every allocation of an order of ours, send its scans."""
        mine = self.expected_shipments
        consumer = AIOKafkaConsumer(
            self.names(topics.ALLOCATIONS),
            bootstrap_servers=self.bootstrap,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                mine = self.expected_shipments
                for records in batch.values():
                    for record in records:
                        await self._on_allocation(record, mine)
        finally:
            await consumer.stop()

    async def _on_allocation(self, record: ConsumerRecord, mine: set[str]) -> None:
        try:
            env = decode(record.value, record.headers)
        except DecodeError:
            return
        data = env.data
        if not isinstance(data, CarrierAllocated) or data.shipment_id not in mine:
            return
        if data.shipment_id in self.journeys:
            return
        journey, scans = self.plan_journey_of(data)
        self.journeys[data.shipment_id] = journey
        self._record(
            {
                "kind": "journey",
                "shipment_id": journey.shipment_id,
                "carrier": journey.carrier,
                "tracking_number": journey.tracking_number,
                "final_status": journey.final_status,
                "scans": list(journey.scan_ids),
            }
        )
        for scan in scans:
            await self.send_scan(scan)

    async def send_scan(self, scan: CarrierTrackingEvent) -> None:
        env = new_envelope(
            scan,
            source=f"carrier/{scan.carrier}",
            tenant_id=scan.carrier,
            id=event_id(CarrierTrackingEvent.ce_type, scan.carrier, scan.event_id),
        )
        value, headers = encode(env)
        key = f"{scan.carrier}/{scan.tracking_number}".encode()
        await self._send(self.names(topics.CARRIER_TRACKING), key, value, headers)
        self.scans_sent += 1

    async def send_poison(self, topic: str, kind: str, key: bytes | None, value: bytes | None,
                          headers: Sequence[tuple[str, bytes]]) -> None:  # fmt: skip
        await self._send(self.names(topic), key, value, headers)
        self.poison_sent[kind] += 1
        self._record({"kind": "poison", "topic": topic, "poison": kind})


def _hours(h: float) -> Any:
    from datetime import timedelta

    return timedelta(hours=h)


# ---- reading the outcome --------------------------------------------------------------------


async def read_records(
    bootstrap: str, topic: str, isolation: str = "read_committed"
) -> list[ConsumerRecord]:
    """Every record of `topic` up to its last stable offset (read_committed, no group);
    with `isolation="read_uncommitted"`, up to the high watermark, aborted records too."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        parts = (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic) or ()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[ConsumerRecord] = []
        deadline = time.monotonic() + 60
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not reach {ends}")
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(r for r in recs if r.offset < ends[TopicPartition(r.topic, r.partition)])
        return out
    finally:
        await consumer.stop()


def _header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode(errors="replace") if value is not None else None
    return None


@dataclass
class Observed:
    states: dict[str, ShipmentState]
    refolded: dict[str, ShipmentState]
    updates: list[tuple[str, str, str, str, str]]
    """(update id, shipment, milestone, status, occurred_at)"""
    dlq: list[tuple[str, str | None, bytes | None]]
    """(source topic, reason, key)"""
    contact_free: dict[str, list[bytes]] = field(default_factory=dict)
    """Raw values of the topics that must never carry customer contact data."""

    @classmethod
    async def read(cls, bootstrap: str, prefix: str, contact: bool = False) -> Observed:
        """The outcome so far; `contact` also reads the topics checked for contact data."""
        names = Names(prefix)
        codec = ShipmentStateCodec()
        states: dict[str, ShipmentState] = {}
        for record in await read_records(bootstrap, names(topics.STATE)):
            if record.key is None:
                continue
            if record.value is None:
                states.pop(record.key.decode(), None)
            else:
                states[record.key.decode()] = codec.decode(record.value, record.headers)
        inputs: dict[str, list[FoldInput]] = defaultdict(list)
        for topic in FOLD_INPUTS:
            for record in await read_records(bootstrap, names(topic)):
                try:
                    env = decode(record.value, record.headers)
                except DecodeError:
                    continue  # in the DLQ; the fold never saw it either
                data = env.data
                sid = getattr(data, "shipment_id", None)
                if sid is None:
                    continue
                inputs[sid].append(
                    FoldInput(
                        event_id=env.id,
                        tenant_id=env.tenant_id,
                        event=data,  # type: ignore[arg-type]
                        recorded_at=env.time,
                    )
                )
        refolded: dict[str, ShipmentState] = {}
        shuffle = random.Random(0)
        for sid, events in inputs.items():
            shuffle.shuffle(events)  # the fold is order-independent: prove it on the way
            with contextlib.suppress(Exception):
                state = fold_all(events)
                if state is not None:
                    refolded[sid] = state
        updates = []
        for record in await read_records(bootstrap, names(topics.UPDATES)):
            try:
                update = decode(record.value, record.headers).data
            except DecodeError:
                continue  # a poison record of the flood: accounted for through the DLQs
            if not isinstance(update, ShipmentUpdate):
                continue
            updates.append(
                (
                    update.update_id,
                    update.shipment_id,
                    update.milestone,
                    update.status,
                    update.occurred_at.isoformat(),
                )
            )
        dlq: list[tuple[str, str | None, bytes | None]] = []
        for spec in topics.CATALOGUE:
            if spec.dlq_of is None:
                continue
            for record in await read_records(bootstrap, names(spec.name)):
                dlq.append((spec.dlq_of, _header(record, "handoff_dlq_reason"), record.key))
        contact_free = {
            topic: [r.value for r in await read_records(bootstrap, names(topic)) if r.value]
            for topic in (CONTACT_FREE_TOPICS if contact else ())
        }
        return cls(states, refolded, updates, dlq, contact_free)


def projection(state: ShipmentState) -> dict[str, Any]:
    """What must be identical between the served state and a fault-free fold."""
    return {
        "status": state.status,
        "sub_status": state.sub_status,
        "carrier": state.carrier,
        "tracking_number": state.tracking_number,
        "attempts": [(a.attempted_at.isoformat(), a.outcome) for a in state.attempts],
        "picked_up_at": state.picked_up_at,
        "delivered_at": state.delivered_at,
        "history": sorted(h.event_id for h in state.history),
        "version": state.version,
    }


def _entries_only_in_one(served: ShipmentState, refolded: ShipmentState) -> str:
    """The history entries one side has and the other lacks, with their type and times:
    what a rare mismatch needs to be told apart (a lost input, a leaked aborted record,
    an oracle read cut short) once the run's topics are gone."""
    ids = {h.event_id for h in served.history}, {h.event_id for h in refolded.history}
    lines = [
        f"\n  only {side}: {h.event_id} {h.type} occurred {h.occurred_at.isoformat()} "
        f"recorded {h.recorded_at.isoformat()}"
        for side, state, other in (("served", served, ids[1]), ("refolded", refolded, ids[0]))
        for h in state.history
        if h.event_id not in other
    ]
    return "".join(lines)


async def trace_entries(bootstrap: str, prefix: str, entry_ids: set[str]) -> str:
    """Where the inputs behind history entries are: every record of the fold's input
    topics that becomes one of `entry_ids`, read with both isolation levels. Tells a
    leaked aborted record (seen read_uncommitted only) from an oracle read cut short
    (seen read_committed now) from an entry no input carries (seen nowhere)."""
    names = Names(prefix)
    where: dict[str, list[str]] = {i: [] for i in entry_ids}
    for isolation in ("read_committed", "read_uncommitted"):
        for topic in FOLD_INPUTS:
            for record in await read_records(bootstrap, names(topic), isolation):
                try:
                    env = decode(record.value, record.headers)
                    entry = entry_for(
                        FoldInput(env.id, env.tenant_id, env.data, env.time)  # type: ignore[arg-type]
                    )
                except Exception:  # undecodable, or not a fold event
                    continue
                if entry.event_id in where:
                    where[entry.event_id].append(
                        f"{isolation} {topic}[{record.partition}]@{record.offset}"
                    )
    return "".join(
        f"\n  trace {i}: " + ("; ".join(found) if found else "in no input record")
        for i, found in sorted(where.items())
    )


# ---- the verdict ----------------------------------------------------------------------------


@dataclass
class Verdict:
    fault: str
    records_in: int
    accounted: int
    dlq: Counter[str]
    duplicates: list[str]
    mismatches: list[str]
    missing: list[str]
    recovery_s: float | None
    dlq_without_reason: int = 0
    took_s: float | None = None
    """Wall time of the whole scenario (load, fault, recovery, settling, checks)."""
    one_sided: set[str] = field(default_factory=set)
    """History entries only the served state or only the fault-free fold has."""
    restarts: list[Restart] = field(default_factory=list)
    """Exits of their own that supervision restarted during the fault: part of recovering
    (like Kubernetes restarting a pod), not a failure by themselves."""
    membership: list[str] = field(default_factory=list)
    """On a failed verdict: the instances' log lines of `MEMBERSHIP_SIGNALS` during it."""

    @property
    def ok(self) -> bool:
        return (
            self.accounted == self.records_in
            and not self.duplicates
            and not self.mismatches
            and not self.missing
            and not self.dlq_without_reason
        )

    def row(self) -> tuple[str, ...]:
        dlq = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dlq.items())) or "0"
        rec = f"{self.recovery_s:.1f} s" if self.recovery_s is not None else "NOT RECOVERED"
        return (self.fault, str(self.records_in), str(self.accounted), dlq,
                str(len(self.duplicates)), rec, self.restarts_summary())  # fmt: skip

    def restarts_summary(self) -> str:
        """`0`, or the count with who exited, e.g. `3 (tracking-1 x2, tender_responder)`."""
        if not self.restarts:
            return "0"
        who = Counter(r.instance for r in self.restarts)
        names = ", ".join(n if c == 1 else f"{n} x{c}" for n, c in sorted(who.items()))
        return f"{len(self.restarts)} ({names})"

    def explain(self) -> str:
        row = self.row()
        parts = [
            f"{self.fault}: in={self.records_in} accounted={self.accounted} dlq=[{row[3]}] "
            f"duplicates={len(self.duplicates)} recovery={row[5]} restarts={row[6]}"
            + (f" took={self.took_s:.0f}s" if self.took_s is not None else "")
        ]
        parts += [f"restarted: {r.describe()}" for r in self.restarts[:8]]
        for title, items in (("missing", self.missing), ("mismatches", self.mismatches),
                             ("duplicates", self.duplicates)):  # fmt: skip
            if items:
                parts.append(f"{title} ({len(items)}): " + "; ".join(items[:8]))
        if self.dlq_without_reason:
            parts.append(f"{self.dlq_without_reason} DLQ records without a reason")
        if self.membership:
            parts.append(f"instance log lines on membership and restores ({len(self.membership)}):")
            parts += [f"  {line}" for line in self.membership]
        return "\n".join(parts)


def settled(load: Load, seen: Observed) -> bool:
    """Every order of the load has reached what the oracle predicts (or a final refusal)."""
    for order in load.orders:
        if order.defect is not None:
            key = f"{order.tenant_id}/{order.order.order_id}".encode()
            if not any(
                s.order_id == order.order.order_id and s.status == "rejected"
                for s in seen.states.values()
            ) and not any(k == key for _, _, k in seen.dlq):
                return False
            continue
        for sid in order.expected_shipment_ids:
            state = seen.states.get(sid)
            if state is None:
                return False
            journey = load.journeys.get(sid)
            if journey is None:
                if state.status not in ("rejected", "allocation_failed", "cancelled"):
                    return False  # allocated but its scans are not sent yet, or in flight
            elif state.status != journey.final_status or not _scans_in(state, journey):
                return False
    return True


def _scans_in(state: ShipmentState, journey: PlannedJourney) -> bool:
    have = {h.carrier_event_id for h in state.history if h.carrier_event_id}
    return all(s in have for s in journey.scan_ids)


def verify(
    load: Load,
    seen: Observed,
    fault: str,
    recovery_s: float | None,
    poison_dlq_topics: Iterable[str] = (),
) -> Verdict:
    missing: list[str] = []
    mismatches: list[str] = []
    accounted = 0
    for order in load.orders:
        if order.defect is not None:
            key = f"{order.tenant_id}/{order.order.order_id}".encode()
            # Refused either as a `rejected` shipment or, when undecodable, in the DLQ.
            if any(s.order_id == order.order.order_id and s.status == "rejected"
                   for s in seen.states.values()) or any(
                k == key for _, _, k in seen.dlq
            ):  # fmt: skip
                accounted += 1
            else:
                missing.append(f"rejection of defective order {order.order.order_id}")
            continue
        states = [seen.states.get(sid) for sid in order.expected_shipment_ids]
        if all(s is not None for s in states):
            accounted += 1
        else:
            missing.append(f"order {order.order.order_id}: a shipment has no state")
    for sid, journey in load.journeys.items():
        state = seen.states.get(sid)
        have = {h.carrier_event_id for h in state.history} if state else set()
        for scan_id in journey.scan_ids:
            if scan_id in have:
                accounted += 1
            else:
                missing.append(f"scan {scan_id} of {sid}")
        if state is None:
            continue
        expected: dict[str, object] = {
            "status": journey.final_status,
            "tracking_number": journey.tracking_number,
            "carrier": journey.carrier,
            "attempts": journey.attempts,
        }
        actual: dict[str, object] = {
            "status": state.status,
            "tracking_number": state.tracking_number,
            "carrier": state.carrier,
            "attempts": sum(1 for a in state.attempts if a.outcome == "failed"),
        }
        if journey.delivered_at is not None:
            expected["delivered_at"] = journey.delivered_at
            actual["delivered_at"] = state.delivered_at
        if expected != actual:
            mismatches.append(f"{sid}: oracle {expected} != state {actual}")
    # Scans the oracle counts once but sent twice (the carrier's own duplicates) are inputs too.
    records_in = len(load.orders) + sum(len(j.scan_ids) for j in load.journeys.values())
    one_sided: set[str] = set()
    for sid in load.expected_shipments:
        state, again = seen.states.get(sid), seen.refolded.get(sid)
        if state is None or again is None:
            continue
        if projection(state) != projection(again):
            diff = {
                k: (v, projection(again)[k])
                for k, v in projection(state).items()
                if projection(again)[k] != v
            }
            mismatches.append(
                f"{sid}: state differs from a fault-free fold: {diff}"
                + _entries_only_in_one(state, again)
            )
            one_sided |= {h.event_id for h in state.history} ^ {h.event_id for h in again.history}
    duplicates: list[str] = []
    ids = Counter(u[0] for u in seen.updates)
    duplicates += [f"update id {i} x{n}" for i, n in ids.items() if n > 1]
    once = Counter((u[1], u[2]) for u in seen.updates if u[2] in ONCE_MILESTONES)
    duplicates += [f"{s} {m} x{n}" for (s, m), n in once.items() if n > 1]
    changes = Counter((u[1], u[2], u[3], u[4]) for u in seen.updates if u[2] not in ONCE_MILESTONES)
    duplicates += [f"{k[0]} {k[1]} {k[2]}@{k[3]} x{n}" for k, n in changes.items() if n > 1]
    for order in load.accepted_orders:
        contact = [c for c in (order.order.ship_to.email, order.order.ship_to.phone) if c]
        for topic, values in seen.contact_free.items():
            for needle in contact:
                if any(needle.encode() in value for value in values):
                    mismatches.append(f"contact data of {order.order.order_id} on {topic}")
    dlq = Counter(f"{topic.split('.')[-2]}:{reason}" for topic, reason, _ in seen.dlq)
    poison_total = sum(load.poison_sent.values())
    if poison_total:
        records_in += poison_total
        poisoned = set(poison_dlq_topics)
        found = {key for topic, _, key in seen.dlq if topic in poisoned and key
                 and key.startswith(b"poison-")}  # fmt: skip
        accounted += len(found)
        if len(found) < poison_total:
            missing.append(f"{poison_total - len(found)} poison records not in a DLQ")
    return Verdict(
        fault=fault,
        records_in=records_in,
        accounted=accounted,
        dlq=dlq,
        duplicates=duplicates,
        mismatches=mismatches,
        missing=missing,
        recovery_s=recovery_s,
        dlq_without_reason=sum(1 for _, reason, _ in seen.dlq if not reason),
        one_sided=one_sided,
    )


async def wait_settled(
    load: Load, bootstrap: str, prefix: str, within: float, pipeline: Pipeline | None = None
) -> Observed:
    deadline = time.monotonic() + within
    while True:
        if pipeline is not None:
            pipeline.supervise_carriers()
        try:
            seen = await Observed.read(bootstrap, prefix)
            if settled(load, seen) or time.monotonic() > deadline:
                return await Observed.read(bootstrap, prefix, contact=True)
        except Exception:  # a leader moving, a broker still loading: read again
            if time.monotonic() > deadline + 60:
                raise
        await asyncio.sleep(2.0)


def table(verdicts: Sequence[Verdict]) -> str:
    head = ("fault", "records in", "accounted for", "DLQ entries (reason)", "duplicates",
            "max recovery", "restarts")  # fmt: skip
    rows = [head, *(v.row() for v in verdicts)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
