"""A local SMTP server (aiosmtpd) that keeps every message as an .eml file.

Point the notifications service at it (`HANDOFF_SMTP_PORT=2525`) and read the
mail in `.run/mail/` with any mail client or a text editor. Tests embed it
(`SmtpSink(directory, port=0)`, then `await sink.start()`) and inspect
`sink.messages`; `sink.fail_next(n)` answers the next n messages with a
temporary 451 error.

    python -m handoff_sim.smtp_sink --dir .run/mail --port 2525
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]+")


@dataclass
class ReceivedMail:
    path: Path
    mail_from: str
    rcpt_to: list[str]
    message: EmailMessage
    received_at: float
    """time.time() when the DATA command completed."""

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"] or "")

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    def body(self, subtype: str = "plain") -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return "" if part is None else str(part.get_content())


@dataclass
class SmtpSink:
    directory: Path
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[ReceivedMail] = field(default_factory=list)
    delay_s: float = 0.0
    """Answer each message this much later (a slow server: crash tests kill mid-send)."""
    _fail_remaining: int = 0
    _server: asyncio.Server | None = None

    def fail_next(self, times: int) -> None:
        self._fail_remaining = times

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._fail_remaining > 0:
            self._fail_remaining -= 1
            return "451 4.3.0 Temporary failure, try again later"
        raw: bytes = envelope.original_content or b""
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        ident = _UNSAFE.sub("_", str(message["Message-ID"] or "no-id").strip("<>"))[:80]
        path = self.directory / f"{len(self.messages) + 1:05d}-{ident}.eml"
        path.write_bytes(raw)
        self.messages.append(
            ReceivedMail(
                path=path,
                mail_from=str(envelope.mail_from),
                rcpt_to=[str(r) for r in envelope.rcpt_tos],
                message=message,
                received_at=time.time(),
            )
        )
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return "250 2.0.0 Message accepted for delivery"

    async def start(self) -> int:
        """Listen (port 0 = any free port); returns the bound port."""
        self.directory.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()

        def protocol() -> Any:
            return SMTP(self, hostname="handoff-smtp-sink", ident="Handoff SMTP sink")

        self._server = await loop.create_server(protocol, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def by_message_id(self) -> dict[str, list[ReceivedMail]]:
        out: dict[str, list[ReceivedMail]] = {}
        for mail in self.messages:
            out.setdefault(mail.message_id, []).append(mail)
        return out


async def _serve(directory: Path, host: str, port: int) -> None:
    sink = SmtpSink(directory, host, port)
    bound = await sink.start()
    print(f"SMTP sink on {host}:{bound}, writing .eml files to {directory}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sink.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m handoff_sim.smtp_sink",
        description="A local SMTP server that stores every message as an .eml file.",
    )
    parser.add_argument("--dir", type=Path, default=Path(".run/mail"), help="where .eml files go")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.dir, args.host, args.port))


if __name__ == "__main__":
    main()
