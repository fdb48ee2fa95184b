"""Discord through a channel webhook: one embed per item, ``content`` heading a digest.

The webhook URL is the channel's only setting (its path carries the token); sending goes
through ``WebhookSender`` unsigned, like Slack. Discord's limits are kept (10 embeds, 6,000
embed characters, 2,000 for ``content``), mentions in user text never ping anyone
(``allowed_mentions``), and a 429's JSON ``retry_after`` (seconds) sets the next wait.
"""

from __future__ import annotations

import json
import re
from typing import Any

from notify.delivery import AttemptHook, DeliveryResult, Item, Summary, summarize
from notify.lifecycle import Notification
from notify.subscriptions import DiscordChannel
from notify.webhook import WebhookSender

MAX_EMBEDS = 10
MAX_EMBED_CHARS = 6000  # title + description over all embeds of a message
MAX_TITLE = 256
MAX_DESCRIPTION = 1000  # Discord allows 4096; ten of those would break the total
MAX_CONTENT = 2000
_COLOUR = {"firing": 0xD73A49, "realert": 0xE36209, "resolved": 0x28A745}
EVENT_COLOUR = 0x0366D6
_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()#-])")


def escape(text: str) -> str:
    """Markdown in user text shows as typed: no masked links, no formatting tricks."""
    return _MARKDOWN.sub(r"\\\1", text)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _embed(s: Summary, item: Item) -> dict[str, Any]:
    lines = [f"**{escape(k)}**: {escape(v)}" for k, v in s.facts]
    embed: dict[str, Any] = {
        "title": _cut(s.title, MAX_TITLE),
        "description": _cut("\n".join(lines), MAX_DESCRIPTION),
        "color": _COLOUR[item.kind] if isinstance(item, Notification) else EVENT_COLOUR,
    }
    if s.link and s.link.startswith(("http://", "https://")):
        embed["url"] = s.link  # makes the title a link
    return embed


def payload(items: list[Item], *, title: str | None = None) -> dict[str, Any]:
    """One message for one item or a digest; items past the limits are counted, not sent."""
    if not items:
        raise ValueError("a message needs at least one item")
    embeds: list[dict[str, Any]] = []
    used = 0
    for item in items[:MAX_EMBEDS]:
        embed = _embed(summarize(item), item)
        size = len(embed["title"]) + len(embed["description"])
        if used + size > MAX_EMBED_CHARS:
            break
        embeds.append(embed)
        used += size
    body: dict[str, Any] = {"embeds": embeds, "allowed_mentions": {"parse": []}}
    if len(items) > 1 or title is not None:  # a single item is its embed alone
        content = escape(title) if title else f"cpwatch digest: {len(items)} notifications"
        if len(embeds) < len(items):
            content += f" ({len(items) - len(embeds)} more not shown)"
        body["content"] = _cut(content, MAX_CONTENT)
    return body


def retry_after(body: bytes) -> float | None:
    """A 429 reply: ``{"message": ..., "retry_after": 1.5, "global": false}``."""
    data = json.loads(body)
    value = data.get("retry_after") if isinstance(data, dict) else None
    return float(value) if isinstance(value, int | float) else None


async def send(
    sender: WebhookSender,
    channel: DiscordChannel,
    items: list[Item],
    *,
    delivery_id: str,
    on_attempt: AttemptHook | None = None,
) -> DeliveryResult:
    """Post the message; Discord answers 204 No Content."""
    return await sender.send(
        channel.url,
        payload(items),
        delivery_id=delivery_id,
        on_attempt=on_attempt,
        retry_hint=retry_after,
    )
