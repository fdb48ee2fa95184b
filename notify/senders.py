"""Senders and the settings they need: what the delivery agent and the API's "test this
subscription" both use to reach a channel. No Faust here: the API imports it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cpwatch.settings import Settings
from notify import discord, pagerduty, slack, teams, telegram
from notify.delivery import (
    Attempt,
    AttemptHook,
    Delivery,
    DeliveryResult,
    Item,
    RetryPolicy,
    message_body,
)
from notify.email import EmailSender, SmtpConfig
from notify.lifecycle import Notification
from notify.subscriptions import EmailChannel, SlackChannel, Subscription, WebhookChannel
from notify.webhook import WebhookConfig, WebhookSender, endpoint_of
from streams.alerts import Alert, iso_utc, parse_utc

log = logging.getLogger(__name__)
# HTTP channels beside webhook and Slack: send(webhook_sender, channel, items, *, delivery_id,
# on_attempt), each over the shared WebhookSender (timeouts, retries, SSRF guard).
CHANNEL_SENDERS: dict[str, Callable[..., Awaitable[DeliveryResult]]] = {
    "pagerduty": pagerduty.send,
    "teams": teams.send,
    "telegram": telegram.send,
    "discord": discord.send,
}


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        settings.delivery_max_attempts,
        settings.delivery_backoff_base_s,
        settings.delivery_backoff_cap_s,
    )


def webhook_config(settings: Settings) -> WebhookConfig:
    return WebhookConfig(
        connect_timeout_s=settings.webhook_connect_timeout_s,
        read_timeout_s=settings.webhook_read_timeout_s,
        retry=retry_policy(settings),
        allowlist=settings.ssrf_allowlist,
    )


def smtp_config(settings: Settings) -> SmtpConfig:
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        starttls=settings.smtp_starttls,
        ssl=settings.smtp_ssl,
        username=settings.smtp_username,
        password=settings.smtp_password,
        from_address=settings.smtp_from,
        timeout_s=settings.smtp_timeout_s,
        retry=retry_policy(settings),
    )


def items_from_message(raw_items: list[dict[str, Any]]) -> list[Item]:
    """Inverse of ``notify.delivery.item_dict``: what the renderers need."""
    items: list[Item] = []
    for it in raw_items:
        if it.get("type") == "alert":
            items.append(
                Notification(
                    str(it["subscription"]),
                    it["kind"],
                    Alert.from_dict(it["alert"]),
                    str(it["incident"]),
                    parse_utc(str(it["at"])),
                    it.get("rule_type"),
                )
            )
        else:
            items.append({k: v for k, v in it.items() if k != "type"})
    return items


@dataclass
class Senders:
    """One sender per channel type, shared by every subscriber (one connection pool)."""

    webhook: WebhookSender
    email: EmailSender | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Senders:
        try:
            email: EmailSender | None = EmailSender(smtp_config(settings))
        except Exception as exc:  # noqa: BLE001 - webhooks still work without SMTP
            log.error("email delivery disabled: %s", exc)
            email = None
        return cls(WebhookSender(webhook_config(settings)), email)

    def delivery(
        self, sub: Subscription, delivery_id: str, items: list[Item], settings: Settings
    ) -> Delivery:
        ch = sub.channel

        if isinstance(ch, WebhookChannel):
            body = message_body(delivery_id, sub.id, items)

            async def send(hook: AttemptHook) -> DeliveryResult:
                return await self.webhook.send(
                    ch.url, body, delivery_id=delivery_id, secret=ch.secret, on_attempt=hook
                )

            return Delivery(delivery_id, endpoint_of(ch.url), send)
        if isinstance(ch, SlackChannel):

            async def send(hook: AttemptHook) -> DeliveryResult:
                return await slack.send(
                    self.webhook, ch.url, items, delivery_id=delivery_id, on_attempt=hook
                )

            return Delivery(delivery_id, endpoint_of(ch.url), send)
        if (channel_send := CHANNEL_SENDERS.get(ch.type)) and (url := ch.endpoint_url):

            async def send(hook: AttemptHook) -> DeliveryResult:
                return await channel_send(
                    self.webhook, ch, items, delivery_id=delivery_id, on_attempt=hook
                )

            return Delivery(delivery_id, endpoint_of(url), send)
        assert isinstance(ch, EmailChannel)
        email = self.email

        async def send(hook: AttemptHook) -> DeliveryResult:
            if email is None:
                attempt = Attempt(1, None, 0.0, "refused: SMTP is not configured")
                hook(attempt)
                return DeliveryResult(delivery_id, False, [attempt])
            return await email.send(ch.address, items, delivery_id=delivery_id, on_attempt=hook)

        return Delivery(delivery_id, f"smtp:{settings.smtp_host}:{settings.smtp_port}", send)

    async def aclose(self) -> None:
        await self.webhook.aclose()


def attempt_doc(delivery: Delivery, meta: dict[str, str], a: Attempt) -> dict[str, Any]:
    return {
        "id": f"{delivery.id}-{a.n}",
        "delivery_id": delivery.id,
        "subscription": meta.get("subscription"),
        "channel": meta.get("channel"),
        "endpoint": delivery.endpoint,
        "attempt": a.n,
        "status": a.status,
        "ok": a.ok,
        "latency_ms": a.latency_ms,
        "error": a.error,
        "at": iso_utc(a.at),
    }
