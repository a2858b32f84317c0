"""SIGKILL the notifications service (a separate OS process) at random moments while it
sends, three times, then let it finish: every milestone is delivered, nothing recorded
as sent is sent again, and any re-send carries the identical Message-ID /
Idempotency-Key / client reference (asserted where the messages land)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from handoff_events.contracts import NotificationSent
from handoff_notifications.domain.identity import notification_id

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[4]
F = dict[str, Callable[..., Any]]
WAVES = [
    ("status_changed", "picked_up"),
    ("status_changed", "out_for_delivery"),
    ("delivered", "delivered"),
]
SHIPMENTS = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """`python -m handoff_notifications` in its own process, configured by environment."""

    def __init__(self, harness: Any, log: Path):
        self.port = _free_port()
        self.log = log
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": harness.bootstrap,
            "HANDOFF_TOPIC_PREFIX": harness.prefix,
            "HANDOFF_PARTITIONS": "3",
            "HANDOFF_HTTP_PORT": str(self.port),
            "HANDOFF_STATE_DIR": str(harness.tmp / "state"),
            "HANDOFF_CONFIG_DIR": str(REPO / "deploy" / "config"),
            "HANDOFF_RULES_FILE": str(harness.rules_file),
            "HANDOFF_SMTP_PORT": str(harness.sink.port),
            "HANDOFF_SMS_PROVIDER_URL": harness.servers[1].url,
            "HANDOFF_WEBHOOKS": json.dumps(
                {
                    "acme": {
                        "url": f"{harness.servers[0].url}/hooks/acme",
                        "key_id": "acme-it",
                        "secret": "it-secret-acme",
                    }
                }
            ),
            "HANDOFF_DISPATCH_EVERY_S": "0.1",
            "HANDOFF_LOG_JSON": "false",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "handoff_notifications"],
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, within: float = 45.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[
                    -3000:
                ]
                try:
                    if (
                        await client.get(f"http://127.0.0.1:{self.port}/health/ready")
                    ).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("service never became ready:\n" + self.log.read_text()[-3000:])

    async def kill(self) -> float:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        at = time.time()
        # waited for in a thread: the receivers in this loop keep serving meanwhile
        await asyncio.to_thread(self.proc.wait, 10)
        return at

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # the state on disk is what the test asserts
            self.proc.wait(timeout=10)


def _one_copy_per_incarnation(senders: list[str]) -> bool:
    """A process never sends twice what it recorded; a repeat must come from a later
    incarnation (the earlier one was killed before its tick recorded the send)."""
    return all(senders) and len(senders) == len(set(senders))


async def test_sigkill_while_sending_never_resends_what_was_recorded_as_sent(
    harness: Any, f: F, wait: Callable[..., Any], tmp_path: Path
) -> None:
    h = harness
    h.sink.delay_s = 0.03  # slow receivers: kills land while sends are in flight
    h.receiver.delay_s = 0.03
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    service = Service(h, tmp_path / "service.log")
    shipments = [
        f["requested"](
            f"shp_crash_{i:02d}",
            email=f"c{i}@example.com",
            phone=f"+4930123456{i}",
            locale="de-DE" if i % 2 else "en-GB",
            country="DE" if i % 2 else "GB",
        )
        for i in range(SHIPMENTS)
    ]
    for shipment in shipments:
        await h.request(shipment, "acme")
    kills: list[float] = []
    service.start()
    try:
        await service.ready()
        now = datetime.now(UTC)
        for milestone, status in WAVES:
            before = len(h.sink.messages) + len(h.receiver.deliveries)
            for shipment in shipments:
                await h.update(
                    f["update"](milestone, shipment.shipment_id, status=status, occurred_at=now),
                    "acme",
                )
            await wait(
                lambda b=before: len(h.sink.messages) + len(h.receiver.deliveries) > b,
                20,
                "sends of this wave to begin",
            )
            await asyncio.sleep(rng.uniform(0.0, 0.15))  # a random moment mid-send, not a sync
            kills.append(await service.kill())
            service.start()
            await service.ready()
        expected_mail = {
            f"<{notification_id(s.shipment_id, status, 'email', s.destination.email)}"
            "@notifications.handoff.dev>"
            for s in shipments
            for _m, status in WAVES
        }
        expected_hooks = {
            notification_id(s.shipment_id, status, "webhook", "acme")
            for s in shipments
            for _m, status in WAVES
        }
        expected_sms = {
            notification_id(s.shipment_id, status, "sms", s.destination.phone)
            for s in shipments
            for status in ("out_for_delivery", "delivered")
        }
        await wait(lambda: set(h.sink.by_message_id()) >= expected_mail, 40, "every e-mail")
        await wait(
            lambda: {d.idempotency_key for d in h.receiver.accepted()} >= expected_hooks,
            20,
            "every webhook",
        )
        await wait(
            lambda: {m.client_reference for m in h.sms.messages} >= expected_sms, 20, "every SMS"
        )
        # outcomes of the last sends are committed by the next tick: read until all are there
        outcomes = []
        for _ in range(50):
            outcomes = [o for o in await h.outcomes() if isinstance(o, NotificationSent)]
            if len(outcomes) >= len(expected_mail) + len(expected_hooks) + len(expected_sms):
                break
            await asyncio.sleep(0.2)
    finally:
        service.stop()

    context = f"seed={seed} kills={kills}"
    # every milestone delivered, and nothing that was not expected
    assert set(h.sink.by_message_id()) == expected_mail, context
    assert {d.idempotency_key for d in h.receiver.accepted()} == expected_hooks, context
    # re-sends only across a crash, with identical identity and content
    for message_id, copies in h.sink.by_message_id().items():
        senders = [str(c.message["X-Handoff-Sender-Instance"] or "") for c in copies]
        assert _one_copy_per_incarnation(senders), (message_id, senders, context)
        assert len({(c.subject, c.body()) for c in copies}) == 1
    for key in expected_hooks:
        copies = [d for d in h.receiver.accepted() if d.idempotency_key == key]
        senders = [c.headers.get("x-handoff-sender-instance", "") for c in copies]
        assert _one_copy_per_incarnation(senders), (key, senders, context)
        assert len({c.body for c in copies}) == 1
    assert all(d.verified for d in h.receiver.deliveries)
    assert set(h.sms.duplicates) <= expected_sms  # a re-sent SMS reused its client reference
    # the ledger recorded each notification as sent exactly once
    sent_ids = [o.notification_id for o in outcomes]
    assert len(sent_ids) == len(set(sent_ids)), context
    assert (
        set(sent_ids)
        == {m.strip("<>").split("@")[0] for m in expected_mail} | expected_hooks | expected_sms
    )
    print(
        f"\n{context}: mails {len(h.sink.messages)}/{len(expected_mail)}, "
        f"hooks {len(h.receiver.accepted())}/{len(expected_hooks)}, sms dup {len(h.sms.duplicates)}"
    )
