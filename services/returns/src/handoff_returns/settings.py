"""The returns service's settings (environment, `HANDOFF_` prefix)."""

from __future__ import annotations

from pathlib import Path

from handoff_events.runtime.settings import ServiceSettings


class ReturnsSettings(ServiceSettings):
    api_keys: str = "acme:acme-key,globex:globex-key"
    """`HANDOFF_API_KEYS`: `tenant:key,...` accepted by `POST /v1/returns`."""
    policies_file: Path | None = None
    """Tenant return policies; default `<config_dir>/returns/policies.toml`."""
    locations_file: Path | None = None
    """The location catalogue (return centres); default `<config_dir>/locations.toml`."""
    expiry_check_interval_s: float = 30.0
    """How often unused return labels are checked for expiry."""

    def policies_path(self) -> Path:
        return self.policies_file or self.config_dir / "returns" / "policies.toml"

    def locations_path(self) -> Path:
        return self.locations_file or self.config_dir / "locations.toml"
