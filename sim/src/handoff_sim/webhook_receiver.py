"""A local marketplace webhook receiver: verifies Handoff's signatures, records deliveries.

For development and tests. Every request is recorded (verified or not, and
with the status it got); it can be told to fail for one tenant N times or
always (`POST /_control/{tenant}` with `{"fail_times": 3}` or
`{"always_fail": true}`, `{}` to heal). `GET /deliveries` lists what arrived.

    python -m handoff_sim.webhook_receiver --port 8091 \
        --key acme-dev-1=dev-webhook-secret-acme --key globex-dev-1=dev-webhook-secret-globex
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DEV_KEYS = {
    "acme-dev-1": b"dev-webhook-secret-acme",
    "globex-dev-1": b"dev-webhook-secret-globex",
}


def expected_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """Recomputed independently of the service's code: the receiver is the other party."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


@dataclass
class ReceivedWebhook:
    tenant: str
    idempotency_key: str | None
    key_id: str | None
    verified: bool
    problem: str | None
    status: int
    body: bytes
    event_type: str | None
    received_at: float
    """time.time() when it arrived."""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _FailurePlan:
    remaining: int = 0
    always: bool = False


@dataclass
class WebhookReceiver:
    keys: dict[str, bytes] = field(default_factory=lambda: dict(DEV_KEYS))
    tolerance_s: float = 300.0
    clock: Callable[[], float] = time.time
    deliveries: list[ReceivedWebhook] = field(default_factory=list)
    delay_s: float = 0.0
    """Answer each request this much later (a slow endpoint)."""
    _plans: dict[str, _FailurePlan] = field(default_factory=dict)

    # ---- control ---------------------------------------------------------------------
    def fail(self, tenant: str, times: int = 0, always: bool = False) -> None:
        self._plans[tenant] = _FailurePlan(times, always)

    def heal(self, tenant: str) -> None:
        self._plans.pop(tenant, None)

    def accepted(self, tenant: str | None = None) -> list[ReceivedWebhook]:
        """Verified deliveries answered 2xx (what a marketplace would have processed)."""
        return [
            d
            for d in self.deliveries
            if d.verified and 200 <= d.status < 300 and (tenant is None or d.tenant == tenant)
        ]

    # ---- HTTP ------------------------------------------------------------------------
    def _verify(self, request: Request, body: bytes) -> str | None:
        key_id = request.headers.get("x-handoff-key-id")
        secret = self.keys.get(key_id or "")
        if secret is None:
            return f"unknown key id {key_id!r}"
        timestamp = request.headers.get("x-handoff-timestamp", "")
        offered = request.headers.get("x-handoff-signature", "")
        if not timestamp.isdigit():
            return "missing or malformed X-Handoff-Timestamp"
        if abs(self.clock() - int(timestamp)) > self.tolerance_s:
            return "timestamp outside the replay window"
        good = expected_signature(secret, timestamp, body)
        if not any(hmac.compare_digest(good, s.strip()) for s in offered.split(",")):
            return "signature mismatch"
        if not request.headers.get("idempotency-key"):
            return "missing Idempotency-Key"
        return None

    async def _hook(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        body = await request.body()
        problem = self._verify(request, body)
        status = 401 if problem else 200
        plan = self._plans.get(tenant)
        if problem is None and plan is not None and (plan.always or plan.remaining > 0):
            status = 503
            plan.remaining = max(0, plan.remaining - 1)
        event_type = None
        with contextlib.suppress(ValueError, AttributeError):
            event_type = json.loads(body).get("type")
        self.deliveries.append(
            ReceivedWebhook(
                tenant=tenant,
                idempotency_key=request.headers.get("idempotency-key"),
                key_id=request.headers.get("x-handoff-key-id"),
                verified=problem is None,
                problem=problem,
                status=status,
                body=body,
                event_type=event_type,
                received_at=time.time(),
                headers=dict(request.headers),
            )
        )
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if problem:
            return JSONResponse({"error": problem}, status)
        if status != 200:
            return JSONResponse({"error": "failing on purpose"}, status)
        return JSONResponse({"received": True})

    async def _control(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        spec = json.loads(await request.body() or b"{}")
        if spec.get("always_fail") or spec.get("fail_times"):
            self.fail(tenant, int(spec.get("fail_times", 0)), bool(spec.get("always_fail")))
        else:
            self.heal(tenant)
        return JSONResponse(
            {"tenant": tenant, "plan": asdict(self._plans.get(tenant, _FailurePlan()))}
        )

    async def _list(self, request: Request) -> Response:
        return JSONResponse(
            [
                {**{k: v for k, v in asdict(d).items() if k != "body"}, "body": d.body.decode()}
                for d in self.deliveries
            ]
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hooks/{tenant}", self._hook, methods=["POST"]),
                Route("/_control/{tenant}", self._control, methods=["POST"]),
                Route("/deliveries", self._list, methods=["GET"]),
            ]
        )


@dataclass
class RunningServer:
    """A uvicorn server started in the current event loop (tests, local dev)."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def start_http(app: Any, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve `app` in the background; port 0 picks a free one (read it from `.port`)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    # embedded in someone else's event loop: leave their signal handling alone
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises the bind error
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return RunningServer(server, task, int(bound))


def _parse_keys(items: list[str]) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for item in items:
        key_id, sep, secret = item.partition("=")
        if not sep:
            raise SystemExit(f"--key {item!r}: use KEY_ID=SECRET")
        keys[key_id] = secret.encode()
    return keys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m handoff_sim.webhook_receiver",
        description="A local marketplace webhook receiver that verifies Handoff signatures.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY_ID=SECRET",
        help="accepted signing keys (default: the development keys)",
    )
    args = parser.parse_args(argv)
    receiver = WebhookReceiver(keys=_parse_keys(args.key) if args.key else dict(DEV_KEYS))
    uvicorn.run(receiver.app(), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
