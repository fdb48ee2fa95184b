"""Microsoft Teams through a Workflows webhook ("when a Teams webhook request is received").

The flow posts the Adaptive Card it finds in the request's first attachment. The workflow URL
is the channel's only setting (its ``sig`` parameter is the credential); sending goes through
``WebhookSender`` unsigned, like Slack. User text goes into ``TextRun``s, which Teams renders
as plain text, so a headline cannot forge markdown links.
"""

from __future__ import annotations

from typing import Any

from notify.delivery import AttemptHook, DeliveryResult, Item, Summary, summarize
from notify.subscriptions import TeamsChannel
from notify.webhook import WebhookSender

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
ITEMS_PER_CARD = 20  # keeps a digest well under Teams' ~28 KB message limit
MAX_TITLE = 300


def _item(s: Summary) -> list[dict[str, Any]]:
    title = s.title if len(s.title) <= MAX_TITLE else s.title[: MAX_TITLE - 1] + "…"
    run: dict[str, Any] = {"type": "TextRun", "text": title, "weight": "Bolder"}
    if s.link and s.link.startswith(("http://", "https://")):
        run["selectAction"] = {"type": "Action.OpenUrl", "url": s.link}
    out: list[dict[str, Any]] = [{"type": "RichTextBlock", "inlines": [run], "separator": True}]
    if s.facts:
        facts = [{"title": k, "value": v} for k, v in s.facts]
        out.append({"type": "FactSet", "facts": facts, "spacing": "Small"})
    return out


def payload(items: list[Item], *, title: str | None = None) -> dict[str, Any]:
    """A message with one Adaptive Card: a heading for digests, then each item's facts."""
    if not items:
        raise ValueError("a message needs at least one item")
    summaries = [summarize(i) for i in items]
    body: list[dict[str, Any]] = []
    if len(items) > 1 or title is not None:
        heading = title or f"cpwatch digest: {len(items)} notifications"
        body.append({"type": "TextBlock", "text": heading, "size": "Medium", "wrap": True})
    for s in summaries[:ITEMS_PER_CARD]:
        body += _item(s)
    if len(items) > ITEMS_PER_CARD:
        more = len(items) - ITEMS_PER_CARD
        body.append({"type": "TextBlock", "text": f"…and {more} more", "isSubtle": True})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": card}],
    }


async def send(
    sender: WebhookSender,
    channel: TeamsChannel,
    items: list[Item],
    *,
    delivery_id: str,
    on_attempt: AttemptHook | None = None,
) -> DeliveryResult:
    """Post the card; the workflow answers 202 Accepted."""
    return await sender.send(
        channel.url, payload(items), delivery_id=delivery_id, secret=None, on_attempt=on_attempt
    )
