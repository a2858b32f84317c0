"""A single-node Kafka with SASL/SCRAM-SHA-512 and the standard ACL authorizer, for the least
privilege tests. Same jars and JVM as deploy/kafka/kafkactl.py, its own ports and data dir.

Users are created at format time (`StorageTool format --add-scram`), so the broker
authenticates them from its first second; ACLs are created with the Admin API
through `AclApply.java` (one JVM for all of them: aiokafka 0.14 has no CreateAcls
in its admin client and Kafka 4 no longer accepts the old request versions).

The client listener is SASL_PLAINTEXT; the controller listener is PLAINTEXT on
loopback and its (anonymous) principal is a super user, because the node's own
broker must register with its controller before any ACL exists. Only the SASL
listener is advertised to clients.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from handoff_events.topics import Service, reads, writes

from tests.support.kafka import kafkactl

ADMIN = "admin"
SCRAM = "SCRAM-SHA-512"
HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SecureBroker:
    directory: Path
    passwords: dict[str, str]
    client_port: int = 0
    controller_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.client_port = self.client_port or _free_port()
        self.controller_port = self.controller_port or _free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def log_file(self) -> Path:
        return self.directory / "server.log"

    def client_args(self, user: str) -> dict[str, object]:
        """aiokafka arguments for `user` (ServiceSettings.kafka_security() builds the same)."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": SCRAM,
            "sasl_plain_username": user,
            "sasl_plain_password": self.passwords[user],
        }

    def _config(self) -> str:
        admin_jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{self.passwords[ADMIN]}";'
        )
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.client_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.client_port}",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": SCRAM,
            "sasl.mechanism.inter.broker.protocol": SCRAM,
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": admin_jaas,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN};User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
            "log.dirs": str(self.directory / "data"),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _java(self, *args: str, heap: str = "256m") -> list[str]:
        return [
            kafkactl.java_executable(),
            f"-Xmx{heap}",
            f"-Dlog4j2.configurationFile={kafkactl.LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.directory}",
            "-cp",
            kafkactl.classpath(),
            *args,
        ]

    def start(self, wait: float = 150.0) -> None:
        kafkactl.ensure_jars()
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "server.properties"
        config.write_text(self._config())
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if cluster_id.startswith("-"):
            cluster_id = "A" + cluster_id[1:]
        scram: list[str] = []
        for user, password in self.passwords.items():
            scram += ["--add-scram", f"{SCRAM}=[name={user},password={password}]"]
        fmt = self._java(
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config),
            "--standalone", *scram,
        )  # fmt: skip
        done = subprocess.run(fmt, capture_output=True, text=True, cwd=self.directory, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"formatting the secure broker failed:\n{done.stdout}{done.stderr}")
        out = (self.directory / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(config), heap="512m"),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        deadline = time.monotonic() + wait
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"secure broker exited:\n{kafkactl.tail(self.log_file)}")
            if self.log_file.exists() and kafkactl.READY_LOG_LINE in self.log_file.read_text(
                errors="replace"
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"secure broker not ready:\n{kafkactl.tail(self.log_file)}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def create_acls(self, lines: Iterable[tuple[str, str, str, str, str]]) -> str:
        spec = "".join("\t".join(line) + "\n" for line in lines)
        done = subprocess.run(
            self._java(str(HERE / "AclApply.java"), self.bootstrap, ADMIN, self.passwords[ADMIN]),
            input=spec,
            check=False,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode != 0:
            raise RuntimeError(f"creating ACLs failed:\n{done.stdout}{done.stderr}")
        return done.stdout


def service_acls(service: Service, prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """The ACLs of one service, derived from the topic catalogue: WRITE on the topics it
    writes, READ on those it reads, DESCRIBE on both, its own consumer groups and
    transactional ids (both `<prefix>handoff.<service>.`, prefixed). Nothing else."""
    principal = f"User:{service}"
    acls: list[tuple[str, str, str, str, str]] = []
    for spec in writes(service):
        name = prefix + spec.name
        acls += [(principal, "TOPIC", "LITERAL", name, op) for op in ("WRITE", "DESCRIBE")]
    for spec in reads(service):
        name = prefix + spec.name
        acls += [(principal, "TOPIC", "LITERAL", name, op) for op in ("READ", "DESCRIBE")]
    own = f"{prefix}handoff.{service}."
    acls += [(principal, "GROUP", "PREFIXED", own, op) for op in ("READ", "DESCRIBE")]
    acls += [(principal, "TRANSACTIONAL_ID", "PREFIXED", own, op) for op in ("WRITE", "DESCRIBE")]
    return acls


@contextlib.contextmanager
def running(directory: Path, users: Iterable[str]) -> Iterator[SecureBroker]:
    passwords = {ADMIN: f"admin-{uuid.uuid4().hex[:12]}"}
    passwords.update({u: f"{u}-{uuid.uuid4().hex[:12]}" for u in users})
    broker = SecureBroker(directory, passwords)
    try:
        broker.start(wait=float(os.environ.get("HANDOFF_KAFKA_START_WAIT", "150")))
        yield broker
    finally:
        broker.stop()
