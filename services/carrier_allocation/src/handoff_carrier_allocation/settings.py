"""Carrier allocation's settings (environment `HANDOFF_*`, see ServiceSettings)."""

from __future__ import annotations

from pathlib import Path

from handoff_events.runtime.settings import ServiceSettings


class AllocationSettings(ServiceSettings):
    tender_timeout_s: float = 30.0
    """How long a carrier has to answer a tender (`respond_by` = now + this)."""
    policies_file: Path | None = None
    """Default: <config_dir>/allocation/policies.toml."""
    capacity_file: Path | None = None
    """Default: <config_dir>/allocation/capacity.toml."""
    tendering_file: Path | None = None
    """Default: <config_dir>/allocation/tendering.toml."""
    follow_kpis: bool = True
    """Read tracking's KPI snapshots for scorecards (off: documented defaults only)."""
    kpi_catch_up_timeout_s: float = 15.0
    """How long start-up waits for the KPI table before ranking with what it has."""
    http_tenders: bool = True
    """Run the HTTP tender relay for carriers configured with tender_via = "http"."""
    http_tender_concurrency: int = 16
    """Most tenders the relay POSTs at once (and connections it keeps alive)."""

    def allocation_file(self, explicit: Path | None, name: str) -> Path:
        return explicit if explicit is not None else self.config_dir / "allocation" / name
