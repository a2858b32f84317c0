"""The CloudEvents 1.0 envelope in Kafka binary content mode, and its codec.

Binary mode (what Handoff produces): the record value is the event data as
UTF-8 JSON; the attributes travel as headers `ce_specversion`, `ce_id`,
`ce_source`, `ce_type`, `ce_time`, `ce_subject`, `ce_tenantid` and
`content-type: application/json`. Structured mode
(`content-type: application/cloudevents+json`, the whole event as JSON in the
value) is accepted on input.

Every failure is a `DecodeError` that names a stable reason code, the field and
the offending value, so a DLQ entry or an HTTP problem document can say exactly
what was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec

from handoff_events.contracts import EVENT_TYPES, Event
from handoff_events.ids import event_id as derive_event_id
from handoff_events.ids import utc_text

SPEC_VERSION = "1.0"
JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
_TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_MAX_ATTRIBUTE_LEN = 512

E = TypeVar("E", bound=Event)
T = TypeVar("T", bound=msgspec.Struct)
Headers = Sequence[tuple[str, bytes | None]]


class Envelope(msgspec.Struct, Generic[E], frozen=True, kw_only=True):
    """One CloudEvent: attributes plus typed data."""

    id: str
    source: str
    type: str
    tenant_id: str
    data: E
    time: datetime | None = None
    subject: str | None = None


class DecodeError(ValueError):
    """A record or body that is not a valid Handoff event.

    `reason` is a stable code: invalid_json, schema_violation, missing_attribute,
    invalid_attribute, unsupported_specversion, unknown_type, unexpected_type,
    unsupported_content_type, empty_value.
    """

    def __init__(self, reason: str, message: str, field: str | None = None, value: Any = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.field = field
        self.value = value

    @property
    def value_text(self) -> str | None:
        if self.value is None:
            return None
        text = self.value if isinstance(self.value, str) else repr(self.value)
        return text[:200]


def new_envelope(
    data: E,
    *,
    source: str,
    tenant_id: str,
    id: str | None = None,
    time: datetime | None = None,
    type: str | None = None,
    caused_by: str | None = None,
) -> Envelope[E]:
    """Wrap `data`. Pass `caused_by` (the input's event id) to get a deterministic id,
    so that processing the same input again emits the same event id."""
    ce_type = type or data.ce_type
    if id is None:
        if caused_by is None:
            raise ValueError("give an explicit id or caused_by: re-emitted events need stable ids")
        id = derive_event_id(ce_type, caused_by)
    subject = getattr(data, data.subject_field, None)
    return Envelope(
        id=id,
        source=source,
        type=ce_type,
        tenant_id=tenant_id,
        data=data,
        time=time,
        subject=None if subject is None else str(subject),
    )


_encoder = msgspec.json.Encoder()


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is UTC:
        return utc_text(moment).decode()
    if moment.tzinfo is None:
        raise ValueError("naive datetime: Handoff times carry an explicit offset")
    return moment.isoformat().replace("+00:00", "Z")


def encode(envelope: Envelope[Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Binary mode: (value, headers)."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", envelope.id.encode()),
        ("ce_source", envelope.source.encode()),
        ("ce_type", envelope.type.encode()),
        ("ce_tenantid", envelope.tenant_id.encode()),
        ("content-type", b"application/json"),
    ]
    moment = envelope.time
    if moment is not None:
        headers.append(
            ("ce_time", utc_text(moment) if moment.tzinfo is UTC else rfc3339(moment).encode())
        )
    if envelope.subject is not None:
        headers.append(("ce_subject", envelope.subject.encode()))
    return _encoder.encode(envelope.data), headers


def encode_structured(envelope: Envelope[Any]) -> bytes:
    """Structured mode (accepted on input; used by tests and HTTP examples)."""
    doc: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": envelope.id,
        "source": envelope.source,
        "type": envelope.type,
        "tenantid": envelope.tenant_id,
        "datacontenttype": JSON,
        "data": envelope.data,
    }
    if envelope.time is not None:
        doc["time"] = rfc3339(envelope.time)
    if envelope.subject is not None:
        doc["subject"] = envelope.subject
    return _encoder.encode(doc)


_decoders: dict[type[msgspec.Struct], msgspec.json.Decoder[Any]] = {}


def _decoder(cls: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    dec = _decoders.get(cls)
    if dec is None:
        dec = _decoders[cls] = msgspec.json.Decoder(cls)
    return dec


_PATH_RE = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.S)
_MISSING_RE = re.compile(r"missing required field `(?P<name>[^`]+)`")


def _walk(doc: Any, path: str) -> Any:
    """Follow a msgspec path like `$.parcels[0].weight_g` into a decoded JSON document."""
    node = doc
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        key, index = part
        try:
            node = node[int(index)] if index else node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def schema_error(exc: msgspec.ValidationError, raw: bytes, prefix: str = "$") -> DecodeError:
    """Turn msgspec's message into a DecodeError naming the JSON path and the bad value."""
    match = _PATH_RE.match(str(exc))
    message = match.group("msg") if match else str(exc)
    path = (match.group("path") if match else None) or "$"
    path = prefix + path[1:]
    missing = _MISSING_RE.search(message)
    if missing:
        return DecodeError("schema_violation", message, f"{path}.{missing.group('name')}", None)
    try:
        value = _walk(msgspec.json.decode(raw), path)
    except msgspec.DecodeError:
        value = None
    return DecodeError("schema_violation", message, path, value)


def decode_data(cls: type[T], raw: bytes, prefix: str = "$") -> T:
    """Decode a bare event payload (used by HTTP edges), or any other struct of one (a
    read model's index): errors name the field."""
    try:
        return _decoder(cls).decode(raw)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise schema_error(exc, raw, prefix) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec reports invalid UTF-8 inside a JSON string as UnicodeDecodeError.
        raise DecodeError(
            "invalid_json", str(exc), prefix, raw[:80].decode(errors="replace")
        ) from None


def _header_map(headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, raw in headers:
        if raw is None or name in out:
            continue
        try:
            out[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(
                "invalid_attribute", "header is not UTF-8", name, raw[:40].hex()
            ) from None
    return out


def _attribute(attrs: dict[str, Any], name: str, label: str) -> str:
    value = attrs.get(name)
    if value is None or value == "":
        raise DecodeError("missing_attribute", f"required CloudEvents attribute {label}", label)
    if not isinstance(value, str) or len(value) > _MAX_ATTRIBUTE_LEN:
        raise DecodeError("invalid_attribute", f"{label} must be a short string", label, value)
    return value


def _time(value: str | None, label: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DecodeError("invalid_attribute", "not an RFC 3339 time", label, value) from None
    if moment.tzinfo is None:
        raise DecodeError("invalid_attribute", "time has no offset", label, value)
    return moment


def _event_class(ce_type: str, label: str, accept: Collection[str] | None) -> type[Event]:
    cls = EVENT_TYPES.get(ce_type)
    if cls is None:
        raise DecodeError("unknown_type", "not a Handoff event type", label, ce_type)
    if accept is not None and ce_type not in accept:
        raise DecodeError(
            "unexpected_type", "event type not accepted on this topic", label, ce_type
        )
    return cls


def _tenant(value: str, label: str) -> str:
    if not _TENANT_RE.match(value):
        raise DecodeError(
            "invalid_attribute", "tenant id must match [a-z0-9][a-z0-9_-]*", label, value
        )
    return value


class _Structured(msgspec.Struct):
    specversion: str | None = None
    id: str | None = None
    source: str | None = None
    type: str | None = None
    tenantid: str | None = None
    time: str | None = None
    subject: str | None = None
    datacontenttype: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")


_structured_decoder = msgspec.json.Decoder(_Structured)


def decode(
    value: bytes | None, headers: Headers, accept: Collection[str] | None = None
) -> Envelope[Event]:
    """Decode a Kafka record (binary or structured mode) into a typed envelope."""
    if not value:
        raise DecodeError("empty_value", "record has no value", "value")
    attrs = _header_map(headers)
    content_type = attrs.get("content-type", JSON).split(";")[0].strip().lower()
    if content_type == STRUCTURED:
        return _decode_structured(value, accept)
    if content_type != JSON:
        raise DecodeError(
            "unsupported_content_type", "use application/json", "content-type", content_type
        )
    spec = attrs.get("ce_specversion")
    if spec != SPEC_VERSION:
        if spec is None:
            raise DecodeError(
                "missing_attribute", "required CloudEvents attribute", "ce_specversion"
            )
        raise DecodeError("unsupported_specversion", "only CloudEvents 1.0", "ce_specversion", spec)
    ce_type = _attribute(attrs, "ce_type", "ce_type")
    cls = _event_class(ce_type, "ce_type", accept)
    ce_id = _attribute(attrs, "ce_id", "ce_id")
    source = _attribute(attrs, "ce_source", "ce_source")
    tenant = _tenant(_attribute(attrs, "ce_tenantid", "ce_tenantid"), "ce_tenantid")
    moment = _time(attrs.get("ce_time"), "ce_time")
    data = decode_data(cls, value)
    return Envelope(
        id=ce_id,
        source=source,
        type=ce_type,
        tenant_id=tenant,
        data=data,
        time=moment,
        subject=attrs.get("ce_subject"),
    )


def _decode_structured(value: bytes, accept: Collection[str] | None) -> Envelope[Event]:
    try:
        doc = _structured_decoder.decode(value)
    except msgspec.ValidationError as exc:
        raise schema_error(exc, value) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise DecodeError(
            "invalid_json", str(exc), "$", value[:80].decode(errors="replace")
        ) from None
    attrs = {f: getattr(doc, f) for f in doc.__struct_fields__ if f != "data"}
    if doc.specversion != SPEC_VERSION:
        if doc.specversion is None:
            raise DecodeError("missing_attribute", "required CloudEvents attribute", "specversion")
        raise DecodeError(
            "unsupported_specversion", "only CloudEvents 1.0", "specversion", doc.specversion
        )
    ce_type = _attribute(attrs, "type", "type")
    cls = _event_class(ce_type, "type", accept)
    if not bytes(doc.data) or bytes(doc.data) == b"null":
        raise DecodeError("missing_attribute", "structured event has no data", "data")
    return Envelope(
        id=_attribute(attrs, "id", "id"),
        source=_attribute(attrs, "source", "source"),
        type=ce_type,
        tenant_id=_tenant(_attribute(attrs, "tenantid", "tenantid"), "tenantid"),
        data=decode_data(cls, bytes(doc.data), prefix="$.data"),
        time=_time(doc.time, "time"),
        subject=doc.subject,
    )


def utcnow() -> datetime:
    return datetime.now(UTC)
