"""PagerDuty, Teams, Telegram and Discord channels, each against a local HTTP receiver that
checks the request the service documents (method, path, headers, JSON fields)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from fastapi import HTTPException
from pydantic import ValidationError

from cpwatch.settings import Settings
from notify import discord, pagerduty, teams, telegram
from notify.delivery import Attempt, RetryPolicy
from notify.lifecycle import LifecycleTracker, Notification
from notify.senders import Senders
from notify.subscriptions import MASK, Subscription
from notify.webhook import WebhookConfig, WebhookSender
from streams.alerts import Alert

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
T0 = datetime(2024, 3, 5, 12, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=3, base_s=0.001, cap_s=60.0)
LOCAL = WebhookConfig(connect_timeout_s=2, read_timeout_s=5, retry=FAST, allowlist=("127.0.0.1",))
EVENT = {"id": "e1", "title": "<b>Law</b> & [order](http://x) @everyone", "url": "https://x.org/a"}


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """Answers each request with the next queued (status, json body, headers); 200 after."""

    replies: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.seen.append(
            Seen(
                request.method,
                request.path,
                request.query_string,
                dict(request.headers),
                json.loads(raw),
            )
        )
        status, body, headers = self.replies.pop(0) if self.replies else (200, {"ok": True}, {})
        text = None if body is None else json.dumps(body)
        ctype = None if body is None else "application/json"
        return web.Response(status=status, text=text, content_type=ctype, headers=headers)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def receiver(*replies: tuple[int, Any, dict[str, str]]) -> AsyncIterator[Receiver]:
    rec = Receiver(list(replies))
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.port = runner.addresses[0][1]
    try:
        yield rec
    finally:
        await runner.cleanup()


def channel_sub(channel: dict[str, Any], **kw: Any) -> Subscription:
    return Subscription.model_validate({"name": "ops", "channel": channel, **kw})


def alert(direction: str, hours: int) -> Alert:
    return Alert("lvl", "acme", T0 + timedelta(hours=hours), direction, 9e8, 1e9, 6e4, 15e3)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ---------------------------------------------------------------- PagerDuty


def test_pagerduty_triggers_then_resolves_the_incident_by_fingerprint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    delays: list[float] = []

    async def sleep(s: float) -> None:
        delays.append(s)

    accepted = (202, {"status": "success", "message": "Event processed"}, {})
    busy = (429, {"status": "throttle"}, {"Retry-After": "4"})

    async def main() -> tuple[Receiver, list[Any], list[Attempt]]:
        async with receiver(accepted, busy, accepted, accepted) as rec:
            ch = {"type": "pagerduty", "routing_key": ROUTING_KEY, "url": f"{rec.base}/v2/enqueue"}
            sub = channel_sub(ch, filters={"holders": ["acme"]})
            tracker = LifecycleTracker([sub], {"lvl": "level"})
            fired = tracker.observe(alert("down", 0), T0)  # opens the "down" incident
            recovered = tracker.observe(alert("up", 1), T0 + timedelta(hours=1))
            assert [n.kind for n in fired] == ["firing"]
            assert [n.kind for n in recovered] == ["resolved", "firing"]
            sender = WebhookSender(LOCAL, sleep=sleep)
            seen: list[Attempt] = []
            results = [
                await pagerduty.send(
                    sender,
                    sub.channel,
                    items,
                    delivery_id=f"d{i}",
                    on_attempt=seen.append,
                )
                for i, items in enumerate([fired, recovered])
            ]
            await sender.aclose()
            return rec, results, seen

    rec, (first, second), hooked = run(main())
    assert first.delivered and second.delivered
    # Resolve (throttled once) and trigger: attempt numbers stay unique within the delivery.
    assert [a.status for a in second.attempts] == [429, 202, 202]
    assert [a.n for a in second.attempts] == [1, 2, 3] and [a.n for a in hooked] == [1, 1, 2, 3]
    assert delays == [4.0]  # Retry-After honoured
    assert len(rec.seen) == 4
    for s in rec.seen:
        assert (s.method, s.path) == ("POST", "/v2/enqueue")
        assert s.headers["Content-Type"] == "application/json"
        assert s.body["routing_key"] == ROUTING_KEY
    down = alert("down", 0).fingerprint
    trigger, resolve = rec.seen[0].body, rec.seen[2].body
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == down
    payload = trigger["payload"]
    assert payload["severity"] == "error" and payload["source"] == "cpwatch"
    assert payload["summary"].startswith("[FIRING] acme: rule lvl crossed down")
    assert payload["timestamp"].startswith("2024-03-05T12:00:00")
    assert payload["component"] == "acme" and payload["class"] == "level"
    assert payload["custom_details"]["incident"] == down
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": down}
    up = rec.seen[3].body
    assert up["event_action"] == "trigger" and up["dedup_key"] == alert("up", 1).fingerprint
    assert ROUTING_KEY not in caplog.text


def test_pagerduty_event_and_final_400() -> None:
    ch = channel_sub({"type": "pagerduty", "routing_key": ROUTING_KEY, "severity": "info"})
    body = pagerduty.event(ch.channel, EVENT)
    assert body["dedup_key"] == "cpwatch-event-e1" and body["payload"]["severity"] == "info"
    assert body["links"] == [{"href": "https://x.org/a", "text": "source"}]

    async def main() -> Any:
        async with receiver((400, {"status": "invalid event"}, {})) as rec:
            url = f"{rec.base}/v2/enqueue"
            sub = channel_sub({"type": "pagerduty", "routing_key": ROUTING_KEY, "url": url})
            sender = WebhookSender(LOCAL)
            r = await pagerduty.send(sender, sub.channel, [EVENT, EVENT], delivery_id="x")
            await sender.aclose()
            return r, len(rec.seen)

    result, hits = run(main())
    assert not result.delivered and hits == 1 and result.last_error == "HTTP 400"


# ---------------------------------------------------------------- Teams


def test_teams_posts_an_adaptive_card_to_the_workflow_url() -> None:
    n = Notification("s", "resolved", alert("up", 1), alert("down", 0).fingerprint, T0)

    async def main() -> Any:
        async with receiver((202, None, {})) as rec:
            url = f"{rec.base}/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=SIG"
            sub = channel_sub({"type": "teams", "url": url})
            sender = WebhookSender(LOCAL)
            r = await teams.send(sender, sub.channel, [n, EVENT], delivery_id="t")
            await sender.aclose()
            return r, rec.seen

    result, seen = run(main())
    assert result.delivered and [a.status for a in result.attempts] == [202]
    s = seen[0]
    assert (s.method, s.path) == ("POST", "/workflows/abc/triggers/manual/paths/invoke")
    assert s.query == "api-version=1&sig=SIG" and s.headers["Content-Type"] == "application/json"
    assert s.body["type"] == "message" and len(s.body["attachments"]) == 1
    attachment = s.body["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0]["text"] == "cpwatch digest: 2 notifications"
    runs = [b["inlines"][0] for b in card["body"] if b["type"] == "RichTextBlock"]
    assert runs[0]["text"].startswith("[RESOLVED] acme")
    assert runs[1]["text"] == f"[EVENT] {EVENT['title']}"  # a TextRun: shown as typed
    assert runs[1]["selectAction"] == {"type": "Action.OpenUrl", "url": "https://x.org/a"}
    facts = [b for b in card["body"] if b["type"] == "FactSet"][0]["facts"]
    assert {"title": "BTC held", "value": "15,000.0000"} in facts


def test_teams_digest_is_capped() -> None:
    card = teams.payload([{"id": str(i), "title": f"t{i}"} for i in range(50)])
    body = card["attachments"][0]["content"]["body"]
    assert sum(b["type"] == "RichTextBlock" for b in body) == teams.ITEMS_PER_CARD
    assert body[-1]["text"] == "…and 30 more"


# ---------------------------------------------------------------- Telegram


def test_telegram_send_message_and_429_retry_after() -> None:
    delays: list[float] = []

    async def sleep(s: float) -> None:
        delays.append(s)

    throttled = (429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 3}}, {})

    async def main() -> Any:
        async with receiver(throttled) as rec:
            ch = {
                "type": "telegram",
                "bot_token": BOT_TOKEN,
                "chat_id": "-1001234",
                "api_base": rec.base,
            }
            sub = channel_sub(ch)
            sender = WebhookSender(LOCAL, sleep=sleep)
            r = await telegram.send(sender, sub.channel, [EVENT], delivery_id="tg")
            await sender.aclose()
            return r, rec.seen

    result, seen = run(main())
    assert result.delivered and [a.status for a in result.attempts] == [429, 200]
    assert delays == [3.0]
    s = seen[-1]
    assert (s.method, s.path) == ("POST", f"/bot{BOT_TOKEN}/sendMessage")
    assert s.headers["Content-Type"] == "application/json"
    assert s.body["chat_id"] == -1001234 and s.body["parse_mode"] == "HTML"
    assert s.body["text"] == (
        '<b><a href="https://x.org/a">[EVENT] &lt;b&gt;Law&lt;/b&gt; &amp; [order](http://x)'
        " @everyone</a></b>"
    )
    assert BOT_TOKEN not in repr(result)


def test_telegram_token_never_in_recorded_errors() -> None:
    async def main() -> Any:
        sub = channel_sub(
            {
                "type": "telegram",
                "bot_token": BOT_TOKEN,
                "chat_id": "@ops_room",
                "api_base": "http://127.0.0.1:9",
            }
        )
        seen: list[Attempt] = []
        sender = WebhookSender(WebhookConfig(retry=FAST))  # loopback not allowlisted: refused
        r = await telegram.send(
            sender, sub.channel, [EVENT], delivery_id="z", on_attempt=seen.append
        )
        await sender.aclose()
        return r, seen

    result, seen = run(main())
    assert not result.delivered and (result.last_error or "").startswith("refused")
    assert BOT_TOKEN not in repr(result) + repr(seen)
    assert telegram.method_url(
        channel_sub({"type": "telegram", "bot_token": BOT_TOKEN, "chat_id": 5}).channel
    ).startswith("https://api.telegram.org/bot123456789:")


def test_telegram_digest_fits_the_message_limit() -> None:
    events = [{"id": str(i), "title": "x" * 300} for i in range(40)]
    text = telegram.text(events)
    assert len(text) <= telegram.MAX_TEXT and text.endswith("more")
    assert len(telegram.text([{"id": "1", "title": "<" * 5000}])) <= telegram.MAX_TEXT


# ---------------------------------------------------------------- Discord


def test_discord_embeds_mentions_off_and_body_retry_after() -> None:
    delays: list[float] = []

    async def sleep(s: float) -> None:
        delays.append(s)

    limited = (
        429,
        {"message": "You are being rate limited.", "retry_after": 1.5, "global": False},
        {"Retry-After": "2"},
    )
    n = Notification("s", "firing", alert("down", 0), alert("down", 0).fingerprint, T0)

    async def main() -> Any:
        async with receiver(limited, (204, None, {})) as rec:
            sub = channel_sub({"type": "discord", "url": f"{rec.base}/api/webhooks/42/TOKEN"})
            sender = WebhookSender(LOCAL, sleep=sleep)
            r = await discord.send(sender, sub.channel, [n, EVENT], delivery_id="dc")
            await sender.aclose()
            return r, rec.seen

    result, seen = run(main())
    assert result.delivered and [a.status for a in result.attempts] == [429, 204]
    assert delays == [1.5]  # the body's retry_after, preferred to the rounded header
    s = seen[-1]
    assert (s.method, s.path) == ("POST", "/api/webhooks/42/TOKEN")
    assert s.headers["Content-Type"] == "application/json"
    body = s.body
    assert body["allowed_mentions"] == {"parse": []}
    assert body["content"] == "cpwatch digest: 2 notifications"
    first, second = body["embeds"]
    assert first["title"].startswith("[FIRING] acme") and first["color"] == 0xD73A49
    assert "**BTC price**: $60,000.00" in first["description"]
    assert second["url"] == "https://x.org/a" and second["title"] == f"[EVENT] {EVENT['title']}"
    assert discord.escape("[a](http://b)") == r"\[a\]\(http://b\)"


def test_discord_limits_and_unreadable_429_falls_back_to_header() -> None:
    events = [{"id": str(i), "title": "t" * 300, "categories": ["c" * 900]} for i in range(30)]
    body = discord.payload(events)
    sizes = sum(len(e["title"]) + len(e["description"]) for e in body["embeds"])
    assert len(body["embeds"]) <= discord.MAX_EMBEDS and sizes <= discord.MAX_EMBED_CHARS
    assert body["content"].endswith("more not shown)")
    assert "content" not in discord.payload([EVENT])

    delays: list[float] = []

    async def sleep(s: float) -> None:
        delays.append(s)

    async def main() -> Any:
        async with receiver((429, "not json", {"Retry-After": "2"})) as rec:
            sub = channel_sub({"type": "discord", "url": f"{rec.base}/api/webhooks/1/T"})
            sender = WebhookSender(LOCAL, sleep=sleep)
            r = await discord.send(sender, sub.channel, [EVENT], delivery_id="x")
            await sender.aclose()
            return r

    assert run(main()).delivered and delays == [2.0]


# ---------------------------------------------------------------- model, senders, API


@pytest.mark.parametrize(
    ("channel", "where"),
    [
        ({"type": "pagerduty"}, "channel.pagerduty.routing_key"),
        ({"type": "pagerduty", "routing_key": "short"}, "channel.pagerduty.routing_key"),
        (
            {"type": "pagerduty", "routing_key": ROUTING_KEY, "severity": "high"},
            "channel.pagerduty.severity",
        ),
        (
            {"type": "pagerduty", "routing_key": ROUTING_KEY, "url": "ftp://x/"},
            "channel.pagerduty.url",
        ),
        ({"type": "teams"}, "channel.teams.url"),
        ({"type": "teams", "url": "file:///etc/passwd"}, "channel.teams.url"),
        ({"type": "telegram", "bot_token": "nope", "chat_id": 1}, "channel.telegram.bot_token"),
        ({"type": "telegram", "bot_token": BOT_TOKEN}, "channel.telegram.chat_id"),
        (
            {"type": "telegram", "bot_token": BOT_TOKEN, "chat_id": "ops room"},
            "channel.telegram.chat_id",
        ),
        (
            {"type": "telegram", "bot_token": BOT_TOKEN, "chat_id": 1, "api_base": "x"},
            "channel.telegram.api_base",
        ),
        ({"type": "discord", "url": "discord.com/api/webhooks/1/x"}, "channel.discord.url"),
    ],
)
def test_invalid_channels_name_the_field(channel: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as err:
        channel_sub(channel)
    locs = {".".join(map(str, e["loc"])) for e in err.value.errors()}
    assert where in locs


def test_secrets_masked_stored_and_ids_stable() -> None:
    subs = [
        channel_sub({"type": "pagerduty", "routing_key": ROUTING_KEY}),
        channel_sub({"type": "telegram", "bot_token": BOT_TOKEN, "chat_id": "@ops_room"}),
        channel_sub({"type": "discord", "url": "https://discord.com/api/webhooks/42/SECRETTOKEN"}),
        channel_sub(
            {"type": "teams", "url": "https://x.logic.azure.com/workflows/w/invoke?sig=SIGSIG"}
        ),
    ]
    for sub, secret in zip(subs, (ROUTING_KEY, BOT_TOKEN, "SECRETTOKEN", "SIGSIG"), strict=True):
        public = json.dumps(sub.public_dict())
        assert secret not in public and secret not in repr(sub) and secret not in str(sub)
        doc = json.loads(json.dumps(sub.to_es_doc()))
        assert secret in json.dumps(doc["channel"])  # the sender needs it back
        assert Subscription.from_es_doc(doc) == sub
        assert ROUTING_KEY not in sub.id and channel_sub(sub.channel.model_dump()).id == sub.id
    assert subs[0].public_dict()["channel"]["routing_key"] == MASK
    assert subs[0].channel.endpoint_url == "https://events.pagerduty.com/v2/enqueue"
    assert subs[1].channel.endpoint_url == "https://api.telegram.org"
    assert subs[1].public_dict()["channel"]["bot_token"] == MASK


def test_senders_route_each_new_channel_through_the_webhook_sender() -> None:
    settings = Settings(delivery_ssrf_allowlist="127.0.0.1", delivery_max_attempts=1)

    async def main() -> Any:
        async with receiver() as rec:
            subs = [
                channel_sub(
                    {
                        "type": "pagerduty",
                        "routing_key": ROUTING_KEY,
                        "url": f"{rec.base}/v2/enqueue",
                    }
                ),
                channel_sub({"type": "teams", "url": f"{rec.base}/workflows/w"}),
                channel_sub(
                    {"type": "telegram", "bot_token": BOT_TOKEN, "chat_id": 7, "api_base": rec.base}
                ),
                channel_sub({"type": "discord", "url": f"{rec.base}/api/webhooks/1/T"}),
            ]
            senders = Senders.from_settings(settings)
            out = []
            for sub in subs:
                d = senders.delivery(sub, f"d-{sub.channel.type}", [EVENT], settings)
                out.append((d.endpoint, (await d.send(lambda _a: None)).delivered))
            await senders.aclose()
            return rec, out

    rec, out = run(main())
    assert out == [(f"127.0.0.1:{rec.port}", True)] * 4
    assert [s.path for s in rec.seen] == [
        "/v2/enqueue",
        "/workflows/w",
        f"/bot{BOT_TOKEN}/sendMessage",
        "/api/webhooks/1/T",
    ]


def test_api_ssrf_checks_the_telegram_api_base() -> None:
    from api.routes_subscriptions import _validated

    body = {
        "name": "x",
        "channel": {
            "type": "telegram",
            "bot_token": BOT_TOKEN,
            "chat_id": 1,
            "api_base": "http://10.0.0.1",
        },
    }
    with pytest.raises(HTTPException) as err:
        run(_validated(body, Settings()))
    assert err.value.status_code == 422 and "10.0.0.1" in str(err.value.detail)
    ok = {**body, "channel": {**body["channel"], "api_base": "http://127.0.0.1:1"}}
    assert (
        run(_validated(ok, Settings(delivery_ssrf_allowlist="127.0.0.1"))).channel.type
        == "telegram"
    )


def test_a_webhook_url_with_an_impossible_port_is_refused_clearly() -> None:
    import pytest
    from pydantic import ValidationError

    from notify.subscriptions import Subscription

    for url in ("https://[::1]:99999/", "https://hooks.example.org:http/"):
        body = {"name": "p", "query": "bitcoin", "channel": {"type": "webhook", "url": url}}
        with pytest.raises(ValidationError, match="port"):
            Subscription.model_validate(body)
