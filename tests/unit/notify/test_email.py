from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from cpwatch.exceptions import ConfigError
from notify.delivery import RetryPolicy
from notify.email import EmailSender, SmtpConfig, build_message
from notify.lifecycle import Notification
from streams.alerts import Alert
from tests.conftest import free_port

FAST = RetryPolicy(max_attempts=3, base_s=0.001, cap_s=0.01)
TS = datetime(2024, 3, 5, tzinfo=UTC)
ALERT = Alert("below-cost", "acme", TS, "down", 9e8, 1e9, 6e4, 15e3)
NOTE = Notification("sub", "firing", ALERT, ALERT.fingerprint, TS)
EVENT = {
    "id": "e1",
    "title": "Ban <script>x</script>\r\nBcc: victim@x.org",
    "url": "https://news.example/a",
    "countries": ["CN"],
    "severity": 0.9,
}


class Capture:
    """aiosmtpd handler: answers queued replies first, then accepts and keeps each message."""

    def __init__(self, replies: tuple[str, ...] = ()) -> None:
        self.replies = list(replies)
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        msg = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.rcpt_tos, msg))
        return "250 OK"


def smtp_server(handler: Capture, **kw: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kw)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def capture() -> Capture:
    return Capture()


@pytest.fixture
def plain(capture: Capture) -> Iterator[int]:
    yield from smtp_server(capture)


def plain_config(port: int, **kw: Any) -> SmtpConfig:
    return SmtpConfig(port=port, starttls=False, from_address="cpwatch@test", retry=FAST, **kw)


def send(sender: EmailSender, items: list[Any], did: str = "d1") -> Any:
    return asyncio.run(sender.send("ops@example.org", items, delivery_id=did))


def test_digest_delivered_as_text_and_html(capture: Capture, plain: int) -> None:
    result = send(EmailSender(plain_config(plain)), [NOTE, EVENT])
    assert result.delivered and [a.status for a in result.attempts] == [250]
    ((rcpts, msg),) = capture.messages
    assert rcpts == ["ops@example.org"] and msg["From"] == "cpwatch@test"
    assert msg["Subject"] == "cpwatch digest: 2 items" and msg["Message-ID"] == "<d1@cpwatch>"
    assert msg["Bcc"] is None  # a news title cannot inject headers
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "[FIRING] acme: rule below-cost crossed down $1,000,000,000" in text
    assert "link: https://news.example/a" in text
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert '<a href="https://news.example/a">' in html


def test_subject_of_a_single_item_is_sanitised() -> None:
    msg = build_message("a@test", "b@test", [EVENT], delivery_id="x")
    assert "\n" not in msg["Subject"] and msg["Subject"].startswith("[EVENT] Ban <script>")


def test_temporary_smtp_failure_retried_permanent_not() -> None:
    flaky, refusing = Capture(("451 4.3.0 try later",)), Capture(("550 5.1.1 no such user",))
    for handler, expected in ((flaky, [451, 250]), (refusing, [550])):
        for port in smtp_server(handler):
            result = send(EmailSender(plain_config(port)), [NOTE])
            assert [a.status for a in result.attempts] == expected
            assert result.delivered == (expected[-1] == 250)
    assert len(flaky.messages) == 1 and not refusing.messages


def test_dead_server_retried_then_given_up() -> None:
    result = send(EmailSender(plain_config(free_port())), [NOTE])
    assert not result.delivered and len(result.attempts) == FAST.max_attempts
    assert all(a.retryable and "Connection" in (a.error or "") for a in result.attempts)


def test_starttls_required_but_not_offered_is_final(capture: Capture, plain: int) -> None:
    config = SmtpConfig(port=plain, starttls=True, retry=FAST)
    result = send(EmailSender(config), [NOTE])
    assert not result.delivered and len(result.attempts) == 1
    assert "SMTPNotSupportedError" in (result.last_error or "") and not capture.messages


def test_auth_without_tls_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs starttls or ssl"):
        SmtpConfig(starttls=False, username="bot", password=SecretStr("pw"))
    with pytest.raises(ConfigError, match="not both"):
        SmtpConfig(starttls=True, ssl=True)


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI needed to make a test certificate")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


def test_starttls_and_auth(cert: tuple[Path, Path]) -> None:
    crt, key = cert
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(crt, key)
    logins: list[bytes] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"bot", b"hunter2")
        logins.append(data.login)
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd replies 535

    handler = Capture()
    for port in smtp_server(
        handler,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    ):
        config = SmtpConfig(
            port=port, username="bot", password=SecretStr("hunter2"), retry=FAST, timeout_s=5
        )
        trusted = EmailSender(config, tls_context=ssl.create_default_context(cafile=str(crt)))
        assert send(trusted, [NOTE]).delivered
        # A certificate we do not trust is a final failure, not something to retry.
        untrusted = send(EmailSender(config), [NOTE], did="d2")
        assert not untrusted.delivered and len(untrusted.attempts) == 1
        wrong = SmtpConfig(
            port=port, username="bot", password=SecretStr("no"), retry=FAST, timeout_s=5
        )
        denied = send(EmailSender(wrong, tls_context=trusted._tls), [NOTE], did="d3")
        assert not denied.delivered and denied.attempts[0].status == 535
    assert set(logins) == {b"bot"} and len(handler.messages) == 1  # smtplib tries 2 mechanisms
    assert "hunter2" not in repr(config)
