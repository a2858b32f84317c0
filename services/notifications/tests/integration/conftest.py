"""Integration harness: isolated topics on the real broker, the real local SMTP sink, the
webhook receiver and the fake SMS provider on random ports, and helpers to publish
shipment events and read outcomes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from handoff_events import topics
from handoff_events.contracts import (
    UPDATE_TYPES,
    NotificationDeadLettered,
    NotificationFailed,
    NotificationSent,
    ShipmentRequested,
    ShipmentUpdate,
)
from handoff_events.envelope import new_envelope
from handoff_events.provision import provision
from handoff_events.runtime.publisher import EventPublisher
from handoff_events.topics import BY_NAME
from handoff_notifications.handlers import LEDGER_CHANGELOG
from handoff_notifications.settings import NotificationSettings, WebhookEndpointSettings
from handoff_sim.sms_provider import FakeSmsProvider
from handoff_sim.smtp_sink import SmtpSink
from handoff_sim.webhook_receiver import RunningServer, WebhookReceiver, start_http

from tests.support.kafka import read_all

CONFIG = Path(__file__).resolve().parents[4] / "deploy" / "config" / "notifications"
TOPICS = [topics.UPDATES, topics.INTAKE_SHIPMENTS, topics.NOTIFICATION_OUTCOMES, LEDGER_CHANGELOG]
SECRETS = {"acme": "it-secret-acme", "globex": "it-secret-globex"}


def quiet_hours_off_rules(directory: Path) -> Path:
    """The shipped rules with quiet hours off: tests run at any hour of the real clock
    (quiet hours themselves are unit-tested with an injected clock)."""
    text = (CONFIG / "rules.toml").read_text(encoding="utf-8")
    for window in ('"21:00-08:00"', '"22:00-07:00"'):
        assert window in text
        text = text.replace(f"quiet_hours = {window}", 'quiet_hours = "off"')
    path = directory / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Harness:
    bootstrap: str
    prefix: str
    tmp: Path
    sink: SmtpSink
    receiver: WebhookReceiver
    sms: FakeSmsProvider
    servers: list[RunningServer]
    publisher: EventPublisher | None = None
    rules_file: Path = field(default_factory=Path)

    def settings(self, **overrides: Any) -> NotificationSettings:
        base: dict[str, Any] = {
            "kafka_bootstrap_servers": self.bootstrap,
            "topic_prefix": self.prefix,
            "partitions": 3,
            "state_dir": self.tmp / "state",
            "rules_file": self.rules_file,
            "smtp_port": self.sink.port,
            "sms_provider_url": self.servers[1].url,
            "webhooks": {
                tenant: WebhookEndpointSettings(
                    url=f"{self.servers[0].url}/hooks/{tenant}",
                    key_id=f"{tenant}-it",
                    secret=secret,  # type: ignore[arg-type]
                )
                for tenant, secret in SECRETS.items()
            },
            "dispatch_every_s": 0.1,
            "poll_timeout_ms": 50,
            "log_json": False,
        }
        base.update(overrides)
        return NotificationSettings(**base)

    async def request(self, shipment: ShipmentRequested, tenant: str) -> None:
        assert self.publisher is not None
        env = new_envelope(
            shipment,
            source="handoff/order_intake",
            tenant_id=tenant,
            caused_by=shipment.shipment_id,
        )
        await self.publisher.publish(topics.INTAKE_SHIPMENTS, shipment.shipment_id, env)

    async def update(self, update: ShipmentUpdate, tenant: str) -> None:
        assert self.publisher is not None
        env = new_envelope(
            update,
            source="handoff/tracking",
            tenant_id=tenant,
            type=UPDATE_TYPES[update.milestone],
            caused_by=update.update_id,
            time=update.occurred_at,
        )
        await self.publisher.publish(topics.UPDATES, update.shipment_id, env)

    async def outcomes(
        self,
    ) -> list[NotificationSent | NotificationFailed | NotificationDeadLettered]:
        """Every committed outcome event (read_committed, to the end)."""
        out: list[Any] = []
        for _p, _o, _k, value in await read_all(
            self.bootstrap, self.prefix + topics.NOTIFICATION_OUTCOMES
        ):
            assert value is not None
            # binary mode: the headers are not returned by read_all; decode the data by shape
            doc = msgspec.json.decode(value)
            cls = (
                NotificationSent
                if "sent_at" in doc
                else NotificationDeadLettered
                if "dead_lettered_at" in doc
                else NotificationFailed
            )
            out.append(msgspec.json.decode(value, type=cls))
        return out


async def wait_until(
    condition: Callable[[], bool], within: float, what: str, poll: float = 0.05
) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(poll)


@pytest.fixture
async def harness(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> AsyncIterator[Harness]:
    prefix = f"{unique_name}."
    wanted = [BY_NAME[t] for t in TOPICS] + [
        BY_NAME[BY_NAME[t].dlq] for t in (topics.UPDATES, topics.INTAKE_SHIPMENTS)
    ]
    await provision(
        kafka_bootstrap, prefix=prefix, partitions=3, replication_factor=1, topics=wanted
    )
    sink = SmtpSink(tmp_path / "mail")
    await sink.start()
    receiver = WebhookReceiver(keys={f"{t}-it": s.encode() for t, s in SECRETS.items()})
    sms = FakeSmsProvider()
    servers = [await start_http(receiver.app()), await start_http(sms.app())]
    h = Harness(kafka_bootstrap, prefix, tmp_path, sink, receiver, sms, servers)
    h.rules_file = quiet_hours_off_rules(tmp_path)
    h.publisher = EventPublisher(h.settings(), client_id=f"{unique_name}-test")
    await h.publisher.start()
    try:
        yield h
    finally:
        await h.publisher.stop()
        for server in servers:
            await server.stop()
        await sink.stop()


@pytest.fixture
def wait() -> Callable[..., Any]:
    return wait_until
