"""Settings of the carrier ingress (webhook secrets, limits, code tables), from the environment.

`HANDOFF_CARRIER_SECRETS` lists each carrier's webhook secrets:
`nordpost:new|old,swift:secret`. Several secrets for one carrier (separated by
`|`) are all accepted: that is how a secret is rotated without downtime. The
defaults are development secrets and must be overridden in production.
"""

from __future__ import annotations

from pathlib import Path

from handoff_events.runtime.settings import ServiceSettings

DEV_CARRIER_SECRETS = (
    "nordpost:dev-nordpost-secret,swift:dev-swift-secret,"
    "velo:dev-velo-secret,gigly:dev-gigly-secret"
)


class TrackingIngressSettings(ServiceSettings):
    carrier_secrets: str = DEV_CARRIER_SECRETS
    """`carrier:secret[|older_secret…],carrier2:…` (HANDOFF_CARRIER_SECRETS)."""
    webhook_replay_window_s: int = 300
    webhook_max_body_bytes: int = 1_048_576
    webhook_max_events: int = 500
    join_max_held_events: int = 500
    """Scans held per tracking number while its shipment is unknown; more go to the DLQ."""
    carrier_codes_dir: Path | None = None
    """Defaults to `<config_dir>/carrier-codes`."""

    def code_tables_path(self) -> Path:
        return self.carrier_codes_dir or self.config_dir / "carrier-codes"


def parse_carrier_secrets(spec: str) -> dict[str, tuple[str, ...]]:
    """`nordpost:new|old,swift:s` → {"nordpost": ("new", "old"), "swift": ("s",)}."""
    secrets: dict[str, tuple[str, ...]] = {}
    entries = filter(None, (part.strip() for part in spec.split(",")))
    for number, item in enumerate(entries, start=1):
        carrier, _, values = item.partition(":")
        carrier = carrier.strip()
        keys = tuple(v for v in (s.strip() for s in values.split("|")) if v)
        if not carrier or not keys:
            # Never echo the entry: it holds a secret.
            raise ValueError(f"carrier secret entry #{number} is not carrier:secret[|old]")
        if carrier in secrets:
            raise ValueError(f"carrier {carrier!r} is listed twice in the carrier secrets")
        secrets[carrier] = keys
    return secrets


def ingress_settings(settings: ServiceSettings) -> TrackingIngressSettings:
    """The ingress view of any service settings: fields it lacks come from the environment."""
    if isinstance(settings, TrackingIngressSettings):
        return settings
    return TrackingIngressSettings(**settings.model_dump())
