"""A fake SMS provider HTTP API: stores messages, deduplicates on client reference, can fail.

`POST /v1/messages` (bearer key) with `{"to", "from", "text", "client_reference"}`
answers 201 with a message id; a repeated `client_reference` answers 200 with the
first message's id (as real providers do) and counts a duplicate.
`POST /_control` with `{"fail_times": N}` / `{"always_fail": true}` / `{}` makes
it answer 503; `GET /v1/messages` lists what was stored.

    python -m handoff_sim.sms_provider --port 8092 --api-key dev-sms-key
"""

from __future__ import annotations

import argparse
import hmac
import json
import time
from dataclasses import asdict, dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class StoredSms:
    message_id: str
    to: str
    sender: str
    text: str
    client_reference: str | None
    received_at: float


@dataclass
class FakeSmsProvider:
    api_key: str = "dev-sms-key"
    messages: list[StoredSms] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    """Client references that arrived again (a re-send the provider absorbed)."""
    fail_remaining: int = 0
    always_fail: bool = False

    def fail(self, times: int = 0, always: bool = False) -> None:
        self.fail_remaining, self.always_fail = times, always

    async def _send(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.api_key}".encode()):
            return JSONResponse({"error": "unauthorized"}, 401)
        if self.always_fail or self.fail_remaining > 0:
            self.fail_remaining = max(0, self.fail_remaining - 1)
            return JSONResponse({"error": "temporarily unavailable"}, 503)
        try:
            doc = json.loads(await request.body())
            to, text = str(doc["to"]), str(doc["text"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "need to and text"}, 422)
        if not to.startswith("+") or not to[1:].isdigit():
            return JSONResponse({"error": "to must be E.164", "field": "to"}, 422)
        reference = doc.get("client_reference")
        for stored in self.messages:
            if reference and stored.client_reference == reference:
                self.duplicates.append(reference)
                return JSONResponse({"message_id": stored.message_id, "duplicate": True}, 200)
        message = StoredSms(
            message_id=f"sms-{len(self.messages) + 1}",
            to=to,
            sender=str(doc.get("from", "")),
            text=text,
            client_reference=reference,
            received_at=time.time(),
        )
        self.messages.append(message)
        return JSONResponse({"message_id": message.message_id}, 201)

    async def _list(self, request: Request) -> Response:
        return JSONResponse([asdict(m) for m in self.messages])

    async def _control(self, request: Request) -> Response:
        spec = json.loads(await request.body() or b"{}")
        self.fail(int(spec.get("fail_times", 0)), bool(spec.get("always_fail", False)))
        return JSONResponse(
            {"fail_remaining": self.fail_remaining, "always_fail": self.always_fail}
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/messages", self._send, methods=["POST"]),
                Route("/v1/messages", self._list, methods=["GET"]),
                Route("/_control", self._control, methods=["POST"]),
            ]
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m handoff_sim.sms_provider",
        description="A fake SMS provider for local development and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8092)
    parser.add_argument("--api-key", default="dev-sms-key")
    args = parser.parse_args(argv)
    uvicorn.run(FakeSmsProvider(api_key=args.api_key).app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
