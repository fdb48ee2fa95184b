"""Slack-compatible incoming-webhook messages for events, treasury alerts and digests.

Needs no settings of its own: sending goes through ``WebhookSender`` (same timeouts, retries
and SSRF guard) without a signature, since the incoming-webhook URL is itself the credential.
Mattermost and Rocket.Chat accept the same ``{"text", "blocks"}`` payload.
"""

from __future__ import annotations

from typing import Any

from notify.delivery import AttemptHook, DeliveryResult, Item, Summary, summarize
from notify.webhook import WebhookSender

MAX_BLOCKS = 50  # Slack's limit per message
MAX_SECTION_CHARS = 3000
ITEMS_PER_MESSAGE = (MAX_BLOCKS - 2) // 2  # a section and a divider per item, plus header/footer


def escape(text: str) -> str:
    """Slack mrkdwn control characters; user text must not forge links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(s: Summary) -> dict[str, Any]:
    title = escape(s.title)
    if s.link and s.link.startswith(("http://", "https://")):
        title = f"<{escape(s.link)}|{title}>"
    lines = [f"*{title}*"] + [f"• {escape(k)}: {escape(v)}" for k, v in s.facts]
    text = "\n".join(lines)
    if len(text) > MAX_SECTION_CHARS:
        text = text[: MAX_SECTION_CHARS - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def payload(items: list[Item], *, title: str | None = None) -> dict[str, Any]:
    """One message for one item or a digest; ``text`` is the notification fallback."""
    if not items:
        raise ValueError("a message needs at least one item")
    summaries = [summarize(i) for i in items]
    if len(items) == 1 and title is None:
        return {"text": summaries[0].title, "blocks": [_section(summaries[0])]}
    heading = title or f"cpwatch digest: {len(items)} notifications"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": heading[:150]}}
    ]
    for s in summaries[:ITEMS_PER_MESSAGE]:
        blocks += [_section(s), {"type": "divider"}]
    if len(items) > ITEMS_PER_MESSAGE:
        more = len(items) - ITEMS_PER_MESSAGE
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"…and {more} more"}]}
        )
    else:
        blocks.pop()  # no divider after the last item
    return {"text": heading, "blocks": blocks}


def event_payload(event: dict[str, Any]) -> dict[str, Any]:
    return payload([event])


def alert_payload(notification: Item) -> dict[str, Any]:
    return payload([notification])


async def send(
    sender: WebhookSender,
    url: str,
    items: list[Item],
    *,
    delivery_id: str,
    on_attempt: AttemptHook | None = None,
) -> DeliveryResult:
    """Post to an incoming webhook; retries and SSRF checks as for any webhook."""
    return await sender.send(
        url, payload(items), delivery_id=delivery_id, secret=None, on_attempt=on_attempt
    )
