"""Wiring: data files, the KPI follower, the two stream stages and the HTTP tender relay."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from handoff_events.runtime.app import ServiceApp

from handoff_carrier_allocation.adapters.config import (
    CapacityLimits,
    PolicyBook,
    TenderRoutes,
    load_capacity,
    load_policies,
    load_tendering,
)
from handoff_carrier_allocation.adapters.http_tenders import HttpTenderRelay
from handoff_carrier_allocation.adapters.kpis import KpiFollower, KpiTable
from handoff_carrier_allocation.domain.allocation import Rules
from handoff_carrier_allocation.domain.policy import Scorecard
from handoff_carrier_allocation.handlers import SERVICE, BucketsStage, ShipmentsStage
from handoff_carrier_allocation.settings import AllocationSettings


@dataclass(frozen=True)
class AllocationConfig:
    policies: PolicyBook
    capacity: CapacityLimits
    tendering: TenderRoutes


def load_config(settings: AllocationSettings) -> AllocationConfig:
    return AllocationConfig(
        policies=load_policies(settings.allocation_file(settings.policies_file, "policies.toml")),
        capacity=load_capacity(settings.allocation_file(settings.capacity_file, "capacity.toml")),
        tendering=load_tendering(
            settings.allocation_file(settings.tendering_file, "tendering.toml")
        ),
    )


def build_app(
    settings: AllocationSettings,
    config: AllocationConfig | None = None,
    *,
    scorecards: Callable[[], Mapping[str, Scorecard]] | None = None,
    http_client: httpx.AsyncClient | None = None,
    clock: Callable[[], datetime] | None = None,
) -> ServiceApp:
    """The carrier allocation service. Tests pass a config, fixed scorecards, a fake HTTP client."""
    cfg = config or load_config(settings)
    on_start = []
    on_stop = []
    if scorecards is None:
        table = KpiTable(cfg.policies.scorecard_defaults)
        scorecards = table.scorecards
        if settings.follow_kpis:
            follower = KpiFollower(settings, table, settings.kpi_catch_up_timeout_s)
            on_start.append(follower.start)
            on_stop.append(follower.stop)
    if settings.http_tenders and cfg.tendering.http:
        relay = HttpTenderRelay(
            settings,
            cfg.tendering,
            client=http_client,
            clock=clock,
            max_in_flight=settings.http_tender_concurrency,
        )
        on_start.append(relay.start)
        on_stop.insert(0, relay.stop)
    shipments = ShipmentsStage(
        policies=cfg.policies,
        scorecards=scorecards,
        rules=Rules(tender_timeout=timedelta(seconds=settings.tender_timeout_s)),
    )
    buckets = BucketsStage(limits=cfg.capacity)
    return ServiceApp(
        SERVICE,
        settings,
        processors=[shipments.processor(), buckets.processor()],
        on_start=on_start,
        on_stop=on_stop,
        clock=clock,
    )
