"""The tracking service's carrier ingress: the signed webhook, code normalisation and the join.

`build_ingress(settings)` returns the join stage (a `StatefulProcessor`) and the
webhook route, for `bootstrap.py` to add to the tracking `ServiceApp`.
`build_ingress_parts` returns the same plus the ownership follower's
start/stop hooks (the webhook also starts the follower lazily on its first
request, so passing the hooks to `ServiceApp(on_start=…, on_stop=…)` is
optional but makes the first request fast and shutdown clean).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.api import StatefulProcessor
from starlette.routing import BaseRoute

from handoff_tracking.ingress.code_tables import load_code_tables
from handoff_tracking.ingress.join import JoinRow, build_join
from handoff_tracking.ingress.normalise import CodeTable
from handoff_tracking.ingress.openapi import INGRESS_OPERATIONS
from handoff_tracking.ingress.ownership import OwnershipFollower, OwnershipIndex
from handoff_tracking.ingress.settings import (
    TrackingIngressSettings,
    ingress_settings,
    parse_carrier_secrets,
)
from handoff_tracking.ingress.webhook import CarrierWebhook

__all__ = [
    "INGRESS_OPERATIONS",
    "Ingress",
    "TrackingIngressSettings",
    "build_ingress",
    "build_ingress_parts",
]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Ingress:
    join: StatefulProcessor[JoinRow]
    webhook: CarrierWebhook
    tables: dict[str, CodeTable]

    @property
    def ownership(self) -> OwnershipFollower:
        return self.webhook.ownership

    @property
    def routes(self) -> list[BaseRoute]:
        return [self.webhook.route()]

    async def on_start(self) -> None:
        await self.ownership.start()

    async def on_stop(self) -> None:
        await self.ownership.stop()


def build_ingress_parts(
    settings: TrackingIngressSettings | ServiceSettings,
    clock: Callable[[], datetime] | None = None,
) -> Ingress:
    """Load and validate the code tables and secrets, then build the join stage and webhook."""
    config = ingress_settings(settings)
    tables = load_code_tables(config.code_tables_path())
    webhook = CarrierWebhook(
        tables=tables,
        secrets=parse_carrier_secrets(config.carrier_secrets),
        ownership=OwnershipFollower(config, OwnershipIndex()),
        clock=clock or _utcnow,
        replay_window=timedelta(seconds=config.webhook_replay_window_s),
        max_body_bytes=config.webhook_max_body_bytes,
        max_events=config.webhook_max_events,
    )
    join = build_join(tables, partitions=config.partitions, max_held=config.join_max_held_events)
    return Ingress(join=join, webhook=webhook, tables=tables)


def build_ingress(
    settings: TrackingIngressSettings | ServiceSettings,
    clock: Callable[[], datetime] | None = None,
) -> tuple[list[StatefulProcessor[Any]], list[BaseRoute]]:
    """The join stage and the webhook route, wired for the tracking `ServiceApp`."""
    parts = build_ingress_parts(settings, clock)
    return [parts.join], parts.routes
