"""The tracking service's settings (environment `HANDOFF_*`), beyond what every service shares."""

from __future__ import annotations

from datetime import timedelta

from handoff_events.runtime.settings import ServiceSettings


class TrackingSettings(ServiceSettings):
    """The fold's and the queries' knobs. The ingress reads its own (webhook secrets, code
    tables) from the same environment: `handoff_tracking.ingress.settings`."""

    api_keys: str = "acme:acme-key,globex:globex-key"
    """Tenant API keys for the queries: `tenant:key,tenant2:key2` (HANDOFF_API_KEYS)."""
    stuck_after_hours: float = 48.0
    """Carrier silence after pickup that raises a `stuck` exception."""
    exception_check_every_s: float = 60.0
    """How often the fold's timer looks for stuck and late shipments."""
    kpi_metrics_every_s: float = 15.0
    """How often the KPI stage refreshes its Prometheus gauges."""
    query_page_limit: int = 100
    query_retention_days: float | None = None
    """Finished shipments (a terminal status) whose state has not changed for this many
    days are left out of every instance's query replica: the queries answer 404 for them,
    the state topic keeps them. Unset: the replica keeps every shipment, and its memory
    grows with every shipment ever created (docs/operating.md, "Sizing an instance")."""

    @property
    def stuck_after(self) -> timedelta:
        return timedelta(hours=self.stuck_after_hours)

    @property
    def query_retention(self) -> timedelta | None:
        days = self.query_retention_days
        return None if days is None else timedelta(days=days)
