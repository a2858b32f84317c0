"""Pytest plugin: real Kafka brokers for Handoff's integration tests.

Load it with ``pytest_plugins = ["tests.support.kafka"]`` or ``-p tests.support.kafka``.

Fixtures
--------
``kafka_bootstrap`` (session)
    Bootstrap servers of a single broker with single-node internal-topic
    settings (transactions and consumer groups work, topics are never
    auto-created). The first source that applies wins:

    1. ``KAFKA_BOOTSTRAP_SERVERS`` is set: use it as is, manage nothing.
    2. A Docker engine answers and ``testcontainers`` is importable (and
       ``HANDOFF_KAFKA_BACKEND`` is not ``local``): a KRaft
       ``KafkaContainer`` (image ``HANDOFF_KAFKA_IMAGE``) for this session.
    3. Otherwise the local JVM single node from ``deploy/kafka/kafkactl.py``
       on ``127.0.0.1:19092``, reused if already running (``make up``).

``kafka_cluster`` (session)
    The local 3-broker cluster (``127.0.0.1:29092,29093,29094``: RF=3,
    min.insync.replicas=2), always on the local JVM because chaos tests need
    to kill and pause individual brokers through ``kafkactl``.

``unique_name`` (function)
    A short token such as ``t3f9a0c1d``; prefix topic names, group ids and
    transactional ids with it so tests never see each other's data.

Sharing the local brokers between concurrent test sessions
----------------------------------------------------------
Several sessions may run at once on one machine (two terminals, xdist
workers, CI jobs) and they share the same ports, so the policy is:

* Single node: every session holds a *lease* (a file named after its pid and
  process start time in ``.run/kafka/single/leases/``) while it uses the broker.
  A session that launched the broker marks it ``started-by-test-session``. At
  session end, under a file lock, the session drops its lease; if no live lease
  is left and the broker was launched by a test session, it is stopped ("last
  one out turns off the light"). A broker started by a human (``kafkactl.py
  start`` / ``make up``, which clears the mark) is never stopped by tests.
  Leases of crashed sessions are ignored because their pid is gone, so a
  killed pytest never pins the broker forever, and it never stops a broker
  under a session that is still using it.
* Cluster: chaos tests kill brokers, so two sessions must not use the cluster
  at once. A session takes an exclusive lock (``.run/kafka/.cluster-session.lock``)
  for its whole lifetime; a second session waits for it. The cluster is
  stopped at session end only if this session launched all of its nodes.
* ``HANDOFF_KEEP_KAFKA=1`` keeps whatever the session started running and
  hands it over to you (the single node loses its test-session mark).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.clock_shift.handoff_clock_shift import days_later

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKACTL_PATH = REPO_ROOT / "deploy" / "kafka" / "kafkactl.py"
START_WAIT_S = float(os.environ.get("HANDOFF_KAFKA_START_WAIT", "120"))
CLUSTER_LOCK_WAIT_S = float(os.environ.get("HANDOFF_KAFKA_CLUSTER_LOCK_WAIT", "1800"))


def _load_kafkactl() -> ModuleType:
    """Import deploy/kafka/kafkactl.py (a script, not a package) exactly once."""
    name = "handoff_kafkactl"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, KAFKACTL_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {KAFKACTL_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


kafkactl = _load_kafkactl()


def _keep_kafka() -> bool:
    return os.environ.get("HANDOFF_KEEP_KAFKA", "") not in ("", "0", "false", "no")


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; registering here keeps --strict-markers
    # happy when the plugin is used from a checkout without that config.
    config.addinivalue_line("markers", "kafka: needs a real Kafka broker")
    config.addinivalue_line("markers", "cluster: needs the 3-broker Kafka cluster")
    config.addinivalue_line(
        "markers", "real_clock: compares a shell's clock with Handoff's (not under test-later)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `make test-later` only Python's clocks run ahead: a test whose other side is a
    shell's `date` (the guides' signing snippets) would see a stale timestamp that no user
    ever sends. Both sides use "now" there, so no fixture date can expire in them."""
    days = days_later()
    if days is None:
        return
    skip = pytest.mark.skip(
        reason=f"real_clock: Python clocks are {days} days ahead, the shell's not"
    )
    for item in items:
        if item.get_closest_marker("real_clock"):
            item.add_marker(skip)


# --------------------------------------------------------------------------- single node


def _process_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime in clock ticks


class _SingleNodeLease:
    """This session's claim on the shared single node (see the module docstring)."""

    def __init__(self) -> None:
        node_dir: Path = kafkactl.SINGLE_DIR
        self.leases_dir = node_dir / "leases"
        self.flag = node_dir / kafkactl.TEST_OWNED_FLAG
        self.lock = kafkactl.RUN_DIR / ".single-leases.lock"
        me = os.getpid()
        self.path = self.leases_dir / f"{me}-{_process_start_time(me)}"

    def _live_leases(self) -> list[Path]:
        live = []
        for lease in self.leases_dir.glob("*-*"):
            pid, _, started = lease.name.partition("-")
            if pid.isdigit() and _process_start_time(int(pid)) == started:
                live.append(lease)
            else:
                lease.unlink(missing_ok=True)  # left behind by a crashed session
        return live

    def acquire(self) -> str:
        with kafkactl.file_lock(self.lock):
            self.leases_dir.mkdir(parents=True, exist_ok=True)
            self.path.touch()
        bootstrap, launched = kafkactl.ensure_single(wait=START_WAIT_S)
        if launched:
            self.flag.touch()
        return str(bootstrap)

    def release(self) -> None:
        with kafkactl.file_lock(self.lock):
            self.path.unlink(missing_ok=True)
            if self._live_leases() or not self.flag.exists():
                return
            if _keep_kafka():
                self.flag.unlink(missing_ok=True)  # handed over to the human
                return
            kafkactl.stop_single()


def _docker_kafka_available() -> bool:
    """A reachable Docker engine and an importable testcontainers Kafka module."""
    if os.environ.get("HANDOFF_KAFKA_BACKEND", "auto") == "local":
        return False
    try:
        docker = importlib.import_module("docker")  # untyped; a testcontainers dependency
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
    except Exception:  # no socket, no permission, daemon down: all mean "no Docker"
        return False
    return _kafka_container_class() is not None


def _kafka_container_class() -> Any:
    for module in ("testcontainers.community.kafka", "testcontainers.kafka"):
        with contextlib.suppress(ImportError):
            return importlib.import_module(module).KafkaContainer
    return None


@contextlib.contextmanager
def _container_broker() -> Iterator[str]:
    image = os.environ.get("HANDOFF_KAFKA_IMAGE", "confluentinc/cp-kafka:7.6.0")
    container = (
        _kafka_container_class()(image)
        .with_kraft()
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )
    container.start(timeout=int(START_WAIT_S))
    try:
        yield str(container.get_bootstrap_server())
    finally:
        container.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a single Kafka broker for this test session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    backend = os.environ.get("HANDOFF_KAFKA_BACKEND", "auto")
    if backend == "docker" or (backend == "auto" and _docker_kafka_available()):
        with _container_broker() as bootstrap:
            asyncio.run(_accept_clients_days_ahead(bootstrap))
            yield bootstrap
        return
    lease = _SingleNodeLease()
    try:
        bootstrap = lease.acquire()
    except kafkactl.KafkaCtlError as exc:
        lease.release()
        pytest.fail(f"could not start the local Kafka broker: {exc}", pytrace=False)
    try:
        asyncio.run(_warm_up(bootstrap))
        asyncio.run(_accept_clients_days_ahead(bootstrap))
        yield bootstrap
    finally:
        lease.release()


async def _warm_up(bootstrap: str, within: float = 60.0) -> None:
    """Make a fresh broker create __consumer_offsets and __transaction_state now.

    The first group or transaction lookup on a new cluster answers "coordinator not
    available" while the internal topic is created; clients that do not retry (admin
    calls) would fail whichever test happens to run first."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        for coordinator_type in (0, 1):  # group, transaction
            while True:
                try:
                    await admin.find_coordinator("handoff-warm-up", coordinator_type)
                    break
                except Exception:
                    if loop.time() > deadline:
                        raise
                    await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def _accept_clients_days_ahead(bootstrap: str) -> None:
    """Under `make test-later` every Python clock runs days ahead of the brokers' (see
    tests/support/clock_shift), and Kafka refuses records stamped more than an hour in its
    future (`log.message.timestamp.after.max.ms`). Raise that bound on every broker, as a
    dynamic per-broker config: it is kept in the metadata log, so a broker a chaos test
    restarts keeps it. An ordinary run changes nothing."""
    days = days_later()
    if days is None or days <= 0:
        return
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    bound = str(int((days + 1) * 86_400_000))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        brokers = (await admin.describe_cluster())["brokers"]
        setting = {"log.message.timestamp.after.max.ms": bound}
        resources = [
            ConfigResource(ConfigResourceType.BROKER, str(b["node_id"]), setting) for b in brokers
        ]
        for response in await admin.alter_configs(resources):
            for code, message, *_ in response.resources:
                if code != 0:
                    raise RuntimeError(f"raising the future-timestamp bound failed: {message}")
    finally:
        await admin.close()


# --------------------------------------------------------------------------- cluster


@contextlib.contextmanager
def _exclusive_cluster_session() -> Iterator[None]:
    """Hold the cluster for this whole session; chaos tests must not overlap."""
    path: Path = kafkactl.RUN_DIR / ".cluster-session.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"\n[kafka] another test session holds the Kafka cluster ({path}); waiting",
                file=sys.__stderr__,
                flush=True,
            )
            deadline = time.monotonic() + CLUSTER_LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        pytest.fail(
                            f"the Kafka cluster stayed busy for {CLUSTER_LOCK_WAIT_S:.0f}s",
                            pytrace=False,
                        )
                    time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[str]:
    """Bootstrap servers of the local 3-broker cluster (started on demand)."""
    with _exclusive_cluster_session():
        try:
            bootstrap, launched = kafkactl.ensure_cluster(wait=START_WAIT_S)
        except kafkactl.KafkaCtlError as exc:
            pytest.fail(f"could not start the local Kafka cluster: {exc}", pytrace=False)
        asyncio.run(_accept_clients_days_ahead(str(bootstrap)))
        try:
            yield str(bootstrap)
        finally:
            if len(launched) == kafkactl.CLUSTER_SIZE and not _keep_kafka():
                kafkactl.stop_cluster()


# --------------------------------------------------------------------------- naming


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A short token unique to this test, to prefix topics, group ids and txn ids.

    After the test, every topic whose name starts with the token is deleted (unless
    HANDOFF_KEEP_TOPICS=1), so a long suite does not pile thousands of partitions onto
    one small broker."""
    token = f"t{uuid.uuid4().hex[:8]}"
    # Shows up in junit XML and reports, to find a failed test's topics in the logs.
    request.node.user_properties.append(("kafka_name_prefix", token))
    yield token
    if (
        os.environ.get("HANDOFF_KEEP_TOPICS") == "1"
        or "kafka_bootstrap" not in request.fixturenames
    ):
        return
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    with contextlib.suppress(Exception):
        asyncio.run(_delete_topics_with_prefix(bootstrap, token))


async def _delete_topics_with_prefix(bootstrap: str, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=15000)
    finally:
        await admin.close()


# --------------------------------------------------------------------------- async helpers


async def wait_for_cluster_ready(
    bootstrap: str, expected_brokers: int, within: float = 60.0
) -> dict[str, Any]:
    """Wait until the metadata lists `expected_brokers` live brokers; return describe_cluster.

    Metadata lists only unfenced brokers, so this also means a restarted broker
    has re-registered with the controller quorum.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.monotonic() + within
    last: object = None
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            description: dict[str, Any] = await admin.describe_cluster()
            last = description
            if len(description.get("brokers", [])) >= expected_brokers:
                return description
        except Exception as exc:  # brokers coming and going: keep polling
            last = exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{bootstrap}: expected {expected_brokers} brokers within {within:.0f}s, "
                f"last answer: {last!r}"
            )
        await asyncio.sleep(0.5)


async def describe_topic(bootstrap: str, topic: str) -> dict[str, Any]:
    """The metadata of one topic (partitions with leader, replicas and isr)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        topics: list[dict[str, Any]] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return topics[0]


async def create_topic(
    bootstrap: str,
    topic: str,
    *,
    partitions: int = 1,
    replication_factor: int = 1,
    configs: Mapping[str, str] | None = None,
    within: float = 30.0,
) -> dict[str, Any]:
    """Create a topic (auto-creation is off) and wait until every partition has a leader."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(topic, partitions, replication_factor, topic_configs=dict(configs or {}))]
        )
        for result in response.topic_errors:
            name, code = result[0], result[1]
            if code not in (0, 36):  # 36 = TOPIC_ALREADY_EXISTS
                raise RuntimeError(f"creating topic {name!r} failed: {result!r}")
    finally:
        await admin.close()
    deadline = time.monotonic() + within
    while True:
        description = await describe_topic(bootstrap, topic)
        parts = description.get("partitions", [])
        if (
            description.get("error_code") == 0
            and len(parts) == partitions
            and all(p["leader"] >= 0 for p in parts)
        ):
            return description
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic!r} has no leaders after {within:.0f}s: {description}")
        await asyncio.sleep(0.2)


async def wait_for_isr(
    bootstrap: str, topic: str, expected_isr: int, within: float = 90.0
) -> dict[str, Any]:
    """Wait until every partition of `topic` has `expected_isr` in-sync replicas."""
    deadline = time.monotonic() + within
    description: dict[str, Any] = {}
    while True:
        with contextlib.suppress(Exception):
            description = await describe_topic(bootstrap, topic)
            parts = description.get("partitions", [])
            if parts and all(len(p["isr"]) >= expected_isr for p in parts):
                return description
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"topic {topic!r}: ISR not back to {expected_isr} within {within:.0f}s: "
                f"{description}"
            )
        await asyncio.sleep(0.5)


async def read_all(
    bootstrap: str,
    topic: str,
    *,
    isolation_level: str = "read_committed",
    within: float = 30.0,
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of `topic` as (partition, offset, key, value), read to the end offsets.

    Uses assign() rather than a group, so it reads a snapshot without touching
    any committed offsets. Under read_committed the end offset is the last
    stable offset, so open transactions are not waited for.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        description = await describe_topic(bootstrap, topic)
        partitions: Sequence[int] = sorted(p["partition"] for p in description["partitions"])
        if not partitions:
            raise LookupError(f"topic {topic!r} does not exist: {description}")
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[tuple[int, int, bytes | None, bytes | None]] = []
        deadline = time.monotonic() + within
        while True:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= end[tp] for tp in tps):
                return records
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic!r}: positions {positions} never reached {end}")
            batches = await consumer.getmany(*tps, timeout_ms=500)
            for batch in batches.values():
                records.extend((r.partition, r.offset, r.key, r.value) for r in batch)
    finally:
        await consumer.stop()
