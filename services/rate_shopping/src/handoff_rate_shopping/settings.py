"""Rate shopping's settings (environment `HANDOFF_…`, on top of the shared ServiceSettings)."""

from __future__ import annotations

from pathlib import Path

from handoff_events.runtime.settings import ServiceSettings


class RateShoppingSettings(ServiceSettings):
    carriers_dir: Path | None = None
    """The carrier catalogue directory; default `<config_dir>/carriers`."""
    history_min_observations: int = 20
    """Observed deliveries a lane needs before quotes use them instead of advertised days."""
    history_max_per_lane: int = 500
    history_catch_up_timeout_s: float = 30.0
    follow_history: bool = True
    """Read delivered updates for observed transit times (off: advertised days only)."""
    api_keys: str = ""
    """`tenant:key,…` for `POST /v1/quotes`."""

    @property
    def catalogue_dir(self) -> Path:
        return self.carriers_dir or self.config_dir / "carriers"
