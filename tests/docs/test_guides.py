"""The integration guides' JSON, example files and client settings match the v1 contract.

No broker: these checks read the Markdown and the files under docs/examples/. The
executed snippets are in test_marketplace_guide.py and test_carrier_guide.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from handoff_events.contracts import EVENT_TYPES, UPDATE_TYPES, TenderAnswer
from handoff_events.envelope import decode_data
from handoff_events.examples import EXAMPLES

from tests.docs.mdblocks import Block, blocks, example_json

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GUIDES = [DOCS / "integrating-marketplaces.md", DOCS / "integrating-carriers.md"]
ASYNCAPI = json.loads((DOCS / "asyncapi.json").read_text())

EXECUTED = {
    "integrating-marketplaces.md": {
        "kcat-publish-order",
        "kcat-consume-updates",
        "python-publish-and-follow",
        "kcat-publish-return",
        "kcat-read-dlq",
        "curl-place-order",
        "curl-cancel-order",
        "curl-invalid-order",
        "curl-get-shipment",
        "kcat-read-state",
    },
    "integrating-carriers.md": {
        "sign-and-post",
        "kcat-post-tracking-event",
        "kcat-read-tenders",
        "kcat-accept-tender",
    },
}
"""Every block marked `test:` must be run by a test; this list is what the tests run."""


def _validator(ce_type: str) -> jsonschema.protocols.Validator:
    """The JSON Schema the AsyncAPI document publishes for `ce_type`'s payload."""
    [message] = [m for m in ASYNCAPI["components"]["messages"].values() if m["name"] == ce_type]
    schema = {**message["payload"], "components": ASYNCAPI["components"]}
    return jsonschema.Draft202012Validator(schema)


def _json_blocks() -> list[tuple[str, Block]]:
    return [(p.name, b) for p in GUIDES for b in blocks(p.read_text()) if b.info == "json"]


def _ids(items: list[tuple[str, Block]]) -> list[str]:
    return [f"{name}:{block.line}" for name, block in items]


JSON_BLOCKS = _json_blocks()


@pytest.mark.parametrize(("guide", "block"), JSON_BLOCKS, ids=_ids(JSON_BLOCKS))
def test_every_json_block_is_marked_and_valid(guide: str, block: Block) -> None:
    assert block.kind in ("example", "event", "json"), (
        f"{guide}:{block.line}: mark the JSON block with <!-- example: <ce_type> -->, "
        "<!-- event: <ce_type> --> or <!-- json: <what> -->"
    )
    doc = json.loads(block.body)
    if block.kind == "json":
        if block.arg == "TenderAnswer":  # the HTTP tender adapter's answer body
            decode_data(TenderAnswer, block.body.encode())  # type: ignore[type-var]
        return
    assert block.arg in EVENT_TYPES, f"{guide}:{block.line}: unknown event type {block.arg}"
    event = decode_data(EVENT_TYPES[block.arg], block.body.encode())
    _validator(block.arg).validate(doc)
    if block.kind == "example":
        assert event == EXAMPLES[block.arg], (
            f"{guide}:{block.line} drifted from handoff_events.examples; run "
            f"`python -m tests.docs.mdblocks docs/{guide}`. Expected:\n{example_json(block.arg)}"
        )
    if block.arg in UPDATE_TYPES.values():
        milestone = doc["milestone"]
        assert UPDATE_TYPES[milestone] == block.arg, f"{guide}:{block.line}: milestone/type"


def test_tender_answer_blocks_are_checked() -> None:
    answers = [b for _, b in JSON_BLOCKS if b.kind == "json" and b.arg == "TenderAnswer"]
    assert len(answers) == 2


@pytest.mark.parametrize(
    ("path", "ce_type"),
    [
        ("order.json", "handoff.order.placed.v1"),
        ("return-request.json", "handoff.return.requested.v1"),
        ("tender-accepted.json", "handoff.tender.accepted.v1"),
    ],
)
def test_example_files_are_the_contract_examples(path: str, ce_type: str) -> None:
    raw = (DOCS / "examples" / path).read_bytes()
    assert decode_data(EVENT_TYPES[ce_type], raw) == EXAMPLES[ce_type]
    _validator(ce_type).validate(json.loads(raw))


def test_every_event_a_marketplace_produces_or_consumes_is_in_the_guide() -> None:
    text = GUIDES[0].read_text()
    marked = {b.arg for b in blocks(text) if b.kind in ("example", "event")}
    produced = {"handoff.order.placed.v1", "handoff.order.cancelled.v1"}
    produced |= {"handoff.return.requested.v1"}
    assert produced | {"handoff.shipment.state.v1"} <= marked
    # the updates share one shape; the guide shows the key ones and lists every type
    assert {UPDATE_TYPES[m] for m in ("rejected", "status_changed", "delivered")} <= marked
    for milestone, ce_type in UPDATE_TYPES.items():
        assert f"| `{milestone}` | `{ce_type}` |" in text, f"{ce_type} missing from the table"


def test_every_tender_event_is_in_the_carrier_guide() -> None:
    marked = {b.arg for b in blocks(GUIDES[1].read_text()) if b.kind == "example"}
    tender_topics = ("handoff.carrier.tenders.v1", "handoff.carrier.tender-replies.v1")
    channels = [c for c in ASYNCAPI["channels"].values() if c["address"] in tender_topics]
    types = {m["name"] for c in channels for m in _messages_of(c)}
    assert types == {
        "handoff.tender.requested.v1",
        "handoff.tender.withdrawn.v1",
        "handoff.tender.accepted.v1",
        "handoff.tender.declined.v1",
    }
    assert types <= marked


def _messages_of(channel: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for ref in channel["messages"].values():
        name = ref["$ref"].rsplit("/", 1)[-1]
        out.append(ASYNCAPI["components"]["messages"][name])
    return out


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_marked_snippet_is_executed_by_a_test(guide: Path) -> None:
    marked = {b.arg for b in blocks(guide.read_text()) if b.kind == "test"}
    assert marked == EXECUTED[guide.name]
    assert all(b.info == "bash" for b in blocks(guide.read_text()) if b.kind == "test")


def test_every_asyncapi_example_validates_against_the_published_schema() -> None:
    """Extends tests/unit/test_asyncapi.py (which decodes each example with msgspec): here the
    example must also satisfy the JSON Schema a non-Python integrator validates with."""
    for message in ASYNCAPI["components"]["messages"].values():
        for example in message["examples"]:
            _validator(message["name"]).validate(example["payload"])
            headers = {**message["headers"], "components": ASYNCAPI["components"]}
            jsonschema.Draft202012Validator(headers).validate(example["headers"])


def _properties(path: Path) -> dict[str, str]:
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "!")):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_java_producer_properties_are_durable_and_murmur2() -> None:
    props = _properties(DOCS / "examples" / "producer.properties")
    assert props["acks"] == "all"
    assert props["enable.idempotence"] == "true"
    assert 1 <= int(props["max.in.flight.requests.per.connection"]) <= 5
    assert props["compression.type"] in ("gzip", "snappy", "lz4", "zstd")
    assert props["key.serializer"].endswith("StringSerializer")
    assert props["value.serializer"].endswith("ByteArraySerializer")
    assert "partitioner.class" not in props  # the Java default is murmur2


def test_java_consumer_properties_read_committed() -> None:
    props = _properties(DOCS / "examples" / "consumer.properties")
    assert props["isolation.level"] == "read_committed"
    assert props["enable.auto.commit"] == "false"
