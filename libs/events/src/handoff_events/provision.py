"""Provision the topic catalogue on a running cluster, idempotently.

Creates missing topics with the catalogue's partitions and configuration,
re-applies configuration to existing ones, and refuses (without changing
anything) a topic whose partition count differs: changing it would move keys
to other partitions and break co-partitioning, which needs a migration, not a
provisioning run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from handoff_events.topics import CATALOGUE, DEFAULT_PARTITIONS, TopicSpec, partitions_for

TOPIC_ALREADY_EXISTS = 36


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatched


def _min_isr(replication_factor: int) -> int:
    return 2 if replication_factor >= 3 else 1


async def provision(
    bootstrap: str,
    *,
    prefix: str = "",
    partitions: int = DEFAULT_PARTITIONS,
    replication_factor: int = 1,
    topics: Iterable[TopicSpec] = CATALOGUE,
    client_args: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    timeout_s: float = 60.0,
) -> ProvisionReport:
    say = progress or (lambda _msg: None)
    min_isr = _min_isr(replication_factor)
    wanted = {prefix + t.name: t for t in topics}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(client_args or {}))
    await admin.start()
    report = ProvisionReport()
    try:
        existing = {t["topic"]: t for t in await admin.describe_topics(list(wanted))}
        missing = [
            name for name in wanted if name not in existing or existing[name]["error_code"] != 0
        ]
        if missing:
            new = [
                NewTopic(
                    name,
                    partitions_for(wanted[name], partitions),
                    replication_factor,
                    topic_configs=wanted[name].config(min_isr),
                )
                for name in missing
            ]
            response = await admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
            for name, code, *_ in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"creating topic {name} failed with Kafka error {code}")
                report.created.append(name)
                say(f"created {name}")
        present = [n for n in wanted if n not in missing]
        for name in present:
            have = len(existing[name]["partitions"])
            want = partitions_for(wanted[name], partitions)
            if have != want:
                report.mismatched.append(f"{name}: has {have} partitions, catalogue says {want}")
        if present:
            resources = [
                ConfigResource(ConfigResourceType.TOPIC, n, wanted[n].config(min_isr))
                for n in present
            ]
            await admin.alter_configs(resources)
            report.updated.extend(present)
            say(f"configuration re-applied to {len(present)} existing topics")
        await _wait_for_leaders(admin, list(wanted), timeout_s)
    finally:
        await admin.close()
    return report


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float) -> None:
    """New topics take a moment to elect leaders; producers racing them get errors."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        pending = [
            t["topic"]
            for t in described
            if t["error_code"] != 0 or any(p["leader"] < 0 for p in t["partitions"])
        ]
        if not pending:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"topics without leaders after {timeout_s}s: {pending[:5]}")
        await asyncio.sleep(0.2)
