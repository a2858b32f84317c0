"""E-mail over SMTP (aiosmtplib): STARTTLS/implicit TLS and auth as configured.

The Message-ID is derived from the notification id, so a message re-sent after
a crash carries the same Message-ID and the receiving side (or the customer's
mail client) can recognise the duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from handoff_notifications.adapters.outcome import SendResult
from handoff_notifications.adapters.templates import RenderedEmail


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 2525
    starttls: bool = False
    implicit_tls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0
    message_id_domain: str = "notifications.handoff.dev"
    sender_instance: str = ""
    """Which service instance sent a message (a trace header: tells a re-send after a crash
    from a double send by one instance when a duplicate is investigated)."""


def message_id(notification_id: str, domain: str) -> str:
    return f"<{notification_id}@{domain}>"


def build_message(
    config: SmtpConfig,
    *,
    sender: str,
    recipient: str,
    rendered: RenderedEmail,
    notification_id: str,
    now: datetime,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = rendered.subject
    msg["Message-ID"] = message_id(notification_id, config.message_id_domain)
    msg["Date"] = format_datetime(now)
    msg["X-Handoff-Notification-Id"] = notification_id
    if config.sender_instance:
        msg["X-Handoff-Sender-Instance"] = config.sender_instance
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to us
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


class SmtpMailer:
    def __init__(self, config: SmtpConfig):
        self.config = config

    async def send(self, message: EmailMessage) -> SendResult:
        cfg = self.config
        try:
            errors, response = await aiosmtplib.send(
                message,
                hostname=cfg.host,
                port=cfg.port,
                username=cfg.username,
                password=cfg.password,
                start_tls=cfg.starttls,
                use_tls=cfg.implicit_tls,
                timeout=cfg.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if all(500 <= c < 600 for c in codes):
                return SendResult.rejected(f"recipient refused {codes}")
            return SendResult.transient(f"recipient deferred {codes}")
        except aiosmtplib.SMTPResponseException as exc:
            text = f"SMTP {exc.code} {exc.message}"
            return (
                SendResult.rejected(text) if 500 <= exc.code < 600 else SendResult.transient(text)
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return SendResult.transient(f"{type(exc).__name__}: {exc}")
        if errors:
            return SendResult.rejected(f"refused: {sorted(errors)}")
        return SendResult.sent(response[:120])
