"""Alert subscriptions: who wants which events and treasury alerts, on which channel.

A subscription is a stored query (search syntax, validated by ``cpwatch.query`` as search
queries are, run by Elasticsearch) plus keyword filters checked here in pure Python, a channel
(webhook, email, Slack, PagerDuty, Teams, Telegram or Discord), a re-alert window, an optional
silence and Alertmanager-style digest timings. Channel secrets (webhook secret, PagerDuty
routing key, Telegram bot token) are kept as ``SecretStr``: never logged nor echoed in
validation errors, and ``public_dict`` masks them and any credentials in channel URLs. In the
subscriptions index they, and every channel URL (Slack, Teams and Discord URLs are the
credential), are AES-GCM envelopes when ``CPWATCH_SECRET_KEY`` is set (``cpwatch.secretbox``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from cpwatch import secretbox
from cpwatch.query import QUERY_FLAGS, QueryError, check_query
from cpwatch.records import stable_id, utcnow
from streams.alerts import Alert
from streams.rules import RULE_TYPES, parse_window

RuleType = Literal["level", "below_cost", "pct_move", "drawdown"]
assert set(RULE_TYPES) == set(get_args(RuleType))  # one list of rule types, kept in step

_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
MASK = "********"
# Filters on a policy event's keyword lists (the event field of the same name).
EVENT_KEYWORDS = ("categories", "countries", "orgs", "holders")
# Event fields a subscription's query searches (notify/candidates.py analyses the same fields).
QUERY_FIELDS = ("title^2", "text")


def _duration(value: object) -> timedelta:
    """Like ``parse_window`` but zero is allowed (``group_wait: 0s`` sends at once)."""
    if value in (0, "0", "0s") or value == timedelta(0):
        return timedelta(0)
    return parse_window(value)


Window = Annotated[timedelta, BeforeValidator(parse_window)]
Duration = Annotated[timedelta, BeforeValidator(_duration)]
Keyword = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
GroupLabel = Literal["rule", "direction", "holder", "rule_type", "kind"]


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a port out of 0-65535 or not a number
    except ValueError:
        raise ValueError("the URL's port must be a number from 1 to 65535") from None
    return url


class _Channel(BaseModel):
    # hide_input_in_errors: a ValidationError (its str, a log line) never shows a secret.
    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, hide_input_in_errors=True
    )

    def secret_fields(self) -> tuple[str, ...]:
        """Fields sealed at rest: every ``SecretStr``, and ``url`` for URL channels (Slack,
        Teams and Discord URLs are credentials; webhook URLs often carry one)."""
        names = [n for n, v in self if isinstance(v, SecretStr)]
        return tuple(names + (["url"] if isinstance(self, _UrlChannel) else []))

    @property
    def endpoint_url(self) -> str | None:
        """Where deliveries go over HTTP (SSRF-checked); None for e-mail."""
        url = getattr(self, "url", None)
        return url if isinstance(url, str) else None


class _UrlChannel(_Channel):
    """A channel that posts to one http(s) URL, which is its identity. Kept out of reprs and
    logs: for Slack, Teams and Discord the URL itself is the credential."""

    url: str = Field(max_length=2000, repr=False)

    _check_url = field_validator("url")(_http_url)

    @property
    def target(self) -> str:
        return self.url


class WebhookChannel(_UrlChannel):
    type: Literal["webhook"] = "webhook"
    secret: SecretStr = Field(min_length=16, max_length=256, description="HMAC-SHA256 key")


class EmailChannel(_Channel):
    type: Literal["email"] = "email"
    address: str = Field(max_length=320)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if not _EMAIL.match(v):
            raise ValueError("must be a single address like name@example.org")
        return v

    @property
    def target(self) -> str:
        return self.address.lower()


class SlackChannel(_UrlChannel):
    type: Literal["slack"] = "slack"  # an incoming-webhook URL


PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
TELEGRAM_API = "https://api.telegram.org"


class PagerDutyChannel(_UrlChannel):
    type: Literal["pagerduty"] = "pagerduty"
    routing_key: SecretStr = Field(min_length=20, max_length=128, description="integration key")
    severity: Literal["critical", "error", "warning", "info"] = "error"
    url: str = Field(default=PAGERDUTY_URL, max_length=2000, description="Events API v2 URL")

    @property
    def target(self) -> str:
        # The routing key names the service; only a digest of it reaches the id.
        return stable_id("pagerduty", self.routing_key.get_secret_value())


class TeamsChannel(_UrlChannel):
    # Workflow ("when a webhook request is received") URL; its sig= parameter is a credential.
    type: Literal["teams"] = "teams"


class TelegramChannel(_Channel):
    type: Literal["telegram"] = "telegram"
    bot_token: SecretStr = Field(max_length=200)
    chat_id: int | str = Field(description="numeric chat id, or @channelusername")
    api_base: str = Field(default=TELEGRAM_API, max_length=2000)

    _check_url = field_validator("api_base")(_http_url)

    @field_validator("bot_token")
    @classmethod
    def _token(cls, v: SecretStr) -> SecretStr:
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]{20,}", v.get_secret_value()):
            raise ValueError("must look like 123456:ABC... (from @BotFather)")
        return v

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        if re.fullmatch(r"-?\d+", v := v.strip()):
            return int(v)
        if not re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,31}", v):
            raise ValueError("must be a numeric chat id or @channelusername")
        return v

    @property
    def endpoint_url(self) -> str:
        return self.api_base

    @property
    def target(self) -> str:
        bot = self.bot_token.get_secret_value().partition(":")[0]  # the bot's public id
        return f"{bot}:{self.chat_id}"


class DiscordChannel(_UrlChannel):
    type: Literal["discord"] = "discord"  # .../api/webhooks/<id>/<token>: the path is secret


Channel = Annotated[
    WebhookChannel
    | EmailChannel
    | SlackChannel
    | PagerDutyChannel
    | TeamsChannel
    | TelegramChannel
    | DiscordChannel,
    Field(discriminator="type"),
]
# Channels whose URL path carries the credential: public views hide the whole path.
SECRET_PATH_CHANNELS = frozenset({"slack", "discord"})


class Filters(BaseModel):
    """Keyword filters; an empty list means "any". All given filters must match."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
    categories: tuple[Keyword, ...] = ()
    countries: tuple[Annotated[str, Field(pattern=r"^[A-Z]{2}$")], ...] = ()
    orgs: tuple[Keyword, ...] = ()
    holders: tuple[Keyword, ...] = ()
    rule_types: tuple[RuleType, ...] = ()
    min_severity: float = Field(default=0.0, ge=0, le=1)

    @field_validator("countries", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return [c.upper() for c in v] if isinstance(v, list | tuple) else v


def subscription_id(name: str, channel_type: str, target: str) -> str:
    """Same name and destination -> same id, so re-creating a subscription overwrites it."""
    return stable_id("subscription", name.strip().lower(), channel_type, target)


class Subscription(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, hide_input_in_errors=True
    )

    id: str = Field(default="", max_length=64, description="derived from name + channel if empty")
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")
    query: str | None = Field(
        default=None, max_length=2000, description="search syntax (cpwatch.query), as in search"
    )
    filters: Filters = Filters()
    channel: Channel
    realert_window: Window = timedelta(hours=1)
    silence_until: AwareDatetime | None = None
    group_wait: Duration = timedelta(seconds=10)
    group_interval: Window = timedelta(minutes=1)
    # Alertmanager's group_by: alerts sharing these label values go out as one message.
    group_by: tuple[GroupLabel, ...] = ("rule", "direction")
    created_at: AwareDatetime = Field(default_factory=utcnow)

    @field_validator("query")
    @classmethod
    def _query(cls, v: str | None) -> str | None:
        """One validator for search and subscriptions: ``cpwatch.query.check_query``."""
        if v is None:
            return None
        try:
            q, _ = check_query(v)
        except QueryError as exc:
            raise ValueError(exc.reason) from None
        return q or None

    @property
    def query_expr(self) -> str:
        """``query`` rendered for ``simple_query_string`` exactly as search renders it."""
        return check_query(self.query)[1] if self.query else ""

    @model_validator(mode="after")
    def _derive_id(self) -> Subscription:
        if not self.id:
            sid = subscription_id(self.name, self.channel.type, self.channel.target)
            object.__setattr__(self, "id", sid)  # frozen model: set once, during validation
        return self

    def silenced(self, now: datetime) -> bool:
        return self.silence_until is not None and now < self.silence_until

    def matches_alert(self, alert: Alert, rule_type: str | None) -> bool:
        """Holder and rule-type filters; event-only filters (categories...) do not apply."""
        f = self.filters
        if f.holders and alert.holder not in f.holders:
            return False
        return not f.rule_types or rule_type in f.rule_types

    def matches_event(self, event: dict[str, Any]) -> bool:
        """Keyword filters on a policy event (``holders``: the treasury holders it concerns,
        streams/holder_links); ``query`` is Elasticsearch's job (see ``event_query``), so a
        subscription with a query must also pass that search."""
        f = self.filters
        if float(event.get("severity") or 0.0) < f.min_severity:
            return False
        for name in EVENT_KEYWORDS:
            wanted = getattr(f, name)
            if wanted and not set(wanted) & set(event.get(name) or ()):
                return False
        return True

    def event_query(self, event_id: str) -> dict[str, Any]:
        """Elasticsearch query that hits the event ``event_id`` only if it matches ``query``."""
        must: list[dict[str, Any]] = [{"ids": {"values": [event_id]}}]
        if self.query:
            must.append(
                {
                    "simple_query_string": {
                        "query": self.query_expr,
                        "fields": list(QUERY_FIELDS),
                        "default_operator": "and",
                        "flags": QUERY_FLAGS,
                        "lenient": False,
                        "analyze_wildcard": False,
                    }
                }
            )
        return {"bool": {"filter": must}}

    def to_es_doc(self, box: secretbox.SecretBox | None = None) -> dict[str, Any]:
        """Filters as keyword fields, query as text, channel with its secrets (for the sender)
        sealed by ``box`` (default: the process's, from ``CPWATCH_SECRET_KEY``)."""
        doc = self._plain_doc()
        box = box or secretbox.default_box()
        channel = doc["channel"]
        for name in self.channel.secret_fields():
            channel[name] = box.seal(channel[name], secret_context(self.id, name))
        return doc

    def _plain_doc(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json", exclude={"channel", "filters"})
        doc.update(self.filters.model_dump(mode="json"))
        doc["realert_window"] = self.realert_window.total_seconds()
        doc["group_wait"] = self.group_wait.total_seconds()
        doc["group_interval"] = self.group_interval.total_seconds()
        channel = self.channel.model_dump(mode="json")
        for name, value in self.channel:
            if isinstance(value, SecretStr):
                channel[name] = value.get_secret_value()
        doc["channel"] = channel
        return doc

    @classmethod
    def from_es_doc(
        cls, doc: dict[str, Any], box: secretbox.SecretBox | None = None
    ) -> Subscription:
        """The stored form back; envelopes opened with ``box`` (clear values pass as they are).
        Raises ``secretbox.SecretBoxError`` when a secret does not decrypt."""
        box = box or secretbox.default_box()
        filters = {k: doc[k] for k in Filters.model_fields if k in doc}
        rest = {k: v for k, v in doc.items() if k not in Filters.model_fields}
        if isinstance(channel := rest.get("channel"), dict):
            sid = str(rest.get("id", ""))
            rest["channel"] = {
                k: box.open(v, secret_context(sid, k)) if secretbox.is_envelope(v) else v
                for k, v in channel.items()
            }
        for k in ("realert_window", "group_wait", "group_interval"):
            if isinstance(rest.get(k), int | float):
                rest[k] = timedelta(seconds=rest[k])
        return cls.model_validate({**rest, "filters": filters})

    def public_dict(self) -> dict[str, Any]:
        """What list APIs return: the secret masked, credentials stripped from URLs."""
        doc = self._plain_doc()
        channel = dict(doc["channel"])
        for name, value in self.channel:
            if isinstance(value, SecretStr):
                channel[name] = MASK
        if "url" in channel:
            keep_path = channel["type"] not in SECRET_PATH_CHANNELS
            channel["url"] = redact_url(channel["url"], keep_path=keep_path)
        doc["channel"] = channel
        return doc


def secret_context(sub_id: str, field_name: str) -> str:
    """What an envelope is bound to: a secret decrypts only in its own subscription and field."""
    return f"subscription/{sub_id}/channel.{field_name}"


def redact_url(url: str, *, keep_path: bool = True) -> str:
    """Drop user:password and the query; Slack and Discord URLs carry a token in the path."""
    p = urlsplit(url)
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{p.port}" if p.port else "")
    path = p.path if keep_path else ("/" + MASK if p.path not in ("", "/") else p.path)
    return urlunsplit((p.scheme, netloc, path, MASK if p.query else "", ""))


# Mapping for the subscriptions index (to be added to sinks/indices.MAPPINGS).
SUBSCRIPTION_PROPERTIES: dict[str, Any] = {
    "id": {"type": "keyword"},
    "name": {"type": "keyword"},
    "query": {"type": "text"},
    "categories": {"type": "keyword"},
    "countries": {"type": "keyword"},
    "orgs": {"type": "keyword"},
    "holders": {"type": "keyword"},
    "rule_types": {"type": "keyword"},
    "min_severity": {"type": "float"},
    "realert_window": {"type": "float"},
    "silence_until": {"type": "date"},
    "group_wait": {"type": "float"},
    "group_interval": {"type": "float"},
    "group_by": {"type": "keyword"},
    "created_at": {"type": "date"},
    # enabled: false -> kept in _source, never indexed: the secret is not searchable.
    "channel": {"type": "object", "enabled": False},
}
