"""Order intake's settings (environment, `HANDOFF_` prefix) on top of the shared ones."""

from __future__ import annotations

from pathlib import Path

from handoff_events.runtime.settings import ServiceSettings

DEV_API_KEYS = "acme:acme-key,globex:globex-key"


class OrderIntakeSettings(ServiceSettings):
    api_keys: str = DEV_API_KEYS
    """`HANDOFF_API_KEYS`: `tenant:key,...`. The default is for local development only."""
    locations_file: Path | None = None
    """`HANDOFF_LOCATIONS_FILE`; default `<config_dir>/locations.toml`."""

    def locations_path(self) -> Path:
        return self.locations_file or self.config_dir / "locations.toml"
