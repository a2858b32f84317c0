"""The carrier webhook: `POST /v1/carriers/{carrier}/events`.

A carrier posts one scan (a JSON object) or a batch (a JSON array) of
`CarrierTrackingEvent`s, signed with its secret (see `signature`). Checks run
cheapest and least-trusting first: known carrier (404), size (413), signature
and replay window (401), shape (400/422, the problem names the field with the
array index, e.g. `$[3].occurred_at`), batch length (413), then ownership:
every scan must be the path carrier's own (403). Only a request that passes
every check is published, so a refused request never reaches the topic.

Accepted scans go to `handoff.carrier.tracking.v1` keyed
`<carrier>/<tracking_number>` through the app's durable publisher (acks=all,
idempotent); the answer is 202 only after Kafka acknowledged every one. The
envelope id is derived from (carrier, carrier event id), so a carrier that
re-posts a batch (after a timeout, say) publishes the same ids again and the
join drops the duplicates. Raw carrier events carry the carrier code as their
tenant id: which tenant a scan belongs to is only known once the join has
matched the tracking number to a shipment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import msgspec
from handoff_events import topics
from handoff_events.contracts import CarrierTrackingEvent
from handoff_events.envelope import DecodeError, Envelope, decode_data, new_envelope
from handoff_events.ids import event_id
from handoff_events.runtime.http import Problem, json_response, read_body
from handoff_events.runtime.logging import get_logger
from handoff_events.runtime.metrics import HTTP_REQUESTS
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handoff_tracking.ingress import metrics
from handoff_tracking.ingress.join import WEBHOOK_SOURCE_PREFIX, join_key
from handoff_tracking.ingress.normalise import CodeTable
from handoff_tracking.ingress.ownership import OwnershipFollower, check_tracking_number
from handoff_tracking.ingress.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    verify,
)

PATH = "/v1/carriers/{carrier}/events"
ROUTE_NAME = "carrier_events"
log = get_logger("handoff.tracking.webhook")
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_single_decoder = msgspec.json.Decoder(msgspec.Raw)
_scans_decoder = msgspec.json.Decoder(list[CarrierTrackingEvent] | CarrierTrackingEvent)
Clock = Callable[[], datetime]


@cache
def _requests_counter(status: int) -> Any:
    """`handoff_http_requests_total{route="carrier_events"}` by status, looked up once each."""
    return HTTP_REQUESTS.labels("tracking", ROUTE_NAME, str(status))


def raw_event_id(carrier: str, carrier_event_id: str) -> str:
    """The envelope id of a carrier scan on the raw topic: same scan, same id."""
    return event_id(CarrierTrackingEvent.ce_type, carrier, carrier_event_id)


def raw_envelope(
    scan: CarrierTrackingEvent, received_at: datetime
) -> Envelope[CarrierTrackingEvent]:
    return new_envelope(
        scan,
        source=WEBHOOK_SOURCE_PREFIX + scan.carrier,
        tenant_id=scan.carrier,
        id=raw_event_id(scan.carrier, scan.event_id),
        time=received_at,
    )


def decode_scans(body: bytes, max_events: int) -> list[tuple[str, CarrierTrackingEvent]]:
    """A JSON array (or one object) of scans with their JSON paths (`$[3]`, or `$` for one
    object); errors name the field with its array index."""
    # The common case, a valid body: one decode of the whole body into typed scans. Any
    # failure is decoded again step by step below, so every refusal (and its order:
    # bad JSON, empty, too many, then the first invalid scan) is exactly the same.
    try:
        decoded = _scans_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return decode_scans_stepwise(body, max_events)
    if isinstance(decoded, CarrierTrackingEvent):
        return [("$", decoded)]
    _check_count(len(decoded), max_events)
    return [(f"$[{i}]", scan) for i, scan in enumerate(decoded)]


def _check_count(count: int, max_events: int) -> None:
    if not count:
        raise Problem(
            422,
            "Invalid request body",
            "the batch holds no events",
            reason="empty_batch",
            field="$",
        )
    if count > max_events:
        raise Problem(
            413,
            "Payload too large",
            f"at most {max_events} events per request",
            reason="too_many_events",
            field="$",
            value=count,
        )


def decode_scans_stepwise(body: bytes, max_events: int) -> list[tuple[str, CarrierTrackingEvent]]:
    """Parse, count, then validate element by element, so the problem names what is wrong."""
    try:
        # An array is split into raw elements (parsed once, validated one by one so an error
        # names its index); anything else is decoded as one event.
        is_batch = body.lstrip()[:1] == b"["
        parsed = _batch_decoder.decode(body) if is_batch else _single_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise Problem(
            400, "Invalid request body", str(exc), reason="invalid_json", field="$"
        ) from None
    items: list[tuple[str, msgspec.Raw]] = (
        [(f"$[{i}]", raw) for i, raw in enumerate(parsed)]
        if isinstance(parsed, list)
        else [("$", parsed)]
    )
    _check_count(len(items), max_events)
    scans = []
    for prefix, raw in items:
        try:
            scans.append((prefix, decode_data(CarrierTrackingEvent, bytes(raw), prefix=prefix)))
        except DecodeError as err:
            raise Problem(
                422,
                "Invalid request body",
                err.message,
                reason=err.reason,
                field=err.field,
                value=err.value_text,
            ) from None
    return scans


class CarrierWebhook:
    """The route's state: code tables, secrets, ownership, limits and the clock."""

    def __init__(
        self,
        *,
        tables: Mapping[str, CodeTable],
        secrets: Mapping[str, tuple[str, ...]],
        ownership: OwnershipFollower,
        clock: Clock,
        replay_window: timedelta,
        max_body_bytes: int,
        max_events: int,
        ownership_wait_s: float = 10.0,
    ):
        self.tables = tables
        self.secrets = secrets
        self.ownership = ownership
        self.clock = clock
        self.replay_window = replay_window
        self.max_body_bytes = max_body_bytes
        self.max_events = max_events
        self.ownership_wait_s = ownership_wait_s
        self._stop_registered = False

    def route(self) -> Route:
        return Route(PATH, self.post_events, methods=["POST"], name=ROUTE_NAME)

    async def post_events(self, request: Request) -> Response:
        carrier = request.path_params["carrier"]
        status = 500
        try:
            response = await self._accept(carrier, request)
            status = response.status_code
            return response
        except Problem as problem:
            status = problem.status
            metrics.WEBHOOK_REJECTED.labels(carrier[:32], problem.reason or str(status)).inc()
            raise
        finally:
            _requests_counter(status).inc()

    async def _accept(self, carrier: str, request: Request) -> Response:
        secrets = self.secrets.get(carrier)
        if carrier not in self.tables or not secrets:
            raise Problem(
                404,
                "Unknown carrier",
                f"no carrier {carrier[:32]!r} is configured",
                reason="unknown_carrier",
                field="carrier",
                value=carrier,
            )
        body = await read_body(request, limit=self.max_body_bytes)
        received_at = self.clock()
        try:
            verify(
                secrets=secrets,
                timestamp=request.headers.get(TIMESTAMP_HEADER),
                signature=request.headers.get(SIGNATURE_HEADER),
                body=body,
                now=received_at,
                replay_window=self.replay_window,
            )
        except SignatureError as err:
            raise Problem(
                401, "Unauthorized", err.message, reason=err.reason, field=err.field
            ) from None
        scans = decode_scans(body, self.max_events)
        self._stop_follower_with(request.app.state.app)
        await self._check_ownership(carrier, scans)
        envelopes = [raw_envelope(scan, received_at) for _, scan in scans]
        publisher = request.app.state.app.publisher
        try:
            await publisher.publish_many(
                [
                    (topics.CARRIER_TRACKING, join_key(e.data.carrier, e.data.tracking_number), e)
                    for e in envelopes
                ]
            )
        except Exception as exc:
            log.warning("publishing carrier scans failed", carrier=carrier, error=repr(exc))
            raise Problem(
                503,
                "Service unavailable",
                "the events could not be stored; retry later",
                reason="unavailable",
            ) from None
        metrics.webhook_events(carrier).inc(len(envelopes))
        return json_response({"accepted": len(envelopes), "ids": [e.id for e in envelopes]}, 202)

    def _stop_follower_with(self, app: Any) -> None:
        """The follower starts lazily (build_ingress has no lifecycle hooks of its own), so it
        asks the ServiceApp to stop it on shutdown; stopping twice is harmless."""
        if self.ownership.started or self._stop_registered:
            return
        hooks = getattr(app, "_on_stop", None)
        if isinstance(hooks, list):
            hooks.append(self.ownership.stop)
            self._stop_registered = True

    async def _check_ownership(
        self, carrier: str, scans: list[tuple[str, CarrierTrackingEvent]]
    ) -> None:
        try:
            index_ready = await self.ownership.caught_up(self.ownership_wait_s)
        except Exception as exc:
            log.warning("tracking-number ownership unavailable", error=repr(exc))
            index_ready = False
        if not index_ready:
            raise Problem(
                503,
                "Service unavailable",
                "tracking-number ownership is still loading; retry",
                reason="ownership_loading",
            )
        for at, scan in scans:
            if scan.carrier != carrier:
                raise Problem(
                    403,
                    "Forbidden",
                    f"a {carrier} request may only carry {carrier}'s events",
                    reason="carrier_mismatch",
                    field=f"{at}.carrier",
                    value=scan.carrier,
                )
            verdict = check_tracking_number(
                carrier,
                scan.tracking_number,
                self.tables,
                self.ownership.index.owners(scan.tracking_number),
            )
            if verdict.outcome == "foreign":
                raise Problem(
                    403,
                    "Forbidden",
                    verdict.detail,
                    reason="foreign_tracking_number",
                    field=f"{at}.tracking_number",
                    value=scan.tracking_number,
                )
            if verdict.outcome == "invalid_format":
                raise Problem(
                    422,
                    "Invalid request body",
                    verdict.detail,
                    reason="invalid_tracking_number",
                    field=f"{at}.tracking_number",
                    value=scan.tracking_number,
                )


def webhook_problem_example() -> dict[str, Any]:
    """The problem document a refused request gets (used by the OpenAPI fragment)."""
    return Problem(
        422,
        "Invalid request body",
        "Expected `str` matching regex ...",
        reason="schema_violation",
        field="$[3].occurred_at",
        value="yesterday",
    ).document()
