"""Versioned JSON records exchanged on Kafka topics.

The same models serve kafka-python producers (``to_bytes``) and Faust agents (``parse``), so a
schema change is made once. Agents receive raw bytes and call ``parse``: a bad message becomes a
``RecordError`` naming the field, which the agent dead-letters instead of dying.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from cpwatch.exceptions import RecordError

SCHEMA_VERSION = 1
MAX_RECORD_BYTES = 1_000_000
# Deeply nested JSON ("bombs") needs no check of ours: pydantic's parser stops at its
# recursion limit and reports invalid JSON, without counting brackets inside strings.


def utcnow() -> datetime:
    return datetime.now(UTC)


def _finite(v: float) -> float:
    """NaN and Infinity parse as JSON floats; no price or holding may be either."""
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


Finite = Annotated[float, AfterValidator(_finite)]


def _not_ahead(limit: timedelta) -> AfterValidator:
    """Refuse timestamps further ahead of the wall clock than ``limit``: one tick dated 9999
    would otherwise move a symbol's event-time clock there for good (found by fault tests)."""

    def check(v: datetime) -> datetime:
        if v > datetime.now(UTC) + limit:
            raise ValueError(f"is more than {limit} in the future")
        return v

    return AfterValidator(check)


TickTime = Annotated[AwareDatetime, _not_ahead(timedelta(minutes=5))]  # venue clock skew
PastDate = Annotated[AwareDatetime, _not_ahead(timedelta(days=1))]  # time zones, embargoes


class Record(BaseModel):
    """Base of every record: strict, immutable, serialised as compact JSON."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)
    record_type: ClassVar[str] = "record"
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def parse(cls, raw: bytes | str | dict[str, Any] | None) -> Self:
        """Validate a message; raise ``RecordError`` (and nothing else) naming field and reason."""
        if raw is None:  # a tombstone, or a producer that sent no value
            raise RecordError(f"{cls.record_type}: empty message (null value)")
        try:
            if isinstance(raw, dict):
                return cls.model_validate(raw)
            data = raw.encode() if isinstance(raw, str) else raw
            if len(data) > MAX_RECORD_BYTES:
                raise RecordError(f"{cls.record_type}: message of {len(data)} bytes exceeds limit")
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "<message>"
            raise RecordError(
                f"{cls.record_type}: field '{where}': {first['msg']}", field=where
            ) from exc
        except (UnicodeDecodeError, UnicodeEncodeError) as exc:  # bytes in, or lone surrogates
            raise RecordError(f"{cls.record_type}: invalid UTF-8: {exc}") from exc

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def stable_id(*parts: str) -> str:
    """A short deterministic id: replays of the same input always give the same id."""
    h = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12)
    return h.hexdigest()


class NewsArticle(Record):
    record_type: ClassVar[str] = "news"
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(default="", max_length=200)
    url: str | None = Field(default=None, max_length=2000)
    title: str = Field(min_length=1, max_length=1000)
    text: str = Field(default="", max_length=200_000)
    published: PastDate | None = None
    fetched_at: AwareDatetime = Field(default_factory=utcnow)
    lang: str = Field(default="en", max_length=16)

    @staticmethod
    def make_id(url: str | None, source: str, title: str) -> str:
        """Hash of the canonical URL, or of source + title when there is no URL."""
        return stable_id(url) if url else stable_id(source, title)


Venue = str


class PriceTick(Record):
    record_type: ClassVar[str] = "price-tick"
    venue: Venue = Field(min_length=1, max_length=64)
    symbol: str = Field(min_length=1, max_length=32)
    price: Finite = Field(gt=0)
    size: Finite | None = Field(default=None, ge=0)
    ts: TickTime
    seq: int = Field(default=0, ge=0)

    @property
    def key(self) -> str:
        return f"{self.venue}:{self.symbol}"


HolderKind = Literal["state", "company", "fund"]


class HoldingUpdate(Record):
    record_type: ClassVar[str] = "holding"
    holder: str = Field(min_length=1, max_length=200, description="holder id")
    name: str = Field(default="", max_length=200)
    kind: HolderKind
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    btc: Finite = Field(ge=0)
    as_of: PastDate
    avg_cost_usd: Finite | None = Field(default=None, gt=0)
    source: str = Field(default="", max_length=2000)

    @property
    def key(self) -> str:
        """``holder|as_of``: one disclosure. The compacted topic's key, so compaction keeps the
        last row of each disclosure (a holder's whole history), not only its latest."""
        return f"{self.holder}|{self.as_of.isoformat()}"


class HoldingsProposal(Record):
    """A holdings statement read from a policy event's article, waiting for a person (or
    ``CPWATCH_HOLDINGS_AUTO_ACCEPT``) to turn it into a ``HoldingUpdate``."""

    record_type: ClassVar[str] = "holdings-proposal"
    id: str = Field(min_length=1, max_length=64)
    holder: str = Field(min_length=1, max_length=200)
    holder_kind: HolderKind
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    statement: Literal["total", "bought", "sold"]
    btc: Finite = Field(gt=0)
    as_of: PastDate
    evidence: str = Field(default="", max_length=2000)
    article_id: str = Field(min_length=1, max_length=200)
    title: str = Field(default="", max_length=1000)
    source_url: str = Field(default="", max_length=2000)

    @staticmethod
    def make_id(article_id: str, holder: str, statement: str, btc: float) -> str:
        return stable_id(article_id, holder, statement, repr(btc))

    def to_update(self, previous_btc: float | None) -> HoldingUpdate:
        """The holdings row this proposal becomes: a total as stated; a purchase or sale added
        to or taken from the holder's previous total, which must then be known."""
        btc = self.btc
        if self.statement != "total":
            if previous_btc is None:
                raise ValueError(
                    f"{self.holder}: no earlier holding to apply a {self.statement} of "
                    f"{self.btc:g} BTC to; record the new total instead"
                )
            sign = 1 if self.statement == "bought" else -1
            btc = max(previous_btc + sign * self.btc, 0.0)
        return HoldingUpdate(
            holder=self.holder,
            name=self.holder,
            kind=self.holder_kind,
            country=self.country,
            btc=btc,
            as_of=self.as_of,
            source=self.source_url,
        )


class DeadLetter(Record):
    """What the dead-letter topic carries: the original bytes (as text) and why they failed."""

    record_type: ClassVar[str] = "dead-letter"
    stage: str
    reason: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    payload: str = Field(default="", description="original message, truncated, lossy UTF-8")
    at: AwareDatetime = Field(default_factory=utcnow)

    @classmethod
    def of(
        cls,
        stage: str,
        reason: str,
        payload: bytes | str | None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> DeadLetter:
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else (payload or "")
        return cls(
            stage=stage,
            reason=reason[:2000],
            topic=topic,
            partition=partition,
            offset=offset,
            payload=text[:64_000],
        )


R = TypeVar("R", bound=Record)


def dumps(obj: Any) -> bytes:
    """Compact JSON for records that are plain dicts (e.g. enriched outputs)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode()
