"""The v1 contract: every event type has an example, round-trips through the envelope codec,
and every decoding error names the field and the value."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from handoff_events.contracts import EVENT_TYPES, OrderPlaced
from handoff_events.envelope import (
    DecodeError,
    decode,
    decode_data,
    encode,
    encode_structured,
    new_envelope,
    rfc3339,
)
from handoff_events.examples import EXAMPLES
from handoff_events.ids import iso_text
from handoff_events.topics import BY_NAME, CATALOGUE
from hypothesis import given, settings
from hypothesis import strategies as st

ALL_TYPES = sorted(EVENT_TYPES)


def test_every_event_type_has_an_example() -> None:
    assert sorted(EXAMPLES) == ALL_TYPES


@pytest.mark.parametrize("ce_type", ALL_TYPES)
def test_binary_and_structured_round_trip(ce_type: str) -> None:
    env = new_envelope(
        EXAMPLES[ce_type],
        source="handoff/test",
        tenant_id="acme",
        id="evt-1",
        time=datetime(2026, 11, 20, tzinfo=UTC),
        type=ce_type,
    )
    value, headers = encode(env)
    names = [k for k, _ in headers]
    assert names[:6] == [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_tenantid",
        "content-type",
    ]
    assert dict(headers)["ce_time"] == b"2026-11-20T00:00:00Z"
    assert decode(value, headers) == env
    structured = encode_structured(env)
    assert decode(structured, [("content-type", b"application/cloudevents+json")]) == env


@pytest.mark.parametrize("ce_type", ALL_TYPES)
def test_decoded_payloads_and_every_struct_inside_are_not_tracked_by_the_cycle_collector(
    ce_type: str,
) -> None:
    """Decision 0009: contract structs are `gc=False`, so a full collection does not walk
    a fold's hundreds of thousands of stored states. Only the lists inside are tracked."""
    value, headers = encode(
        new_envelope(EXAMPLES[ce_type], source="t", tenant_id="acme", id="e", type=ce_type)
    )
    payload = decode(value, headers).data
    structs = [payload]
    untracked = 0
    while structs:
        item = structs.pop()
        if isinstance(item, msgspec.Struct):
            assert not gc.is_tracked(item), f"{type(item).__name__} is tracked"
            untracked += 1
            structs.extend(getattr(item, name) for name in item.__struct_fields__)
        elif isinstance(item, (list, tuple)):
            structs.extend(item)
        elif isinstance(item, dict):
            structs.extend(item.values())
    assert untracked >= 1


def test_deterministic_ids_for_re_emitted_events() -> None:
    data = EXAMPLES["handoff.shipment.requested.v1"]
    a = new_envelope(data, source="s", tenant_id="acme", caused_by="input-1")
    b = new_envelope(data, source="s", tenant_id="acme", caused_by="input-1")
    c = new_envelope(data, source="s", tenant_id="acme", caused_by="input-2")
    assert a.id == b.id != c.id
    with pytest.raises(ValueError, match="stable ids"):
        new_envelope(data, source="s", tenant_id="acme")


ORDER = msgspec.json.encode(EXAMPLES["handoff.order.placed.v1"])
GOOD_HEADERS = encode(
    new_envelope(EXAMPLES["handoff.order.placed.v1"], source="m", tenant_id="acme", id="1")
)[1]


@pytest.mark.parametrize(
    ("value", "headers", "reason", "field", "bad_value"),
    [
        (b"{oops", GOOD_HEADERS, "invalid_json", "$", "{oops"),
        (
            ORDER.replace(b'"weight_g":1200', b'"weight_g":"heavy"'),
            GOOD_HEADERS,
            "schema_violation",
            "$.parcels[0].weight_g",
            "heavy",
        ),
        (
            ORDER.replace(b'"weight_g":1200', b'"weight_g":12.5'),
            GOOD_HEADERS,
            "schema_violation",
            "$.parcels[0].weight_g",
            12.5,
        ),
        (
            ORDER.replace(b'"order_id":"A-1001",', b""),
            GOOD_HEADERS,
            "schema_violation",
            "$.order_id",
            None,
        ),
        (
            ORDER.replace(b'"country":"DE"', b'"country":"Germany"'),
            GOOD_HEADERS,
            "schema_violation",
            "$.ship_to.country",
            "Germany",
        ),
        (
            ORDER.replace(
                b'"placed_at":"2026-11-20T10:00:00Z"', b'"placed_at":"2026-11-20T10:00:00"'
            ),
            GOOD_HEADERS,
            "schema_violation",
            "$.placed_at",
            "2026-11-20T10:00:00",
        ),
        (
            ORDER,
            [(k, b"handoff.order.shipped.v9" if k == "ce_type" else v) for k, v in GOOD_HEADERS],
            "unknown_type",
            "ce_type",
            "handoff.order.shipped.v9",
        ),
        (
            ORDER,
            [(k, v) for k, v in GOOD_HEADERS if k != "ce_id"],
            "missing_attribute",
            "ce_id",
            None,
        ),
        (
            ORDER,
            [(k, v) for k, v in GOOD_HEADERS if k != "ce_tenantid"],
            "missing_attribute",
            "ce_tenantid",
            None,
        ),
        (
            ORDER,
            [(k, b"ACME Inc" if k == "ce_tenantid" else v) for k, v in GOOD_HEADERS],
            "invalid_attribute",
            "ce_tenantid",
            "ACME Inc",
        ),
        (
            ORDER,
            [(k, b"0.3" if k == "ce_specversion" else v) for k, v in GOOD_HEADERS],
            "unsupported_specversion",
            "ce_specversion",
            "0.3",
        ),
        (
            ORDER,
            [(k, b"text/xml" if k == "content-type" else v) for k, v in GOOD_HEADERS],
            "unsupported_content_type",
            "content-type",
            "text/xml",
        ),
        (None, GOOD_HEADERS, "empty_value", "value", None),
    ],
)
def test_decode_errors_name_reason_field_and_value(
    value, headers, reason, field, bad_value
) -> None:
    with pytest.raises(DecodeError) as info:
        decode(value, headers)
    assert (info.value.reason, info.value.field, info.value.value) == (reason, field, bad_value)


def test_unexpected_type_on_a_topic_is_refused() -> None:
    with pytest.raises(DecodeError) as info:
        decode(ORDER, GOOD_HEADERS, accept={"handoff.return.requested.v1"})
    assert info.value.reason == "unexpected_type"


def test_structured_mode_errors_point_into_data() -> None:
    doc = (
        b'{"specversion":"1.0","id":"1","source":"m","type":"handoff.order.placed.v1","tenantid":"acme","data":'
        + ORDER.replace(b'"quantity":1', b'"quantity":0')
        + b"}"
    )
    with pytest.raises(DecodeError) as info:
        decode(doc, [("content-type", b"application/cloudevents+json")])
    assert info.value.field == "$.data.lines[0].quantity"


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=400),
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "ce_id",
                    "ce_type",
                    "ce_specversion",
                    "ce_tenantid",
                    "ce_source",
                    "content-type",
                    "x",
                ]
            ),
            st.binary(max_size=40),
        ),
        max_size=8,
    ),
)
def test_decoder_never_crashes_on_arbitrary_bytes(
    value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    try:
        decode(value, headers)
    except DecodeError as err:
        assert err.reason and err.message


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_payload_decoder_never_crashes_on_arbitrary_json(doc: object) -> None:
    try:
        decode_data(OrderPlaced, msgspec.json.encode(doc))
    except DecodeError as err:
        assert err.reason in {"schema_violation", "invalid_json"}
        assert err.field is not None and err.field.startswith("$")


_OFFSETS = st.one_of(
    st.just(UTC),
    st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-23 * 60, 23 * 60)),
    st.timezones(),
)


@settings(max_examples=2000, deadline=None)
@given(st.datetimes(timezones=_OFFSETS))
def test_time_texts_are_isoformat_whatever_the_path(moment: datetime) -> None:
    """`rfc3339` and `iso_text` take msgspec's encoder for UTC times (the fast path) and
    `isoformat` for the rest; ids hash `iso_text`, so the two paths must give one text."""
    assert iso_text(moment) == moment.isoformat()
    assert rfc3339(moment) == moment.isoformat().replace("+00:00", "Z")
    _, headers = encode(
        new_envelope(
            EXAMPLES[OrderPlaced.ce_type], source="t", tenant_id="acme", id="e", time=moment
        )
    )
    assert dict(headers)["ce_time"] == rfc3339(moment).encode()


@settings(max_examples=3000, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)))
def test_utc_times_take_the_fast_path_to_the_same_text(moment: datetime) -> None:
    assert moment.tzinfo is UTC
    assert iso_text(moment) == moment.isoformat()
    assert rfc3339(moment) == moment.isoformat().replace("+00:00", "Z")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        rfc3339(datetime(2026, 11, 22, 12, 0))


def test_catalogue_is_consistent() -> None:
    names = [t.name for t in CATALOGUE]
    assert len(names) == len(set(names))
    for spec in CATALOGUE:
        for ce_type in spec.event_types:
            assert ce_type in EVENT_TYPES, (spec.name, ce_type)
        if not spec.dlq_of:
            assert spec.name.startswith("handoff.") and spec.name.endswith(".v1")
        if spec.changelog or spec.name == "handoff.shipments.state.v1":
            assert spec.cleanup == "compact"
    # every consumed topic has a DLQ
    for spec in CATALOGUE:
        consumed = [r for r in spec.readers if r not in ("marketplace", "carrier")]
        if consumed and not spec.changelog and not spec.dlq_of:
            assert spec.dlq in BY_NAME, spec.name
