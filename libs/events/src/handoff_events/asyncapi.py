"""Generate the AsyncAPI 3.0 document from the event contracts and the topic catalogue.

FastStream's generator cannot describe msgspec Structs, and the catalogue is the
source of truth anyway: every topic becomes a channel (address = topic name),
every event type a message with its JSON Schema (msgspec), its CloudEvents
headers and an example, and every topic gets `send`/`receive` operations from
Handoff's point of view.

    python -m handoff_events.asyncapi > docs/asyncapi.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

import msgspec

from handoff_events.contracts import EVENT_TYPES
from handoff_events.envelope import rfc3339
from handoff_events.examples import EXAMPLES
from handoff_events.topics import CATALOGUE, TopicSpec

VERSION = "1.0.0"


def _message_name(ce_type: str) -> str:
    return ce_type.removeprefix("handoff.").removesuffix(".v1").replace(".", "_") + "_v1"


def _channel_name(topic: str) -> str:
    return topic.replace(".", "_").replace("-", "_")


def _headers_schema(ce_type: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_tenantid",
            "content-type",
        ],
        "properties": {
            "ce_specversion": {"type": "string", "const": "1.0"},
            "ce_id": {
                "type": "string",
                "description": "unique per source; deterministic for re-emitted events",
            },
            "ce_source": {
                "type": "string",
                "description": "e.g. handoff/tracking or the marketplace's URI",
            },
            "ce_type": {"type": "string", "const": ce_type},
            "ce_time": {"type": "string", "format": "date-time"},
            "ce_subject": {"type": "string", "description": "the shipment or order id"},
            "ce_tenantid": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
            "content-type": {"type": "string", "const": "application/json"},
        },
    }


def _example(ce_type: str) -> dict[str, Any] | None:
    event = EXAMPLES.get(ce_type)
    if event is None:
        return None
    payload = json.loads(msgspec.json.encode(event))
    return {
        "name": "example",
        "headers": {
            "ce_specversion": "1.0",
            "ce_id": "evt_example",
            "ce_source": "handoff/example",
            "ce_type": ce_type,
            "ce_time": rfc3339(
                msgspec.json.decode(b'"2026-11-20T10:00:00Z"', type=__import__("datetime").datetime)
            ),
            "ce_tenantid": "acme",
            "content-type": "application/json",
        },
        "payload": payload,
    }


def build() -> dict[str, Any]:
    types = sorted(EVENT_TYPES)
    classes = sorted({cls for cls in EVENT_TYPES.values()}, key=lambda c: c.__name__)
    _, components = msgspec.json.schema_components(
        classes, ref_template="#/components/schemas/{name}"
    )
    messages: dict[str, Any] = {}
    for ce_type in types:
        cls = EVENT_TYPES[ce_type]
        message: dict[str, Any] = {
            "name": ce_type,
            "title": cls.__name__,
            "summary": (cls.__doc__ or cls.__name__).strip().splitlines()[0],
            "contentType": "application/json",
            "headers": _headers_schema(ce_type),
            "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
        }
        example = _example(ce_type)
        if example is not None:
            message["examples"] = [example]
        messages[_message_name(ce_type)] = message
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in CATALOGUE:
        cid = _channel_name(spec.name)
        channel: dict[str, Any] = {
            "address": spec.name,
            "title": spec.name,
            "description": _describe(spec),
            "messages": {
                _message_name(t): {"$ref": f"#/components/messages/{_message_name(t)}"}
                for t in spec.event_types
            },
            "bindings": {
                "kafka": {
                    "topic": spec.name,
                    "topicConfiguration": {
                        "cleanup.policy": [spec.cleanup],
                        "retention.ms": -1 if spec.cleanup == "compact" else spec.retention_ms,
                    },
                    "bindingVersion": "0.5.0",
                }
            },
        }
        channels[cid] = channel
        if not spec.event_types:
            continue
        refs = [{"$ref": f"#/channels/{cid}/messages/{_message_name(t)}"} for t in spec.event_types]
        handoff_writes = any(w not in ("marketplace", "carrier") for w in spec.writers)
        handoff_reads = any(r not in ("marketplace", "carrier") for r in spec.readers)
        if handoff_writes:
            operations[f"send_{cid}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{cid}"},
                "summary": f"Handoff ({', '.join(w for w in spec.writers if w not in ('marketplace', 'carrier'))}) publishes",
                "messages": refs,
            }
        if handoff_reads:
            operations[f"receive_{cid}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{cid}"},
                "summary": f"Handoff ({', '.join(r for r in spec.readers if r not in ('marketplace', 'carrier'))}) consumes",
                "messages": refs,
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Handoff event contract",
            "version": VERSION,
            "description": (
                "Event-sourced carrier orchestration for last-mile delivery. Events are CloudEvents 1.0 "
                "in the Kafka binary content mode: the value is the JSON data, attributes are `ce_*` "
                "headers, `ce_tenantid` names the tenant. Inbound topics also accept the structured "
                "mode (`content-type: application/cloudevents+json`). Contract rules: fields are only "
                "added (optional, with defaults) within v1; consumers ignore unknown fields."
            ),
            "license": {"name": "MIT"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:19092",
                "protocol": "kafka",
                "description": "the broker `make up` starts",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": components, "messages": messages},
    }


def _describe(spec: TopicSpec) -> str:
    parts = [spec.description, f"Key: `{spec.key}`.", f"Written by: {', '.join(spec.writers)}."]
    if spec.readers:
        parts.append(f"Read by: {', '.join(spec.readers)}.")
    if spec.public:
        parts.append("Public contract.")
    if spec.changelog:
        parts.append("Compacted changelog of a state store.")
    if spec.dlq_of:
        parts.append(
            "Values and headers are the original record's; `handoff_dlq_reason`, `handoff_dlq_field`, "
            "`handoff_dlq_value`, `handoff_dlq_message`, `handoff_dlq_topic`, `handoff_dlq_partition`, "
            "`handoff_dlq_offset` say why and from where."
        )
    return " ".join(parts)


def main() -> None:
    json.dump(build(), sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
