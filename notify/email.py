"""Email delivery with the standard library's ``smtplib``, run in a thread.

Settings needed (see ``SmtpConfig``): host, port, starttls or implicit TLS, username and
password (``SecretStr``), from address, timeout, retry policy. Authentication is refused
without TLS: the password would cross the network in clear. SMTP 4xx replies and connection
errors are retried; 5xx replies (bad recipient, message refused) are not.
"""

from __future__ import annotations

import asyncio
import html
import random
import re
import smtplib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime

from pydantic import SecretStr

from cpwatch.exceptions import ConfigError
from cpwatch.records import utcnow
from notify.delivery import (
    Attempt,
    AttemptHook,
    DeliveryResult,
    Item,
    RetryPolicy,
    summarize,
    timed,
    with_retries,
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 587
    starttls: bool = True
    ssl: bool = False  # implicit TLS (usually port 465) instead of STARTTLS
    username: str | None = None
    password: SecretStr | None = None
    from_address: str = "cpwatch@localhost"
    timeout_s: float = 10.0
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=3))

    def __post_init__(self) -> None:
        if self.starttls and self.ssl:
            raise ConfigError("SMTP: choose starttls or ssl, not both")
        if self.username and not (self.starttls or self.ssl):
            raise ConfigError("SMTP: authentication needs starttls or ssl")


def _header(text: str, limit: int = 200) -> str:
    """No CR/LF from news titles in headers (header injection); keep subjects short."""
    return _CONTROL.sub(" ", text).strip()[:limit]


def build_message(
    sender: str, to: str, items: list[Item], *, delivery_id: str, subject: str | None = None
) -> EmailMessage:
    """Plain text and HTML alternatives of one item or a digest."""
    summaries = [summarize(i) for i in items]
    if subject is None:
        subject = summaries[0].title if len(items) == 1 else f"cpwatch digest: {len(items)} items"
    text: list[str] = []
    parts: list[str] = []
    for s in summaries:
        text += [s.title] + [f"  {k}: {v}" for k, v in s.facts]
        title = html.escape(s.title)
        if s.link and s.link.startswith(("http://", "https://")):
            title = f'<a href="{html.escape(s.link, quote=True)}">{title}</a>'
            text.append(f"  link: {s.link}")
        text.append("")
        facts = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in s.facts)
        parts.append(f"<h3>{title}</h3><ul>{facts}</ul>")
    msg = EmailMessage()
    msg["Subject"] = _header(subject)
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = f"<{delivery_id}@cpwatch>"  # the same on retries: MTAs can dedupe
    msg.set_content("\n".join(text))
    msg.add_alternative(f"<html><body>{''.join(parts)}</body></html>", subtype="html")
    return msg


def _classify(exc: Exception) -> tuple[int | None, bool]:
    """(SMTP code, retryable) of a failure."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return (codes[0] if codes else None), all(400 <= c < 500 for c in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code, 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
        return None, False  # no STARTTLS offered, or a bad certificate: retrying won't help
    return None, isinstance(exc, OSError)  # refused, reset, timed out (SMTPServerDisconnected)


class EmailSender:
    def __init__(
        self,
        config: SmtpConfig,
        *,
        tls_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._tls = tls_context or ssl.create_default_context()
        self._sleep, self._rng = sleep, rng

    async def send(
        self, to: str, items: list[Item], *, delivery_id: str, on_attempt: AttemptHook | None = None
    ) -> DeliveryResult:
        msg = build_message(self.config.from_address, to, items, delivery_id=delivery_id)

        async def attempt(n: int) -> tuple[Attempt, float | None]:
            start = time.perf_counter()
            try:
                await asyncio.to_thread(self._send_sync, msg)
            except Exception as exc:  # classified below; never re-raised into the dispatcher
                code, retryable = _classify(exc)
                error = f"{type(exc).__name__}: {exc}"[:500]
                return Attempt(n, code, timed(start), error, retryable=retryable), None
            return Attempt(n, 250, timed(start)), None

        return await with_retries(
            delivery_id,
            attempt,
            self.config.retry,
            on_attempt=on_attempt,
            sleep=self._sleep,
            rng=self._rng,
        )

    def _send_sync(self, msg: EmailMessage) -> None:
        c = self.config
        smtp: smtplib.SMTP
        if c.ssl:
            smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_s, context=self._tls)
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
        with smtp:
            if c.starttls:
                smtp.starttls(context=self._tls)
            if c.username and c.password is not None:
                smtp.login(c.username, c.password.get_secret_value())
            smtp.send_message(msg)
