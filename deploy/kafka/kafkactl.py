#!/usr/bin/env python3
"""Run a real Apache Kafka (KRaft) for Handoff on the local JVM, without Docker.

This module owns the local Kafka nodes: fetching the broker's jars from Maven
Central, writing each node's ``server.properties``, formatting its storage,
starting it as a detached JVM, waiting until it answers, stopping, pausing or
killing it, and reporting its state. It is both a command-line tool and a
library (the pytest harness in ``tests/support/kafka.py`` imports it), and it
uses only the standard library because it has to run before any virtualenv
exists.

Why this and not Docker or a release tarball: the development and CI machines
have no Docker engine and no internet access except package registries, but
Maven Central is reachable and Java 17 is installed. See
``docs/decisions/0001-running-kafka-locally.md``.

Layout (all relative to the repository root, both directories are gitignored):

    .cache/kafka/libs/           the broker's jars (+ .handoff-kafka.json marker)
    .run/kafka/single/           the single node: server.properties, data/, logs/,
                                 kafka.pid, stdout.log, cluster.id
    .run/kafka/cluster/node-N/   the 3-node cluster, same layout per node
    .run/kafka/cluster/cluster.id

Ports (loopback only; shift them all with --port-base or HANDOFF_KAFKA_PORT_BASE,
which is the single node's client port, default 19092):

    single   client 19092, controller 19093
    cluster  clients 29092 29093 29094, controllers 29192 29193 29194

Every node is a combined broker+controller (``process.roles=broker,controller``).
The single node is a one-voter dynamic quorum (formatted with ``--standalone``);
the cluster uses a static ``controller.quorum.voters`` list and one cluster id.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
POM = HERE / "pom.xml"
LOG4J_CONFIG = HERE / "log4j2.xml"
CACHE_DIR = REPO_ROOT / ".cache" / "kafka"
LIBS_DIR = CACHE_DIR / "libs"
MARKER_FILE = LIBS_DIR / ".handoff-kafka.json"
RUN_DIR = REPO_ROOT / ".run" / "kafka"
SINGLE_DIR = RUN_DIR / "single"
CLUSTER_DIR = RUN_DIR / "cluster"

DEFAULT_PORT_BASE = 19092
CLUSTER_SIZE = 3
DEFAULT_WAIT_S = 90.0
DEFAULT_STOP_TIMEOUT_S = 30.0
SINGLE_HEAP = "1536m"  # thousands of short-lived test topics need room
CLUSTER_NODE_HEAP = "768m"

# A line the broker logs once it is fully up (KafkaRaftServer, Kafka 3.x/4.x).
READY_LOG_LINE = "Kafka Server started"
# Identifies our JVMs in /proc/<pid>/cmdline so a recycled pid is never mistaken
# for a broker, and a broker whose pid file was lost can still be found.
NODE_MARKER_PROP = "handoff.kafka.node"
# Set when a test session (not a human) launched the single node; see
# tests/support/kafka.py for the lease protocol that uses it.
TEST_OWNED_FLAG = "started-by-test-session"

SIGNALS: dict[str, signal.Signals] = {
    "TERM": signal.SIGTERM,
    "KILL": signal.SIGKILL,
    "STOP": signal.SIGSTOP,
    "CONT": signal.SIGCONT,
}


class KafkaCtlError(RuntimeError):
    """A failure the CLI reports as one clear message and exit status 1."""


class PortInUseError(KafkaCtlError):
    """A node's port is held by something that is not that node."""


class StartTimeoutError(KafkaCtlError):
    """A node did not become ready in time (the message carries the log tail)."""


# --------------------------------------------------------------------------- output


class _Output:
    quiet = False


def _say(message: str, *, end: str = "\n") -> None:
    """Progress goes to stderr so stdout stays machine-readable (bootstrap, classpath)."""
    if not _Output.quiet:
        print(message, end=end, file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """Silence progress output (the CLI's -q; library callers may want it too)."""
    previous, _Output.quiet = _Output.quiet, enabled
    try:
        yield
    finally:
        _Output.quiet = previous


# --------------------------------------------------------------------------- jars


def kafka_version() -> str:
    """The Kafka version pinned in pom.xml; the pom is the single source of truth."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(POM).getroot()
    node = root.find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise KafkaCtlError(f"{POM}: <properties><kafka.version> is missing")
    return (node.text or "").strip()


def _expected_marker() -> dict[str, str]:
    # Hashing the whole pom means any pinned version bump (Kafka or log4j)
    # invalidates the cache, not just kafka.version.
    return {
        "kafka_version": kafka_version(),
        "pom_sha256": hashlib.sha256(POM.read_bytes()).hexdigest(),
    }


def jars_complete() -> bool:
    """True when .cache/kafka/libs holds every jar of the current pom's fetch."""
    try:
        marker = json.loads(MARKER_FILE.read_text())
    except (OSError, ValueError):
        return False
    expected = _expected_marker()
    if any(marker.get(k) != v for k, v in expected.items()):
        return False
    jars = marker.get("jars") or []
    return bool(jars) and all((LIBS_DIR / name).is_file() for name in jars)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An flock: serialises fetches and starts across concurrent test sessions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_jars(*, force: bool = False) -> Path:
    """Fetch the broker's jars with Maven unless they are already complete.

    Idempotent and safe to call from several processes at once: the download
    goes to a temporary directory under a file lock and is swapped in only when
    Maven succeeded, so a half-finished fetch never looks complete.
    """
    if not force and jars_complete():
        return LIBS_DIR
    with file_lock(CACHE_DIR / ".fetch.lock"):
        if not force and jars_complete():
            return LIBS_DIR  # another process fetched while we waited
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaCtlError("Maven (mvn) is not on PATH; it is needed once to fetch Kafka")
        version = kafka_version()
        tmp = CACHE_DIR / f"libs.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        _say(f"fetching Kafka {version} jars from Maven Central into {LIBS_DIR} ", end="")
        started = time.monotonic()
        cmd = [
            mvn, "-B", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
        ]  # fmt: skip
        output: list[str] = []
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=HERE,
        )
        assert proc.stdout is not None
        downloaded = 0
        for line in proc.stdout:
            output.append(line.rstrip())
            # Batch mode prints one line per downloaded file: a dot per ten of them.
            if line.startswith(("Downloaded from", "[INFO] Downloaded from")):
                downloaded += 1
                if downloaded % 10 == 0:
                    _say(".", end="")
        if proc.wait() != 0:
            _say(" failed")
            shutil.rmtree(tmp, ignore_errors=True)
            tail = "\n".join(output[-40:])
            raise KafkaCtlError(f"mvn dependency:copy-dependencies failed:\n{tail}")
        jars = sorted(p.name for p in tmp.glob("*.jar"))
        if not any(j.startswith(f"kafka_2.13-{version}") for j in jars):
            raise KafkaCtlError(f"Maven finished but kafka_2.13-{version}.jar is not in {tmp}")
        (tmp / MARKER_FILE.name).write_text(
            json.dumps({**_expected_marker(), "jars": jars}, indent=2) + "\n"
        )
        old = CACHE_DIR / f"libs.old-{os.getpid()}"
        if LIBS_DIR.exists():
            # Running brokers keep their open jar handles; replacing is safe on Linux.
            LIBS_DIR.rename(old)
        tmp.rename(LIBS_DIR)
        shutil.rmtree(old, ignore_errors=True)
        _say(
            f" {len(jars)} jars in {time.monotonic() - started:.0f}s "
            f"({downloaded} files downloaded, the rest from ~/.m2)"
        )
    return LIBS_DIR


def classpath() -> str:
    """The JVM classpath (a wildcard the java launcher expands)."""
    return f"{LIBS_DIR}/*"


def java_executable() -> str:
    """JAVA_HOME wins over PATH, as in Kafka's own scripts."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise KafkaCtlError("no java on PATH and JAVA_HOME is not set; Kafka needs Java 17+")
    return found


# --------------------------------------------------------------------------- nodes


def port_base() -> int:
    """The single node's client port; every other port is a fixed offset from it."""
    raw = os.environ.get("HANDOFF_KAFKA_PORT_BASE", "")
    if not raw:
        return DEFAULT_PORT_BASE
    try:
        value = int(raw)
    except ValueError:
        raise KafkaCtlError(f"HANDOFF_KAFKA_PORT_BASE={raw!r} is not a port number") from None
    if not 1024 <= value <= 65535 - 10_200:
        raise KafkaCtlError(f"HANDOFF_KAFKA_PORT_BASE={value} leaves no room for the ports")
    return value


@dataclass(frozen=True)
class Node:
    """One combined broker+controller JVM and the files it owns."""

    name: str  # "single" or "node-N"
    node_id: int
    directory: Path
    client_port: int
    controller_port: int
    heap: str
    in_cluster: bool

    @property
    def pid_file(self) -> Path:
        return self.directory / "kafka.pid"

    @property
    def config_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def logs_dir(self) -> Path:
        return self.directory / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.directory / "stdout.log"

    @property
    def cluster_id_file(self) -> Path:
        return (CLUSTER_DIR if self.in_cluster else self.directory) / "cluster.id"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def marker(self) -> str:
        return f"-D{NODE_MARKER_PROP}={self.directory}"

    @property
    def label(self) -> str:
        return "single node" if not self.in_cluster else f"cluster {self.name}"


def single_node() -> Node:
    base = port_base()
    return Node("single", 1, SINGLE_DIR, base, base + 1, SINGLE_HEAP, in_cluster=False)


def cluster_node(n: int) -> Node:
    if not 1 <= n <= CLUSTER_SIZE:
        raise KafkaCtlError(f"cluster node must be 1..{CLUSTER_SIZE}, got {n}")
    base = port_base()
    return Node(
        f"node-{n}",
        n,
        CLUSTER_DIR / f"node-{n}",
        base + 10_000 + n - 1,
        base + 10_100 + n - 1,
        CLUSTER_NODE_HEAP,
        in_cluster=True,
    )


def cluster_nodes() -> list[Node]:
    return [cluster_node(n) for n in range(1, CLUSTER_SIZE + 1)]


def single_bootstrap() -> str:
    return single_node().bootstrap


def cluster_bootstrap() -> str:
    return ",".join(node.bootstrap for node in cluster_nodes())


def _render_config(node: Node) -> str:
    """server.properties for a node; rewritten on every start so ports follow flags."""
    common = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{node.client_port},"
            f"CONTROLLER://127.0.0.1:{node.controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.client_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(node.data_dir),
        # Topics are provisioned from the catalogue, never auto-created.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "unclean.leader.election.enable": "false",
        # Fewer internal-topic partitions than the default 50: the same semantics,
        # much less work on a shared 2-core machine.
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.num.partitions": "10",
        # A stream stage killed mid-transaction holds its outputs back until the broker
        # aborts the transaction (transaction_timeout_ms, 10 s): look for timed-out ones
        # every second, not every 10 s (docs/decisions/0002, "Group fencing").
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
        # Small thread pools: these nodes serve tests, not production traffic.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "background.threads": "4",
        # One index entry per MiB of log instead of per 4 KiB. Every transaction ends
        # with a commit marker on each partition it wrote, and a marker after a 4 KiB
        # batch writes an entry into the memory-mapped offset and time indexes. On this
        # class of VM those page writes were 94% of the broker's samples in marker
        # handling, and halved the pipeline's commit times when made rare (decision
        # 0001, "Index interval"). The cost: a read from an arbitrary offset scans up to
        # 1 MiB from the nearest entry instead of 4 KiB.
        "log.index.interval.bytes": str(1024 * 1024),
    }
    if node.in_cluster:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in cluster_nodes())
        specific = {
            "controller.quorum.voters": voters,
            "default.replication.factor": "3",
            "min.insync.replicas": "2",
            "offsets.topic.replication.factor": "3",
            "transaction.state.log.replication.factor": "3",
            "transaction.state.log.min.isr": "2",
            "share.coordinator.state.topic.replication.factor": "3",
            "share.coordinator.state.topic.min.isr": "2",
        }
    else:
        specific = {
            # A one-voter dynamic quorum, formatted with --standalone.
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{node.controller_port}",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
        }
    lines = [
        f"# Generated by deploy/kafka/kafkactl.py for the {node.label}; rewritten on every start.",
        *(f"{key}={value}" for key, value in {**common, **specific}.items()),
    ]
    return "\n".join(lines) + "\n"


def _new_cluster_id() -> str:
    """A Kafka Uuid string (base64url, no padding), as `kafka-storage random-uuid` makes."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids ids that look like CLI flags
            return text


def _cluster_id(node: Node) -> str:
    """The node's cluster id; the formatted meta.properties wins if it exists."""
    meta = node.data_dir / "meta.properties"
    if meta.is_file():
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
    if node.cluster_id_file.is_file():
        return node.cluster_id_file.read_text().strip()
    cluster_id = _new_cluster_id()
    node.cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
    node.cluster_id_file.write_text(cluster_id + "\n")
    return cluster_id


def _jvm_logging_opts(node: Node) -> list[str]:
    return [
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={node.logs_dir}",
    ]


def _format_storage(nodes: Sequence[Node]) -> None:
    """Run StorageTool format for every node whose data dir is not formatted yet.

    The formats run in parallel: each is a short JVM and three in a row would
    add seconds to every fresh cluster start.
    """
    pending: list[tuple[Node, subprocess.Popen[str]]] = []
    for node in nodes:
        if (node.data_dir / "meta.properties").is_file():
            continue
        node.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            java_executable(), "-Xmx256m", *_jvm_logging_opts(node),
            "-cp", classpath(), "kafka.tools.StorageTool", "format",
            "-t", _cluster_id(node), "-c", str(node.config_file),
        ]  # fmt: skip
        if not node.in_cluster:
            cmd.append("--standalone")
        _say(f"formatting storage of the {node.label} ({node.data_dir})")
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=node.directory
        )
        pending.append((node, proc))
    for node, proc in pending:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise KafkaCtlError(f"formatting the {node.label} failed:\n{out.strip()}")


# --------------------------------------------------------------------------- processes


def _proc_state(pid: int) -> str | None:
    """The kernel's one-letter state of pid, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    """A zombie counts as dead: pid 1 here does not always reap orphans promptly."""
    return _proc_state(pid) not in (None, "Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_node_process(pid: int, node: Node) -> bool:
    return _alive(pid) and node.marker in _cmdline(pid)


def _scan_for_node(node: Node) -> int | None:
    """Find the node's JVM without its pid file (lost file, or started elsewhere)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_node_process(int(entry.name), node):
            return int(entry.name)
    return None


def node_pid(node: Node) -> int | None:
    """The pid of the node's running JVM, cleaning up a stale pid file on the way."""
    pid: int | None = None
    with contextlib.suppress(OSError, ValueError):
        pid = int(node.pid_file.read_text().strip())
    if pid is not None:
        if _is_node_process(pid, node):
            return pid
        why = "has exited" if not _alive(pid) else "now belongs to another program"
        _say(f"removing stale pid file {node.pid_file}: pid {pid} {why}")
        node.pid_file.unlink(missing_ok=True)
    found = _scan_for_node(node)
    if found is not None:
        _say(f"found the {node.label} running as pid {found} without a pid file; recorded it")
        node.pid_file.write_text(f"{found}\n")
    return found


def single_pid() -> int | None:
    """The single node's pid, or None when it is not running."""
    return node_pid(single_node())


def node_pids() -> dict[int, int | None]:
    """Cluster node id -> pid (None when that node is not running)."""
    return {node.node_id: node_pid(node) for node in cluster_nodes()}


def _listening_pid(port: int) -> int | None:
    """Best effort: which process listens on the loopback TCP port (via /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return int(entry.name)
    return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same as the JVM: a port in TIME_WAIT is reusable, only a listener blocks it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _check_ports(node: Node) -> None:
    for port, role in ((node.client_port, "client"), (node.controller_port, "controller")):
        if _port_free(port):
            continue
        owner = _listening_pid(port)
        who = "another process"
        if owner is not None:
            args = _cmdline(owner)
            other = [a for a in args if a.startswith(f"-D{NODE_MARKER_PROP}=")]
            if other:
                who = f"pid {owner}, a Handoff Kafka node of {other[0].split('=', 1)[1]}"
            else:
                who = f"pid {owner} ({' '.join(args)[:120]})"
        raise PortInUseError(
            f"cannot start the {node.label}: {role} port {port} is already in use by {who}, "
            f"which is not this Kafka node. Stop it, or move Kafka with "
            f"--port-base / HANDOFF_KAFKA_PORT_BASE."
        )


def jit_opts() -> list[str]:
    """JIT options for the node's JVM: `HANDOFF_KAFKA_JVM_OPTS` if set, else C1 only.

    These nodes run on small shared machines (CI has 2 cores) next to the services
    under test. With the default tiered JIT, C2 compilation of the broker took 1.2
    cores for the first minutes of a run (measured per thread during the pipeline
    benchmark) and starved everything else; C1-only code is a little slower at its
    peak but there from the start: the ceiling, fold and pipeline benchmarks all ran
    faster with it (docs/benchmarks.md). Set HANDOFF_KAFKA_JVM_OPTS=" " for the default JIT."""
    raw = os.environ.get("HANDOFF_KAFKA_JVM_OPTS")
    return ["-XX:TieredStopAtLevel=1"] if raw is None else raw.split()


def _launch(node: Node) -> int:
    """Start the node's JVM detached (own session, stdio to files) and return its pid.

    A throwaway shell forks the JVM into the background and exits, so the JVM
    is re-parented away from us: it outlives this script and never becomes our
    zombie when a test kills it.
    """
    node.logs_dir.mkdir(parents=True, exist_ok=True)
    java_cmd = [
        java_executable(),
        f"-Xmx{node.heap}", "-Xms128m",
        "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent", "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        *jit_opts(),
        node.marker,
        *_jvm_logging_opts(node),
        "-cp", classpath(),
        "kafka.Kafka", str(node.config_file),
    ]  # fmt: skip
    script = '(exec "$@" </dev/null >>"$HANDOFF_KAFKA_STDOUT" 2>&1) & echo $!'
    env = {**os.environ, "HANDOFF_KAFKA_STDOUT": str(node.stdout_file)}
    with node.stdout_file.open("a") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} kafkactl start {node.name}\n")
    shell = subprocess.run(
        ["/bin/sh", "-c", script, "kafka-node", *java_cmd],
        capture_output=True,
        text=True,
        cwd=node.directory,
        env=env,
        start_new_session=True,
        check=True,
    )
    pid = int(shell.stdout.strip())
    node.pid_file.write_text(f"{pid}\n")
    return pid


# --------------------------------------------------------------------------- readiness


def api_versions_ok(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> bool:
    """Send a real Kafka ApiVersions v0 request; True if the broker answers without error.

    A TCP connect alone is not enough: the listener socket is bound early in
    startup, long before the broker handles requests.
    """
    correlation_id = 0x48414E44  # "HAND"
    client_id = b"kafkactl"
    header = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(header)) + header)
            head = b""
            while len(head) < 10:
                chunk = sock.recv(10 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    corr: int
    error_code: int
    _size, corr, error_code = struct.unpack(">iih", head)
    return corr == correlation_id and error_code == 0


def _log_size(node: Node) -> int:
    try:
        return node.log_file.stat().st_size
    except OSError:
        return 0


def _logged_ready_since(node: Node, offset: int) -> bool:
    try:
        with node.log_file.open("rb") as handle:
            if handle.seek(0, os.SEEK_END) < offset:
                offset = 0  # the log rolled over during startup
            handle.seek(offset)
            return READY_LOG_LINE.encode() in handle.read()
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a file, for error messages and `logs`."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 256 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def _failure_context(node: Node) -> str:
    return (
        f"--- last lines of {node.log_file} ---\n{tail(node.log_file, 30)}\n"
        f"--- last lines of {node.stdout_file} ---\n{tail(node.stdout_file, 15)}"
    )


def _wait_ready(nodes: Sequence[Node], offsets: dict[str, int | None], wait: float) -> None:
    """Block until every node answers ApiVersions (and, if just launched, logged ready).

    `offsets[name]` is the server.log size before launch for nodes we launched,
    or None for nodes that were already running.
    """
    deadline = time.monotonic() + wait
    pending = list(nodes)
    names = ", ".join(n.name for n in nodes)
    _say(f"waiting up to {wait:.0f}s for {names} ", end="")
    next_dot = time.monotonic() + 1.0
    while True:
        for node in list(pending):
            pid = node_pid(node)
            if pid is None:
                _say(" died")
                raise KafkaCtlError(
                    f"the {node.label} exited during startup\n{_failure_context(node)}"
                )
            offset = offsets.get(node.name)
            if offset is not None and not _logged_ready_since(node, offset):
                continue
            if api_versions_ok(node.client_port, timeout=1.0):
                pending.remove(node)
        if not pending:
            _say(" ready")
            return
        now = time.monotonic()
        if now >= deadline:
            _say(" timed out")
            context = "\n".join(_failure_context(n) for n in pending)
            raise StartTimeoutError(
                f"{', '.join(n.label for n in pending)} not ready after {wait:.0f}s\n{context}"
            )
        if now >= next_dot:
            _say(".", end="")
            next_dot = now + 1.0
        time.sleep(0.25)


# --------------------------------------------------------------------------- start/stop


def _as_running(node: Node) -> Node:
    """The node with the ports its running JVM was started with (its server.properties).

    Matters when a node was started with another --port-base than this call's:
    waits, status and the returned bootstrap must use the ports it really has.
    """
    try:
        text = node.config_file.read_text()
    except OSError:
        return node
    listeners = dict(re.findall(r"(PLAINTEXT|CONTROLLER)://[^:,\s]+:(\d+)", text))
    if "PLAINTEXT" not in listeners or "CONTROLLER" not in listeners:
        return node
    return replace(
        node,
        client_port=int(listeners["PLAINTEXT"]),
        controller_port=int(listeners["CONTROLLER"]),
    )


def _start_nodes(nodes: Sequence[Node], wait: float, lock: Path) -> tuple[list[Node], list[Node]]:
    """Start whichever of `nodes` is not running.

    Returns (the nodes as they now run, the ones this call launched).
    """
    ensure_jars()
    offsets: dict[str, int | None] = {}
    targets: list[Node] = []
    to_launch: list[Node] = []
    with file_lock(lock):
        for node in nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            pid = node_pid(node)
            if pid is None:
                _check_ports(node)
                node.config_file.write_text(_render_config(node))
                targets.append(node)
                to_launch.append(node)
                continue
            running = _as_running(node)
            if _proc_state(pid) == "T":
                # Paused by a chaos test (SIGSTOP); "start" means "make it run".
                os.kill(pid, signal.SIGCONT)
                _say(f"the {node.label} was paused (pid {pid}); sent SIGCONT")
            _say(f"the {node.label} is already running (pid {pid}, {running.bootstrap})")
            if running.client_port != node.client_port:
                _say(f"  note: it uses port {running.client_port}, not {node.client_port}")
            offsets[node.name] = None
            targets.append(running)
        _format_storage(to_launch)
        for node in to_launch:
            offsets[node.name] = _log_size(node)
            pid = _launch(node)
            _say(f"started the {node.label} (pid {pid}, {node.bootstrap}, log {node.log_file})")
    if wait > 0:
        _wait_ready(targets, offsets, wait)
    return targets, to_launch


def ensure_single(wait: float = DEFAULT_WAIT_S) -> tuple[str, bool]:
    """Start the single node unless running; return (bootstrap, launched_by_this_call)."""
    (node,), launched = _start_nodes([single_node()], wait, RUN_DIR / ".single.lock")
    return node.bootstrap, bool(launched)


def start_single(wait: float = DEFAULT_WAIT_S) -> str:
    """Start (or reuse) the single node and return its bootstrap servers."""
    return ensure_single(wait)[0]


def ensure_cluster(wait: float = DEFAULT_WAIT_S) -> tuple[str, list[int]]:
    """Start every cluster node that is not running; return (bootstrap, launched node ids).

    All missing nodes are launched before waiting: a node cannot become ready
    until a majority of the controller quorum is up.
    """
    nodes, launched = _start_nodes(cluster_nodes(), wait, RUN_DIR / ".cluster.lock")
    return ",".join(n.bootstrap for n in nodes), [n.node_id for n in launched]


def start_cluster(wait: float = DEFAULT_WAIT_S) -> str:
    """Start (or complete) the 3-node cluster and return its bootstrap servers."""
    return ensure_cluster(wait)[0]


def start_node(n: int, wait: float = DEFAULT_WAIT_S) -> str:
    """(Re)start one cluster node, e.g. after a chaos test killed it."""
    (node,), _ = _start_nodes([cluster_node(n)], wait, RUN_DIR / ".cluster.lock")
    return node.bootstrap


def _wait_exit(pids: dict[str, int], timeout: float) -> dict[str, int]:
    """Wait until the processes exit; return those still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    alive = dict(pids)
    while alive and time.monotonic() < deadline:
        alive = {name: pid for name, pid in alive.items() if _alive(pid)}
        if alive:
            time.sleep(0.2)
    return {name: pid for name, pid in alive.items() if _alive(pid)}


def _signal_nodes(nodes: Sequence[Node], sig: str | int | signal.Signals, timeout: float) -> None:
    """Send a signal to the nodes; TERM waits and escalates to KILL after `timeout`."""
    signum = _parse_signal(sig)
    targets: dict[str, int] = {}
    by_name = {node.name: node for node in nodes}
    for node in nodes:
        pid = node_pid(node)
        if pid is None:
            _say(f"the {node.label} is not running")
            continue
        if signum == signal.SIGTERM and _proc_state(pid) == "T":
            # A paused JVM cannot act on TERM until it is continued.
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)
        else:
            os.kill(pid, signum)
        _say(f"sent SIG{signal.Signals(signum).name[3:]} to the {node.label} (pid {pid})")
        targets[node.name] = pid
    if not targets:
        return
    if signum == signal.SIGSTOP:
        _wait_state(targets, "T")
        return
    if signum == signal.SIGCONT:
        return
    left = _wait_exit(targets, timeout if signum == signal.SIGTERM else 10.0)
    if left and signum == signal.SIGTERM:
        for name, pid in left.items():
            _say(f"the {by_name[name].label} ignored SIGTERM for {timeout:.0f}s; sending SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        left = _wait_exit(left, 10.0)
    if left:
        raise KafkaCtlError(f"processes still alive after SIGKILL: {left}")
    for name in targets:
        by_name[name].pid_file.unlink(missing_ok=True)
        _say(f"the {by_name[name].label} is stopped")


def _wait_state(pids: dict[str, int], state: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_proc_state(pid) == state for pid in pids.values()):
            return
        time.sleep(0.05)


def _parse_signal(sig: str | int | signal.Signals) -> int:
    if isinstance(sig, str):
        key = sig.upper().removeprefix("SIG")
        if key not in SIGNALS:
            raise KafkaCtlError(f"unsupported signal {sig!r}; use one of {', '.join(SIGNALS)}")
        return SIGNALS[key]
    return int(sig)


def stop_single(timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
    """Gracefully stop the single node (SIGTERM, SIGKILL after `timeout`)."""
    _signal_nodes([single_node()], "TERM", timeout)
    (SINGLE_DIR / TEST_OWNED_FLAG).unlink(missing_ok=True)


def stop_cluster(timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
    """Stop all cluster nodes at once (in parallel, so the quorum shuts down together)."""
    nodes = cluster_nodes()
    # A paused node would hold up its peers' controlled shutdown; continue it first.
    for node in nodes:
        pid = node_pid(node)
        if pid is not None and _proc_state(pid) == "T":
            os.kill(pid, signal.SIGCONT)
    _signal_nodes(nodes, "TERM", timeout)


def stop_node(n: int, sig: str | int = "TERM", timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
    """Signal one cluster node: TERM (graceful), KILL (crash), STOP (pause) or CONT (resume)."""
    _signal_nodes([cluster_node(n)], sig, timeout)


def wipe() -> None:
    """Stop every node and delete .run/kafka (data, logs, cluster ids)."""
    stop_single()
    stop_cluster()
    if RUN_DIR.exists():
        shutil.rmtree(RUN_DIR)
        _say(f"deleted {RUN_DIR}")


# --------------------------------------------------------------------------- status


def node_status(node: Node) -> dict[str, Any]:
    """A plain description of a node for `status` (and for debugging in tests)."""
    pid = node_pid(node)
    if pid is not None:
        node = _as_running(node)
    if pid is None:
        state = "stopped"
    elif _proc_state(pid) == "T":
        state = "paused"
    elif api_versions_ok(node.client_port, timeout=1.0):
        state = "running"
    else:
        state = "starting"
    return {
        "node": node.name,
        "node_id": node.node_id,
        "state": state,
        "pid": pid,
        "client_port": node.client_port,
        "controller_port": node.controller_port,
        "bootstrap": node.bootstrap,
        "log": str(node.log_file),
        "stdout": str(node.stdout_file),
        "data": str(node.data_dir),
        "formatted": (node.data_dir / "meta.properties").is_file(),
    }


def status() -> dict[str, Any]:
    return {
        "kafka_version": kafka_version(),
        "jars": str(LIBS_DIR) if jars_complete() else None,
        "single": node_status(single_node()),
        "cluster": [node_status(node) for node in cluster_nodes()],
    }


def _print_status(info: dict[str, Any]) -> None:
    jars = info["jars"] or "not fetched (run: kafkactl.py fetch)"
    print(f"Kafka {info['kafka_version']}  jars: {jars}")
    rows = [("single", info["single"])] + [("cluster", row) for row in info["cluster"]]
    print(f"{'':8} {'node':7} {'state':9} {'pid':>7}  {'client':>6} {'ctrl':>6}  log")
    for group, row in rows:
        pid = row["pid"] if row["pid"] is not None else "-"
        print(
            f"{group:8} {row['node']:7} {row['state']:9} {pid!s:>7}  "
            f"{row['client_port']:>6} {row['controller_port']:>6}  {row['log']}"
        )


# --------------------------------------------------------------------------- CLI


def _follow(path: Path) -> None:
    """`tail -f` without the dependency: print new lines until interrupted."""
    with contextlib.suppress(KeyboardInterrupt):
        while not path.exists():
            time.sleep(0.5)
        with path.open("r", errors="replace") as handle:
            handle.seek(0, os.SEEK_END)
            while True:
                line = handle.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.3)


def _selected_nodes(args: argparse.Namespace) -> list[Node]:
    if args.node is not None:
        return [cluster_node(args.node)]
    return cluster_nodes() if args.cluster else [single_node()]


def _cmd_fetch(args: argparse.Namespace) -> int:
    if not args.force and jars_complete():
        _say(f"Kafka {kafka_version()} jars are complete in {LIBS_DIR}")
    else:
        ensure_jars(force=args.force)
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    if args.node is not None:
        print(start_node(args.node, wait=args.wait))
    elif args.cluster:
        print(start_cluster(wait=args.wait))
    else:
        print(start_single(wait=args.wait))
        # A human asked for this broker: test sessions must not stop it later.
        (SINGLE_DIR / TEST_OWNED_FLAG).unlink(missing_ok=True)
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    if args.node is not None:
        stop_node(args.node, args.signal, timeout=args.timeout)
    elif args.cluster:
        if args.signal == "TERM":
            stop_cluster(timeout=args.timeout)
        else:
            _signal_nodes(cluster_nodes(), args.signal, args.timeout)
    else:
        _signal_nodes([single_node()], args.signal, args.timeout)
        if single_pid() is None:
            (SINGLE_DIR / TEST_OWNED_FLAG).unlink(missing_ok=True)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    info = status()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_status(info)
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    node = _selected_nodes(args)[0]
    path = node.stdout_file if args.stdout else node.log_file
    print(f"==> {path} <==", file=sys.stderr)
    if args.path_only:
        print(path)
        return 0
    print(tail(path, args.lines))
    if args.follow:
        _follow(path)
    return 0


def _cmd_wipe(_args: argparse.Namespace) -> int:
    wipe()
    return 0


def _cmd_perf_classpath(_args: argparse.Namespace) -> int:
    ensure_jars()
    print(classpath())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafkactl.py",
        description=(
            "Run a real Apache Kafka (KRaft, from Maven Central) on the local JVM for Handoff: "
            "a single node on 127.0.0.1:19092 or a 3-node cluster on 127.0.0.1:29092-29094. "
            "Data and logs live in .run/kafka/, jars in .cache/kafka/libs/."
        ),
        epilog=(
            "examples:\n"
            "  kafkactl.py start                   # single node, waits until ready\n"
            "  kafkactl.py start --cluster         # 3 brokers (RF=3, min.insync.replicas=2)\n"
            "  kafkactl.py stop --node 2 --signal KILL   # crash one cluster broker\n"
            "  kafkactl.py start --node 2          # bring it back\n"
            "  kafkactl.py status\n"
            '  java -cp "$(kafkactl.py perf-classpath)" '
            "org.apache.kafka.tools.ProducerPerformance --help\n"
            "\n"
            "Progress goes to stderr; stdout carries only results (bootstrap servers, "
            "classpath, status). Exit status: 0 ok, 1 error (port in use, timeout, ...), "
            "2 usage."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port-base",
        type=int,
        metavar="PORT",
        help="single node client port (default 19092, or $HANDOFF_KAFKA_PORT_BASE); "
        "the controller port is +1, the cluster's ports are +10000.. and +10100..",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_target(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--cluster", action="store_true", help=f"{what} the 3-node cluster")
        p.add_argument(
            "--node",
            type=int,
            choices=range(1, CLUSTER_SIZE + 1),
            metavar="N",
            help=f"{what} only cluster node N (1-{CLUSTER_SIZE}); implies --cluster",
        )

    p = sub.add_parser("fetch", help="download the Kafka jars via Maven (idempotent)")
    p.add_argument("--force", action="store_true", help="refetch even if complete")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser(
        "start",
        help="start the single node (default) or the cluster; reuses running nodes",
        description="Start nodes that are not running, then wait until every node answers. "
        "Prints the bootstrap servers on stdout.",
    )
    add_target(p, "start")
    p.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"wait this long for readiness (default {DEFAULT_WAIT_S:.0f}; 0 = do not wait)",
    )
    p.set_defaults(func=_cmd_start)

    p = sub.add_parser(
        "stop",
        help="stop (or signal) the single node, the cluster or one cluster node",
        description="TERM (default) stops gracefully and sends KILL after --timeout; KILL "
        "crashes the node; STOP pauses it and CONT resumes it (for chaos tests).",
    )
    add_target(p, "stop")
    p.add_argument("--signal", choices=list(SIGNALS), default="TERM", type=str.upper)
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_STOP_TIMEOUT_S,
        metavar="SECONDS",
        help=f"grace period before SIGKILL (default {DEFAULT_STOP_TIMEOUT_S:.0f})",
    )
    p.set_defaults(func=_cmd_stop)

    p = sub.add_parser("status", help="which nodes run, pids, ports, log files")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("logs", help="print the tail of a node's server.log")
    add_target(p, "show logs of")
    p.add_argument("-n", "--lines", type=int, default=50, help="lines to show (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--stdout", action="store_true", help="the JVM's stdout.log instead")
    p.add_argument("--path", dest="path_only", action="store_true", help="print the path only")
    p.set_defaults(func=_cmd_logs)

    p = sub.add_parser("wipe", help="stop every node and delete .run/kafka")
    p.set_defaults(func=_cmd_wipe)

    p = sub.add_parser(
        "perf-classpath",
        help="print the java classpath for ProducerPerformance & co.",
        description="Prints a classpath for org.apache.kafka.tools.ProducerPerformance, "
        "ConsumerPerformance and EndToEndLatency (fetching the jars first if needed).",
    )
    p.set_defaults(func=_cmd_perf_classpath)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.port_base is not None:
        os.environ["HANDOFF_KAFKA_PORT_BASE"] = str(args.port_base)
    if getattr(args, "node", None) is not None:
        args.cluster = True
    try:
        with quiet(args.quiet):
            result: int = args.func(args)
            return result
    except KafkaCtlError as exc:
        print(f"kafkactl: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
