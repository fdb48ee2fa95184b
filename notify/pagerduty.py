"""PagerDuty Events API v2: one event per notification, keyed by its incident.

"firing" and "realert" trigger, "resolved" resolves; ``dedup_key`` is the incident's
fingerprint (the alert that opened it), so PagerDuty folds re-alerts into the open incident and
the resolve closes it. Policy events have no lifecycle: they trigger, keyed by event id, and are
resolved by hand. Settings are the channel's: routing key (secret), severity and the endpoint
(``PAGERDUTY_URL`` unless overridden, e.g. the EU region). Timeouts, retries and the SSRF guard
are the shared ``WebhookSender``'s; PagerDuty answers 202, and a 400 (invalid event) is final.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from notify.delivery import Attempt, AttemptHook, DeliveryResult, Item, summarize
from notify.lifecycle import Notification
from notify.subscriptions import PagerDutyChannel
from notify.webhook import WebhookSender
from streams.alerts import iso_utc

MAX_SUMMARY = 1024  # PagerDuty truncates beyond this
MAX_DEDUP_KEY = 255


def event(channel: PagerDutyChannel, item: Item) -> dict[str, Any]:
    """The Events API v2 body for one notification or policy event."""
    key = channel.routing_key.get_secret_value()
    s = summarize(item)
    if isinstance(item, Notification):
        dedup = item.incident
        if item.kind == "resolved":
            return {"routing_key": key, "event_action": "resolve", "dedup_key": dedup}
        a = item.alert
        payload: dict[str, Any] = {
            "timestamp": iso_utc(a.ts),
            "component": a.holder,
            "group": a.rule,
            "class": item.rule_type or "alert",
        }
    else:
        dedup = f"cpwatch-event-{item.get('id', '')}"[:MAX_DEDUP_KEY]
        payload = {"class": "policy-event"}
    payload |= {
        "summary": s.title[:MAX_SUMMARY],
        "source": "cpwatch",
        "severity": channel.severity,
        "custom_details": dict(s.facts),
    }
    body: dict[str, Any] = {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": dedup,
        "payload": payload,
        "client": "cpwatch",
    }
    if s.link and s.link.startswith(("http://", "https://")):
        body["links"] = [{"href": s.link, "text": "source"}]
    return body


async def send(
    sender: WebhookSender,
    channel: PagerDutyChannel,
    items: list[Item],
    *,
    delivery_id: str,
    on_attempt: AttemptHook | None = None,
) -> DeliveryResult:
    """One POST per item, in order (a resolve after its trigger); stops at the first item that
    fails for good. Re-sending a delivery is safe: PagerDuty de-duplicates on ``dedup_key``."""
    result = DeliveryResult(delivery_id, delivered=True)
    for i, item in enumerate(items):
        offset = len(result.attempts)

        def renumber(a: Attempt, offset: int = offset) -> Attempt:
            return replace(a, n=a.n + offset)  # attempt numbers stay unique in the delivery

        def hook(a: Attempt) -> None:
            if on_attempt is not None:
                on_attempt(renumber(a))

        one = await sender.send(
            channel.url, event(channel, item), delivery_id=f"{delivery_id}-{i}", on_attempt=hook
        )
        result.attempts += [renumber(a) for a in one.attempts]
        if not one.delivered:
            result.delivered = False
            break
    return result
