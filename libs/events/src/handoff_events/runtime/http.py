"""HTTP edge helpers shared by every service: problem documents, body decoding, tenant auth.

Errors are RFC 9457 `application/problem+json` documents that name the field
and the value, using the same reason codes as the DLQ.
"""

from __future__ import annotations

import hmac
from typing import Any, TypeVar

import msgspec
from aiokafka.errors import KafkaError
from starlette.requests import Request
from starlette.responses import Response

from handoff_events.envelope import DecodeError, Envelope, decode_data
from handoff_events.runtime.publisher import EventPublisher

E = TypeVar("E", bound=msgspec.Struct)
PROBLEM = "application/problem+json"
MAX_BODY_BYTES = 1_000_000


class Problem(Exception):
    """Raise anywhere in a route; `problem_handler` turns it into a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        reason: str | None = None,
        field: str | None = None,
        value: Any = None,
        errors: list[dict[str, Any]] | None = None,
    ):
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.reason = reason
        self.field = field
        self.value = value
        self.errors = errors

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": f"https://handoff.dev/problems/{self.reason or self.status}",
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            doc["detail"] = self.detail
        if self.reason:
            doc["reason"] = self.reason
        if self.field:
            doc["field"] = self.field
        if self.value is not None:
            doc["value"] = (
                self.value if isinstance(self.value, int | float | bool) else str(self.value)[:200]
            )
        if self.errors:
            doc["errors"] = self.errors
        return doc


def problem_response(problem: Problem) -> Response:
    return Response(msgspec.json.encode(problem.document()), problem.status, media_type=PROBLEM)


async def problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc)


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        msgspec.json.encode(payload), status, headers=headers, media_type="application/json"
    )


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refusing oversize ones with 413 before reading them whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "Payload too large", f"limit is {limit} bytes", reason="too_large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Problem(413, "Payload too large", f"limit is {limit} bytes", reason="too_large")
    return body


def decode_body(cls: type[E], body: bytes) -> E:
    """Decode a JSON body into a contract type; a 422 problem names the field and value."""
    try:
        return decode_data(cls, body)
    except DecodeError as err:
        status = 400 if err.reason == "invalid_json" else 422
        raise Problem(
            status,
            "Invalid request body",
            err.message,
            reason=err.reason,
            field=err.field,
            value=err.value_text,
        ) from None


def parse_api_keys(spec: str) -> dict[str, str]:
    """`tenant:key,tenant2:key2` → {key: tenant}."""
    keys: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        tenant, _, key = item.partition(":")
        if not key:
            raise ValueError(f"API key entry {item!r} is not tenant:key")
        keys[key] = tenant
    return keys


class TenantAuth:
    """Per-tenant API keys (`Authorization: Bearer <key>` or `X-Api-Key`); compared in constant time."""

    def __init__(self, keys: dict[str, str]):
        self._keys = list(keys.items())

    def tenant(self, request: Request) -> str:
        auth = request.headers.get("authorization", "")
        presented = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        presented = presented or request.headers.get("x-api-key", "")
        if presented:
            found = None
            for key, tenant in self._keys:
                if hmac.compare_digest(key.encode(), presented.encode()):
                    found = tenant
            if found is not None:
                return found
        raise Problem(
            401, "Unauthorized", "a valid tenant API key is required", reason="unauthorized"
        )


async def publish_or_503(
    publisher: EventPublisher, topic: str, key: str, envelope: Envelope[Any]
) -> tuple[int, int]:
    """Publish for an HTTP caller: the broker's acknowledgement, or a 503 problem saying
    that retrying is safe (the same request yields the same event id)."""
    try:
        return await publisher.publish(topic, key, envelope)
    except (KafkaError, TimeoutError) as exc:
        raise Problem(
            503,
            "Service unavailable",
            f"Kafka did not acknowledge the record ({type(exc).__name__}); retry: "
            "the same request yields the same event id",
            reason="broker_unavailable",
        ) from None
