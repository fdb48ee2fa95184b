"""Holdings read from the news: "El Salvador's holdings now total 6,240 BTC" → a statement.

Pure. Sentence by sentence, each bitcoin amount is tied to the nearest holder named before it
(or, for "the company" / "the country" / "its", the holder named last) and to the nearest verb
cue before it that says what the number is: a ``total`` held, an amount ``bought`` (bought,
acquired, seized) or ``sold`` (sold, liquidated, moved to an exchange). An amount without a
holder or a cue, or under a plan or condition ("plans to buy", "could hold"), says nothing about
holdings and is left out. Holders are the registry's (treasuries.csv): states by any name the
gazetteer knows for their country, companies by their names and the aliases of
``streams.holder_links``; states not in the registry are proposed under their gazetteer name.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from cpwatch.records import HoldingsProposal
from streams import gazetteer as gz
from streams.amounts import names_btc, scan_btc
from streams.holder_links import ALIASES, COMMON_WORDS
from streams.name_pattern import alternation

Kind = Literal["total", "bought", "sold"]

# Last cue before an amount wins; a cue after it only for "moved/transferred X to an exchange".
_CUES: tuple[tuple[Kind | Literal["other"], str], ...] = (
    (
        "total",
        r"hold(?:s|ing|ings)?|held|owns?|owned|own|totals?|totall?ing|stash|reserves? of"
        r"|balance of|treasury of|leaving|remaining|brings? (?:its|the) \w+ to|bringing \w+ \w+ to"
        r"|(?:to|at) a total of",
    ),
    (
        "bought",
        r"b(?:uy|uys|ought)|purchas(?:e|es|ed)|acquir(?:e|es|ed)|add(?:s|ed)?"
        r"|accumulated|seiz(?:e|es|ed)|confiscat(?:e|es|ed)",
    ),
    (
        "sold",
        r"s(?:ell|ells|old)|offload(?:s|ed)?|dump(?:s|ed)?|liquidat(?:e|es|ed)"
        r"|auction(?:s|ed)?",
    ),
    # Not a holding: mined output, prices, and sales or purchases still under way ("is selling").
    (
        "other",
        r"min(?:ed|es|ing)|worth|price[sd]?|valued|reward|fees?|per|selling|buying"
        r"|liquidating|purchasing|acquiring|offloading|auctioning",
    ),
)
_CUE = re.compile("|".join(f"(?P<{k}>\\b(?:{rx})\\b)" for k, rx in _CUES), re.I)
_TO_EXCHANGE = re.compile(
    r"^\s*(?:\([^)]*\)\s*)?(?:[^.;]{0,60}?)\bto\s+(?:an?\s+|the\s+|various\s+)?"
    r"(?:crypto(?:currency)?\s+)?exchanges?\b",
    re.I,
)
_MOVED = re.compile(r"\b(?:mov\w*|transferr?\w*|sent|send\w*)\b", re.I)
# Plans, conditions and hypotheticals between the holder and the amount void the statement.
# Case-sensitive: "May" is a month more often than a modal.
_HEDGE = re.compile(
    r"\b(?:plans?|planning|will|would|could|may|might|intends?|aims?|considers?|considering"
    r"|proposes?|proposal|[Ii]f|expects?|target\w*|seeks?|wants?)\b"
)
# "the company" refers back to the company named last, "the country" to the state, "it" to either.
_ANAPHORS: tuple[tuple[str | None, re.Pattern[str]], ...] = (
    ("company", re.compile(r"\bthe (?:company|firm|miner|fund)\b", re.I)),
    (
        "state",
        re.compile(
            r"\b(?:the (?:country|government|state|nation|treasury|kingdom|authorities)"
            r"|officials|authorities)\b",
            re.I,
        ),
    ),
    (None, re.compile(r"\b(?:it|its)\b", re.I)),
)
# Splits after a sentence's end mark and at line breaks. The same sentences, once stripped, as
# ``(?<=[.!?])\s+|\n+`` (that one left some blank pieces), at less than half its cost: the
# engine skips to a blank before it tries the look-behinds.
_SENTENCE = re.compile(r"\s(?:(?<=\n)|(?<=[.!?]\s))\s*")
EVIDENCE_CHARS = 300


@dataclass(frozen=True, slots=True)
class HoldingStatement:
    holder: str
    kind: Kind
    btc: float
    as_of: str | None  # the article's publication date: when the statement was made
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HolderNames:
    """Name → holder id, longest names first; ``state_of`` maps ISO codes to state holders."""

    pattern: re.Pattern[str]
    holder_of: dict[str, str]
    states: frozenset[str]  # holder ids that are states
    info: dict[str, tuple[str, str | None]]  # holder id -> (kind, country)

    @classmethod
    def from_csv_text(cls, text: str) -> HolderNames:
        """From the registry in the format of ``treasuries.csv`` (read by the caller)."""
        holder_of: dict[str, str] = {}
        states: dict[str, str] = {}
        info: dict[str, tuple[str, str | None]] = {}
        for row in csv.DictReader(io.StringIO(text)):
            holder = (row.get("holder") or "").strip()
            if not holder:
                continue
            kind = (row.get("kind") or "").strip().lower()
            country = (row.get("country") or "").strip().upper() or None
            info.setdefault(holder, (kind, country))
            if kind == "state" and country:
                states.setdefault(country, holder)
            for name in (holder, *ALIASES.get(holder, ())):
                if name not in COMMON_WORDS:  # "Block", "Strategy": too often plain words
                    holder_of.setdefault(name, holder)
        for table in (gz.PLACES, gz.BODIES, gz.LEADERS):
            for cc, joined in table.items():
                state = states.get(cc) or gz.PLACES[cc].split("|")[0]
                info.setdefault(state, ("state", cc))
                for name in joined.split("|"):
                    holder_of.setdefault(name, state)
        state_ids = frozenset(h for h, (kind, _) in info.items() if kind == "state")
        pattern = re.compile(r"\b(?:" + alternation(holder_of) + r")(?:['’]s)?\b")
        return cls(pattern, holder_of, state_ids, info)

    def find(self, text: str) -> list[tuple[int, str]]:
        """(offset, holder) of every holder name in ``text``."""
        out = []
        for m in self.pattern.finditer(text):
            name = re.sub(r"['’]s$", "", m.group())
            out.append((m.start(), self.holder_of[name]))
        return out


def _kind(before: str, after: str) -> Kind | None:
    if _MOVED.search(before[-80:]) and _TO_EXCHANGE.match(after):
        return "sold"
    cue = None
    for m in _CUE.finditer(before):
        cue = m
    if cue is None or cue.lastgroup == "other":
        return None
    return cue.lastgroup  # type: ignore[return-value]


def extract_holdings(
    title: str, text: str, names: HolderNames, published: datetime | None = None
) -> list[HoldingStatement]:
    """Holdings statements in article order; one per (holder, kind, btc)."""
    if not names_btc(title) and not names_btc(text):
        return []  # no bitcoin amount anywhere: most articles
    as_of = published.date().isoformat() if published else None
    last: dict[str | None, str] = {}  # the holder named last: of any kind, state, company
    out: list[HoldingStatement] = []
    seen: set[tuple[str, str, float]] = set()
    sentences = [s for s in (part.strip() for part in [title, *_SENTENCE.split(text)]) if s]
    # Holders named after the last sentence with an amount refer to nothing: not searched.
    tail = next((i for i in range(len(sentences) - 1, -1, -1) if names_btc(sentences[i])), -1)
    for sentence in sentences[: tail + 1]:
        holders = names.find(sentence)
        start = 0
        for pos, amount in scan_btc(sentence):
            clause = sentence[start:pos]
            start = pos + len(amount.text)
            named = [h for p, h in holders if p < pos]
            holder = named[-1] if named else None
            if holder is None:
                holder = _antecedent(sentence[:pos], last)
            kind = _kind(clause, sentence[start:])
            if holder is None or kind is None or _HEDGE.search(clause) or amount.value <= 0:
                continue
            key = (holder, kind, amount.value)
            if key not in seen:
                seen.add(key)
                evidence = (
                    sentence if len(sentence) <= EVIDENCE_CHARS else sentence[:EVIDENCE_CHARS]
                )
                out.append(HoldingStatement(holder, kind, amount.value, as_of, evidence))
        for _, h in holders:
            last[None] = last["state" if h in names.states else "company"] = h
    return out


def proposals(
    statements: Iterable[HoldingStatement],
    names: HolderNames,
    *,
    article_id: str,
    title: str,
    source_url: str,
    published: datetime,
) -> list[HoldingsProposal]:
    """One proposal per statement, with a deterministic id (a replay proposes nothing new)."""
    out = []
    for st in statements:
        kind, country = names.info.get(st.holder, ("company", None))
        out.append(
            HoldingsProposal(
                id=HoldingsProposal.make_id(article_id, st.holder, st.kind, st.btc),
                holder=st.holder,
                holder_kind=kind,  # type: ignore[arg-type]  # registry kinds
                country=country,
                statement=st.kind,
                btc=st.btc,
                as_of=published,
                evidence=st.evidence,
                article_id=article_id,
                title=title[:1000],
                source_url=source_url,
            )
        )
    return out


def _antecedent(before: str, last: dict[str | None, str]) -> str | None:
    """The holder an anaphor before the amount refers to, if any."""
    for kind, rx in _ANAPHORS:
        if rx.search(before) and kind in last:
            return last[kind]
    return None
