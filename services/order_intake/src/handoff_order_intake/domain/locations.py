"""The origin location catalogue as plain values: where shipments may leave from.

The catalogue is loaded from `deploy/config/locations.toml` by
`adapters.location_file`; this module only holds the validated values and the
lookups the validator needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from handoff_events.contracts import Origin

LocationKind = Literal["warehouse", "store", "micro_fulfilment", "return_centre"]
LOCATION_KINDS: tuple[LocationKind, ...] = (
    "warehouse",
    "store",
    "micro_fulfilment",
    "return_centre",
)
OUTBOUND_KINDS: frozenset[str] = frozenset({"warehouse", "store", "micro_fulfilment"})
"""Kinds that hand parcels to carriers for customer deliveries; return centres only receive."""


@dataclass(frozen=True, slots=True)
class OriginLocation:
    """One catalogue entry: a site Handoff's tenants ship from (or return to)."""

    location_id: str
    name: str
    kind: LocationKind
    time_zone: str
    cutoff_local: str
    """`HH:MM` local time: parcels handed over later leave the next business day."""
    line1: str
    postal_code: str
    city: str
    country: str
    cold_chain: bool = False
    """The site can hand over temperature-controlled parcels."""

    @property
    def ships_outbound(self) -> bool:
        return self.kind in OUTBOUND_KINDS

    def as_origin(self) -> Origin:
        return Origin(
            location_id=self.location_id,
            kind=self.kind,
            postal_code=self.postal_code,
            city=self.city,
            country=self.country,
            time_zone=self.time_zone,
            cutoff_local=self.cutoff_local,
        )


class LocationCatalogue(Mapping[str, OriginLocation]):
    """Read-only lookup of locations by id."""

    def __init__(self, locations: Iterable[OriginLocation]):
        self._by_id = {loc.location_id: loc for loc in locations}

    def __getitem__(self, location_id: str) -> OriginLocation:
        return self._by_id[location_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)
