"""Telegram through a bot's ``sendMessage`` (HTML parse mode).

Settings are the channel's: bot token (secret), chat id (a number, or ``@channel``) and the
API base (``TELEGRAM_API`` unless a self-hosted Bot API server). The token is part of the
request path, so it is scrubbed from every recorded attempt. Timeouts, retries and the SSRF
guard are the shared ``WebhookSender``'s; a 429's ``parameters.retry_after`` is honoured.
"""

from __future__ import annotations

import html
import json
from dataclasses import replace
from typing import Any

from notify.delivery import Attempt, AttemptHook, DeliveryResult, Item, Summary, summarize
from notify.subscriptions import MASK, TelegramChannel
from notify.webhook import WebhookSender

MAX_TEXT = 4096  # Telegram's limit per message


def method_url(channel: TelegramChannel, method: str = "sendMessage") -> str:
    token = channel.bot_token.get_secret_value()
    return f"{channel.api_base.rstrip('/')}/bot{token}/{method}"


def _block(s: Summary) -> str:
    title = html.escape(s.title, quote=False)
    if s.link and s.link.startswith(("http://", "https://")):
        title = f'<a href="{html.escape(s.link)}">{title}</a>'
    lines = [f"<b>{title}</b>"] + [
        f"• {html.escape(k, quote=False)}: {html.escape(v, quote=False)}" for k, v in s.facts
    ]
    return "\n".join(lines)


def text(items: list[Item], *, title: str | None = None) -> str:
    """HTML text for one item or a digest, whole items only, within ``MAX_TEXT``."""
    if not items:
        raise ValueError("a message needs at least one item")
    parts: list[str] = []
    if len(items) > 1 or title is not None:
        heading = title or f"cpwatch digest: {len(items)} notifications"
        parts.append(f"<b>{html.escape(heading, quote=False)}</b>")
    room, used, shown = MAX_TEXT - 40, sum(len(p) for p in parts), 0  # 40: the "more" line
    for item in items:
        block = _block(summarize(item))
        if used + len(block) + 2 > room:
            break
        parts.append(block)
        used, shown = used + len(block) + 2, shown + 1
    if shown == 0:  # one oversized item: its headline alone, cut before escaping (x5 at most)
        parts.append(f"<b>{html.escape(summarize(items[0]).title[:700], quote=False)}</b>")
        shown = 1
    if shown < len(items):
        parts.append(f"…and {len(items) - shown} more")
    return "\n\n".join(parts)


def retry_after(body: bytes) -> float | None:
    """A 429 reply: ``{"ok": false, "parameters": {"retry_after": 5}, ...}``."""
    data = json.loads(body)
    params = data.get("parameters") if isinstance(data, dict) else None
    value = params.get("retry_after") if isinstance(params, dict) else None
    return float(value) if isinstance(value, int | float) else None


async def send(
    sender: WebhookSender,
    channel: TelegramChannel,
    items: list[Item],
    *,
    delivery_id: str,
    on_attempt: AttemptHook | None = None,
) -> DeliveryResult:
    token = channel.bot_token.get_secret_value()

    def scrub(a: Attempt) -> Attempt:
        # An error message could quote the URL, and with it the token.
        return replace(a, error=a.error.replace(token, MASK)) if a.error else a

    def hook(a: Attempt) -> None:
        if on_attempt is not None:
            on_attempt(scrub(a))

    body: dict[str, Any] = {
        "chat_id": channel.chat_id,
        "text": text(items),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    result = await sender.send(
        method_url(channel), body, delivery_id=delivery_id, on_attempt=hook, retry_hint=retry_after
    )
    result.attempts = [scrub(a) for a in result.attempts]
    return result
