"""Settings every service shares, from the environment (pydantic-settings).

Each service subclasses `ServiceSettings` for its own knobs; names are
`HANDOFF_<FIELD>` except the Kafka bootstrap, which follows the common
`KAFKA_BOOTSTRAP_SERVERS` convention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

METADATA_MAX_AGE_MS = 30_000
"""How often a long-lived Kafka client refreshes cluster metadata (`kafka_client`)."""

SERVICE_PORTS: dict[str, int] = {
    "control_tower": 8080,
    "order_intake": 8081,
    "rate_shopping": 8082,
    "carrier_allocation": 8083,
    "tracking": 8084,
    "notifications": 8085,
    "returns": 8086,
}


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HANDOFF_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "HANDOFF_KAFKA_BOOTSTRAP_SERVERS"),
    )
    topic_prefix: str = ""
    """Prefix for every topic, group and transactional id (isolated test runs, shared clusters)."""
    partitions: int = 12
    http_host: str = "127.0.0.1"
    http_port: int = 0
    """0 = the service's default port from SERVICE_PORTS."""
    http_reuse_port: bool = False
    """Bind the HTTP port with SO_REUSEPORT, so several processes of one service can
    serve it side by side (e.g. the tracking webhook edge, one process per core)."""
    state_dir: Path = Path(".run/state")
    log_level: str = "INFO"
    log_json: bool = True
    instance_id: str = ""
    """Distinguishes instances in logs and client ids; defaults to the host name and pid."""
    max_batch_records: int = 2000
    """Records per poll, and the queue length at which a task's partitions pause. One
    batch (one transaction) takes up to 4x this across the instance's tasks, shared
    fairly among those with records waiting."""
    changelog_batch_bytes: int = 128 * 1024
    """Value bytes per record batch a stream stage writes to its changelog (and state
    topic) partition. Right after a cold start a state is unpacked from its batch on its
    first read, so this bounds that read's cost: ~250 us CPU at 128 KiB (~25 states),
    ~650 us at 512 KiB, for ~15% more bytes on disk (zstd sees fewer states at a time).
    See docs/decisions/0008."""
    store_unpacked_max: int = 50_000
    """How many states one stream stage of an instance holds unpacked (decoded, ~12 KB
    each for a tracking state) across its stores. Past it, the least recently written
    or read are packed back into compressed record batches as the changelog holds them
    (~0.3-0.6 KB each) and decoded again when next read, so memory follows the
    shipments in flight, not every shipment the instance has seen. 0: no bound.
    See docs/decisions/0008."""
    poll_timeout_ms: int = 50
    """How long a stage's poll loop waits for fetched records before it looks at lag,
    failures and stopping again (a local wait: no request to the broker)."""
    fetch_max_wait_ms: int = 500
    """How long the broker may hold a consumer's fetch while none of its partitions has
    new records. A fetch returns as soon as any of them has some, so this costs no
    latency; it sets how often an idle consumer asks again. At 50 ms the order
    pipeline's four services and the broker kept 0.78 of a core busy with no orders,
    at 500 ms 0.26 (docs/benchmarks.md, "Ninth round"). Kafka's own default is 500 ms."""
    punctuate_interval_s: float = 1.0
    shutdown_timeout_s: float = 20.0
    session_timeout_ms: int = 10_000
    """How long the group waits for a silent instance (e.g. after SIGKILL) before its
    partitions move; the broker's floor is group.min.session.timeout.ms (6 s by default)."""
    stall_timeout_s: float = 120.0
    """A stage with records waiting and no progress for this long fails (and is restarted)."""
    txn_retry_backoff_ms: float = 2.0
    """Wait before retrying a transaction's first AddPartitionsToTxn that the coordinator
    answered CONCURRENT_TRANSACTIONS (it is still writing the previous commit's markers).
    aiokafka hard-codes 20 ms, which put 20+ ms into every transaction (docs/decisions/0002)."""
    transaction_timeout_ms: int = 10_000
    """How long the broker keeps a stream stage's transaction open before aborting it.
    An instance killed mid-transaction holds back its output partitions (read_committed
    readers wait at the open transaction) until this expires, unless it restarts under
    the same HANDOFF_INSTANCE_ID; Kafka Streams uses 10 s for the same reason. A batch
    (handling plus commit) must finish well inside it (docs/decisions/0002)."""
    kafka_compression_type: Literal["none", "lz4", "zstd", "gzip", "snappy"] = "zstd"
    """Compression of every batch the stream stages write (outputs, states, changelogs,
    DLQ). Events and states are JSON with the same keys record after record; compressed
    batches cost the broker, the network and every reader a fraction of the bytes. The
    HTTP edges' small batches stay uncompressed. Readers decompress transparently (every
    Java client since 2.1 and librdkafka read zstd; aiokafka needs its `zstd` extra).
    See docs/decisions/0007-compressed-batches.md."""
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    config_dir: Path = Path("deploy/config")
    """Where data files live (carrier catalogue, policies, code tables, locations)."""

    def port_for(self, service: str) -> int:
        return self.http_port or SERVICE_PORTS[service]

    def kafka_compression(self) -> str | None:
        """aiokafka's `compression_type` argument."""
        return None if self.kafka_compression_type == "none" else self.kafka_compression_type

    def kafka_client(self) -> dict[str, object]:
        """aiokafka arguments every long-lived client takes: the security settings, and a
        metadata refresh every 30 s. With aiokafka's default (5 min) a client keeps asking
        a partition's old leader that long after a broker fault: a paused broker stalled
        the HTTP tender relay for five minutes in the chaos runs."""
        return {**self.kafka_security(), "metadata_max_age_ms": METADATA_MAX_AGE_MS}

    def kafka_security(self) -> dict[str, object]:
        """aiokafka client arguments for SASL/SCRAM when configured."""
        if self.kafka_sasl_mechanism is None:
            return {"security_protocol": self.kafka_security_protocol}
        return {
            "security_protocol": self.kafka_security_protocol,
            "sasl_mechanism": self.kafka_sasl_mechanism,
            "sasl_plain_username": self.kafka_sasl_username,
            "sasl_plain_password": self.kafka_sasl_password,
        }
