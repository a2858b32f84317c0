"""The control tower's settings (environment `HANDOFF_*`), beyond what every service shares."""

from __future__ import annotations

from handoff_events.runtime.settings import SERVICE_PORTS, ServiceSettings

from handoff_control_tower.domain.services import parse_service_urls

SERVICE = "control_tower"


class ControlTowerSettings(ServiceSettings):
    service_urls: str = ""
    """Where to scrape `/metrics`: `name=http://host:port,…` (HANDOFF_SERVICE_URLS).
    Empty: every service on its default local port (SERVICE_PORTS)."""
    scrape_every_s: float = 2.0
    scrape_timeout_s: float = 1.5
    series_points: int = 150
    """Throughput/lag points kept per service (150 × 2 s = 5 minutes)."""
    exception_queue_limit: int = 200
    """Rows of the exception queue the page receives (the count is always complete)."""

    def scrape_targets(self) -> dict[str, str]:
        defaults = {
            name: f"http://127.0.0.1:{port}"
            for name, port in SERVICE_PORTS.items()
            if name != SERVICE
        }
        return parse_service_urls(self.service_urls, defaults)
