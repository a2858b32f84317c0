"""Helpers of the returns end-to-end test: the services as processes, a carrier the test plays
by hand, and a marketplace's view of the public topics.

The processes are started with `make up`'s own machinery (`handoff_sim.up`: the process
list, `launch`, `wait_ready`, `stop_processes`) on a free block of ports and a unique topic
prefix, so the test runs the services exactly as `make up` does, minus the simulated carriers
and marketplaces: the test is the carrier and the marketplace.
"""

from __future__ import annotations

import dataclasses
import os
import random
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
from aiokafka.structs import ConsumerRecord
from handoff_events.contracts import CarrierTrackingEvent, Event, ShipmentUpdate
from handoff_events.envelope import Envelope
from handoff_events.runtime.settings import SERVICE_PORTS, ServiceSettings
from handoff_events.stream.follow import TopicFollower
from handoff_events.values import Location
from handoff_sim import up
from handoff_sim.world import CarrierCodes, load_all_carrier_codes
from handoff_tracking.ingress.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_header,
)

from tests.support.streams import until

REPO = Path(__file__).resolve().parents[2]
CARRIERS = ("nordpost", "swift", "velo", "gigly")


# ---- processes ----------------------------------------------------------------------------


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands out for outgoing connections (32768 by default)."""
    try:
        low = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
        return int(low)
    except (OSError, IndexError, ValueError):
        return 32768


def free_port_offset(ports: Iterable[int]) -> int:
    """An offset moving every given base port onto a free one (others may run `make up`).

    The block stays below the ephemeral range: a port there can be taken by any
    outgoing connection (a Kafka client's, say) between this check and the service's
    bind, which made a service fail with EADDRINUSE at start-up now and then."""
    wanted = list(ports)
    ceiling = _ephemeral_floor() - max(wanted) - 1
    rng = random.Random()
    for _ in range(200):
        offset = rng.randrange(1_000, max(1_010, ceiling), 10)
        if all(_free(p + offset) for p in wanted):
            return offset
    raise RuntimeError("no free block of ports")


def carrier_secrets(prefix: str) -> dict[str, str]:
    """Webhook secrets of this run (not the development defaults: the test signs with these)."""
    return {carrier: f"e2e-{carrier}-{prefix}" for carrier in CARRIERS}


def world_specs(
    opts: up.UpOptions, with_notifications: bool, secrets: dict[str, str]
) -> list[up.ProcessSpec]:
    """`make up`'s process list without the simulated carriers and marketplaces.

    The tender responder accepts every tender of every carrier (deterministic: no RNG decides),
    tracking checks webhook signatures against this run's secrets, and notifications (with
    the development servers it talks to) only when asked for.
    """
    dev_for_notifications = {"smtp_sink", "sms_provider", "webhook_receiver"}
    services = {"order_intake", "rate_shopping", "carrier_allocation", "tracking", "returns"}
    if with_notifications:
        services.add("notifications")
    secrets_env = ",".join(f"{c}:{s}" for c, s in secrets.items())
    out = []
    for spec in up.processes(opts):
        if spec.name == "tender_responder":
            args: list[str] = ["--seed", str(opts.seed)]
            for carrier in CARRIERS:
                args += ["--carrier", f"{carrier}:accept=1,silent=0"]
            args += ["--http-port", str(opts.port(up.DEV_PORTS["tender_http"]))]
            out.append(dataclasses.replace(spec, args=tuple(args)))
        elif spec.name == "tracking":
            env = {**spec.env, "HANDOFF_CARRIER_SECRETS": secrets_env}
            out.append(dataclasses.replace(spec, env=env))
        elif spec.name in services or (with_notifications and spec.name in dev_for_notifications):
            out.append(spec)
    return out


def base_ports() -> list[int]:
    return [*up.DEV_PORTS.values(), *(SERVICE_PORTS[s] for s in up.SERVICES)]


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment holds `marker` (the run's topic prefix)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != "Z":
            found.append(int(entry.name))
    return found


def tails(running: Sequence[up.Running], lines: int = 15) -> str:
    return "\n".join(f"--- {r.spec.name}\n{up.tail(r.log_path, lines)}" for r in running)


# ---- the carrier the test plays -----------------------------------------------------------


class HandPlayedCarrier:
    """Posts scans to tracking's signed webhook in each carrier's own codes (its code table)."""

    def __init__(self, tracking_url: str, secrets: dict[str, str]):
        self.tracking_url = tracking_url
        self.secrets = secrets
        self.tables: dict[str, CarrierCodes] = load_all_carrier_codes(
            REPO / "deploy" / "config" / "carrier-codes"
        )
        self.sent: list[CarrierTrackingEvent] = []

    def code_for(self, carrier: str, status: str) -> str:
        """The carrier's usual code for a canonical status (the first in its table)."""
        for row in self.tables[carrier].codes:
            if row.status == status:
                return row.code
        raise AssertionError(f"{carrier}'s code table has no code for {status!r}")

    async def scan(
        self,
        client: httpx.AsyncClient,
        carrier: str,
        tracking_number: str,
        status: str,
        occurred_at: datetime,
        location: Location | None = None,
    ) -> CarrierTrackingEvent:
        code = self.code_for(carrier, status)
        scan = CarrierTrackingEvent(
            carrier=carrier,
            tracking_number=tracking_number,
            event_id=f"{tracking_number}-{code}-{status}",
            code=code,
            occurred_at=occurred_at,
            location=location,
        )
        body = msgspec.json.encode([scan])
        stamp = int(time.time())
        response = await client.post(
            f"{self.tracking_url}/v1/carriers/{carrier}/events",
            content=body,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(stamp),
                SIGNATURE_HEADER: signature_header([self.secrets[carrier]], stamp, body),
            },
        )
        assert response.status_code == 202, (carrier, status, response.text)
        self.sent.append(scan)
        return scan


# ---- the marketplace's view ---------------------------------------------------------------


class TopicLog:
    """Every decodable event of one catalogue topic (read_committed, from the beginning)."""

    def __init__(self, settings: ServiceSettings, topic: str):
        self.events: list[tuple[str, Event]] = []
        self.follower = TopicFollower(settings, topic, on_event=self._on)

    def _on(self, env: Envelope[Any], record: ConsumerRecord) -> None:
        key = record.key.decode() if record.key else ""
        self.events.append((key, env.data))

    def of(self, cls: type[Any], key: str | None = None) -> list[Any]:
        return [e for k, e in self.events if isinstance(e, cls) and (key is None or k == key)]

    def updates(self, shipment_id: str, milestone: str | None = None) -> list[ShipmentUpdate]:
        return [
            u
            for u in self.of(ShipmentUpdate, key=shipment_id)
            if milestone is None or u.milestone == milestone
        ]

    async def wait_for(
        self,
        predicate: Callable[[], object],
        what: str,
        timeout: float,
        diagnose: Callable[[], str],
    ) -> None:
        """Until `predicate()` is truthy; the failure names what was seen (and the logs)."""
        try:
            await until(lambda: bool(predicate()), timeout=timeout, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{diagnose()}") from None
