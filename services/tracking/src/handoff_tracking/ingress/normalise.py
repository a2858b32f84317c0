"""Carrier code normalisation: per-carrier code tables and the mapping to canonical statuses.

Pure: a code table is a plain value built from an already-parsed TOML document
(`parse_code_table`), and `normalise`/`observe` are functions of their
arguments only. Reading the files is `code_tables.load_code_tables`'s job.

A table maps each of a carrier's scan codes to a canonical status and,
optionally, a sub-status from `SUB_STATUSES` (the reason vocabulary documented
in docs/integrating-carriers.md). A code the table does not know becomes the
status `unknown` with `unknown_code=True`: flagged, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, get_args

from handoff_events.contracts import CanonicalStatus, CarrierTrackingEvent, TrackingObserved
from handoff_events.contracts.tracking import SUB_STATUSES, ObservedStatus

CARRIER_STATUSES: Final[frozenset[str]] = frozenset(
    {
        "allocated",
        "picked_up",
        "in_transit",
        "out_for_delivery",
        "delivery_attempt_failed",
        "available_for_pickup",
        "delivered",
        "exception",
        "returning_to_sender",
        "returned_to_sender",
    }
)
"""The canonical statuses a carrier scan may report. The others (requested, quoted,
rejected, allocation_failed, cancelled) are Handoff's own decisions, never a carrier's."""

_CANONICAL: Final[frozenset[str]] = frozenset(get_args(CanonicalStatus))
_CARRIER_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_TABLE_FIELDS: Final = frozenset(
    {"carrier", "name", "kind", "tracking_number_pattern", "example_tracking_number", "codes"}
)
_CODE_FIELDS: Final = frozenset({"status", "sub_status", "description"})


class CodeTableError(ValueError):
    """A code table that cannot be used; names the file, the entry and the field."""

    def __init__(self, source: str, entry: str, field: str, message: str):
        super().__init__(f"{source}: {entry}: {field}: {message}")
        self.source = source
        self.entry = entry
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class CodeMapping:
    """What one carrier code means in Handoff's vocabulary."""

    status: CanonicalStatus
    sub_status: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class CodeTable:
    """One carrier's vocabulary: its scan codes and the shape of its tracking numbers."""

    carrier: str
    name: str
    tracking_number_pattern: re.Pattern[str]
    codes: Mapping[str, CodeMapping] = field(default_factory=dict)
    """Keyed by the code folded with `code_key` (carriers are inconsistent about case)."""
    kind: str = ""
    example_tracking_number: str | None = None

    def lookup(self, code: str) -> CodeMapping | None:
        return self.codes.get(code_key(code))

    def owns_format(self, tracking_number: str) -> bool:
        """Whether the tracking number has this carrier's format."""
        return self.tracking_number_pattern.fullmatch(tracking_number) is not None


@dataclass(frozen=True, slots=True)
class Normalised:
    status: ObservedStatus
    sub_status: str | None = None
    description: str | None = None
    unknown_code: bool = False


def code_key(code: str) -> str:
    """Codes match without regard to surrounding blanks or case (`ofd` is `OFD`)."""
    return code.strip().casefold()


def _text(doc: Mapping[str, Any], name: str, source: str, entry: str, required: bool) -> str | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise CodeTableError(source, entry, name, "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise CodeTableError(source, entry, name, f"must be a non-empty string, got {value!r}")
    return value


def _mapping(code: str, doc: Any, source: str) -> CodeMapping:
    entry = f"codes.{code!r}"
    if not isinstance(doc, Mapping):
        raise CodeTableError(source, entry, "status", "entry must be a table with a status")
    unknown = set(doc) - _CODE_FIELDS
    if unknown:
        raise CodeTableError(source, entry, sorted(unknown)[0], "unknown field")
    status = _text(doc, "status", source, entry, required=True)
    if status not in _CANONICAL:
        raise CodeTableError(source, entry, "status", f"{status!r} is not a canonical status")
    if status not in CARRIER_STATUSES:
        raise CodeTableError(
            source, entry, "status", f"{status!r} is decided by Handoff, not reported by a carrier"
        )
    sub_status = _text(doc, "sub_status", source, entry, required=False)
    if sub_status is not None and sub_status not in SUB_STATUSES.get(status, frozenset()):
        allowed = ", ".join(sorted(SUB_STATUSES.get(status, frozenset()))) or "none"
        raise CodeTableError(
            source,
            entry,
            "sub_status",
            f"{sub_status!r} is not a sub-status of {status!r} (allowed: {allowed})",
        )
    return CodeMapping(
        status=status,  # type: ignore[arg-type]  # checked against CanonicalStatus above
        sub_status=sub_status,
        description=_text(doc, "description", source, entry, required=False),
    )


def parse_code_table(doc: Mapping[str, Any], source: str) -> CodeTable:
    """Validate a parsed TOML code table; every error names `source`, the entry and the field."""
    unknown = set(doc) - _TABLE_FIELDS
    if unknown:
        raise CodeTableError(source, "table", sorted(unknown)[0], "unknown field")
    carrier = _text(doc, "carrier", source, "table", required=True)
    assert carrier is not None
    if not _CARRIER_RE.match(carrier):
        raise CodeTableError(source, "table", "carrier", f"{carrier!r} is not a carrier code")
    pattern_text = _text(doc, "tracking_number_pattern", source, "table", required=True)
    assert pattern_text is not None
    try:
        pattern = re.compile(pattern_text)
    except re.error as exc:
        raise CodeTableError(
            source, "table", "tracking_number_pattern", f"not a regular expression: {exc}"
        ) from None
    example = _text(doc, "example_tracking_number", source, "table", required=False)
    if example is not None and not pattern.fullmatch(example):
        raise CodeTableError(
            source, "table", "example_tracking_number", f"{example!r} does not match the pattern"
        )
    raw_codes = doc.get("codes")
    if not isinstance(raw_codes, Mapping) or not raw_codes:
        raise CodeTableError(source, "table", "codes", "must be a non-empty table of codes")
    codes: dict[str, CodeMapping] = {}
    for code, entry in raw_codes.items():
        key = code_key(code)
        if not key:
            raise CodeTableError(source, f"codes.{code!r}", "code", "is blank")
        if key in codes:
            raise CodeTableError(
                source, f"codes.{code!r}", "code", "duplicates another code (codes ignore case)"
            )
        codes[key] = _mapping(code, entry, source)
    return CodeTable(
        carrier=carrier,
        name=_text(doc, "name", source, "table", required=False) or carrier,
        kind=_text(doc, "kind", source, "table", required=False) or "",
        tracking_number_pattern=pattern,
        example_tracking_number=example,
        codes=codes,
    )


def normalise(table: CodeTable | None, code: str) -> Normalised:
    """A carrier code in canonical terms (`table=None`, a carrier with no table: always unknown)."""
    mapping = table.lookup(code) if table is not None else None
    if mapping is None:
        return Normalised(status="unknown", unknown_code=True)
    return Normalised(
        status=mapping.status, sub_status=mapping.sub_status, description=mapping.description
    )


def observe(
    event: CarrierTrackingEvent,
    table: CodeTable | None,
    *,
    shipment_id: str,
    received_at: datetime,
) -> TrackingObserved:
    """The canonical observation of one carrier scan, joined to its shipment."""
    normalised = normalise(table, event.code)
    return TrackingObserved(
        shipment_id=shipment_id,
        carrier=event.carrier,
        tracking_number=event.tracking_number,
        carrier_event_id=event.event_id,
        carrier_code=event.code,
        status=normalised.status,
        sub_status=normalised.sub_status,
        occurred_at=event.occurred_at,
        received_at=received_at,
        # The carrier's own words win: they often carry detail the table cannot.
        description=event.description or normalised.description,
        location=event.location,
        proof=event.proof,
        unknown_code=normalised.unknown_code,
    )
