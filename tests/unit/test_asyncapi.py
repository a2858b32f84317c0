"""The AsyncAPI 3.0 document: generated from the contracts, committed, valid for the official parser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest
from handoff_events.asyncapi import build
from handoff_events.contracts import EVENT_TYPES
from handoff_events.envelope import decode_data
from handoff_events.topics import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "asyncapi.json"
VALIDATOR = ROOT / "tools" / "asyncapi" / "validate.mjs"


def test_committed_document_is_up_to_date() -> None:
    committed = json.loads(DOC.read_text())
    assert committed == json.loads(json.dumps(build())), (
        "run `make asyncapi` and commit docs/asyncapi.json"
    )


def test_every_topic_is_a_channel_and_every_event_type_a_message_with_an_example() -> None:
    doc = build()
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {t.name for t in CATALOGUE}
    messages = {m["name"]: m for m in doc["components"]["messages"].values()}
    assert set(messages) == set(EVENT_TYPES)
    for ce_type, message in messages.items():
        example = message["examples"][0]
        assert example["headers"]["ce_type"] == ce_type
        # the example payload validates against the very schema the document publishes
        decode_data(EVENT_TYPES[ce_type], msgspec.json.encode(example["payload"]))


def test_official_parser_accepts_the_document() -> None:
    if shutil.which("node") is None:
        pytest.fail("Node.js is needed for @asyncapi/parser (see README: make test-tools)")
    if not (VALIDATOR.parent / "node_modules" / "@asyncapi" / "parser").exists():
        pytest.fail("run `make node-tools` (make test does) to install @asyncapi/parser")
    result = subprocess.run(
        ["node", str(VALIDATOR), str(DOC)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid AsyncAPI 3.0.0" in result.stdout
