"""Phrase matching and per-sentence tag counts: the classifier's view of an article.

A regex alternation of ~2,000 literals is tried branch by branch at every position; folding the
phrases into a character trie lets the regex engine reject a position on its first character,
which keeps classification well above 1,000 articles/s. Two tries run per article: lexicon cues
case-insensitively, proper names (countries, bodies, acronyms) case-sensitively.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from streams import gazetteer as gz
from streams.amounts import Amount, scan_amounts
from streams.lexicon import ACRONYMS, LEXICON, MULTILATERAL
from streams.name_pattern import alternation

_BRACES = re.compile(r"\{([^{}]*)\}")
_SEP = re.compile(r"[\s\-]+")
_TYPO = re.compile("[\u2018\u2019\u2010\u2011\u2013\u00a0]")
_PLAIN = {"\u2018": "'", "\u2019": "'", "\u2010": "-", "\u2011": "-", "\u2013": "-", "\u00a0": " "}


def normalise(text: str) -> str:
    """Fold typographic apostrophes and dashes so lexicon phrases need one spelling."""
    return _TYPO.sub(lambda m: _PLAIN[m.group()], text)


def expand(spec: str) -> list[str]:
    """``"ban{,s,ned}|crypto"`` -> ``["ban", "bans", "banned", "crypto"]``."""
    out: list[str] = []
    for alt in spec.split("|"):
        m = _BRACES.search(alt)
        if m is None:
            out.append(alt.strip())
            continue
        for opt in m.group(1).split(","):
            out.extend(expand(alt[: m.start()] + opt + alt[m.end() :]))
    return out


def key_of(phrase: str, fold: bool) -> str:
    key = _SEP.sub(" ", phrase.strip())
    return key.lower() if fold else key


@dataclass(frozen=True, slots=True)
class Hit:
    start: int
    end: int
    text: str
    tags: tuple[str, ...]


class PhraseMatcher:
    """Find whole-word phrases and return the tags attached to each."""

    def __init__(self, table: Mapping[str, Iterable[str]], *, fold: bool, inherit: bool) -> None:
        tags: dict[str, set[str]] = {}
        for tag, phrases in table.items():
            for phrase in phrases:
                tags.setdefault(key_of(phrase, fold), set()).add(tag)
        # A cue phrase also means what its parts mean: "bitcoin reserve" is a crypto term too.
        # Not for names: "Thai SEC" is no US body.
        # Negative phrases ("treasury company") inherit nothing: a company's treasury is no state.
        for key, own in tags.items() if inherit else ():
            if any(t.startswith("neg:") for t in own):
                continue
            words = key.split(" ")
            for n in range(1, len(words)):
                for i in range(len(words) - n + 1):
                    own.update(tags.get(" ".join(words[i : i + n]), ()))
        self._fold = fold
        self._tags = {k: tuple(sorted(v)) for k, v in tags.items() if k}
        # One trie-shaped regex over every phrase; a space in a phrase matches blanks or hyphens.
        pattern = r"(?<!\w)(?:" + alternation(self._tags, space=r"[\s\-]+") + r")(?!\w)"
        self._re = re.compile(pattern, re.IGNORECASE if fold else 0)

    def finditer(self, text: str) -> Iterator[Hit]:
        for m in self._re.finditer(text):
            tags = self._tags.get(key_of(m.group(), self._fold))
            if tags:
                yield Hit(m.start(), m.end(), m.group(), tags)


def _names(table: Mapping[str, str], kind: str) -> dict[str, list[str]]:
    return {f"{kind}:{cc}": aliases.split("|") for cc, aliases in table.items()}


_CUES = PhraseMatcher({tag: expand(spec) for tag, spec in LEXICON.items()}, fold=True, inherit=True)
_NAMES = PhraseMatcher(
    {
        **{tag: expand(spec) for tag, spec in ACRONYMS.items()},
        **_names(gz.PLACES, "place"),
        **_names(gz.BODIES, "body"),
        **_names(gz.LEADERS, "leader"),
        **_names(gz.CITIES, "city"),
        "block": list(gz.BLOCKERS),
        **{
            f"mlat:{canon}": [alias for alias, c in MULTILATERAL.items() if c == canon]
            for canon in set(MULTILATERAL.values())
        },
    },
    fold=False,
    inherit=False,
)
# Sentence ends: ". " etc., but not after initials such as "U.S." or "Mr.", and line breaks.
_SENT_END = re.compile(r"(?<=[.!?])(?<![A-Z]\.)(?<!\b(?:Mr|Dr|St)\.)[\"'\u201d)]?\s+|\n+")
ACTOR_AFTER, ACTOR_BEFORE, VERB_AFTER = 30, 20, 15
# Background sentences recall history ("became legal tender in 2021"); their cues count less.
_BACKGROUND = re.compile(
    r"\b(?:(?:in|since|back in) (?:19|20)\d\d|earlier|previously|last (?:year|month|week)"
    r"|it follows|follows|had (?:made|become|adopted|announced|passed|planned|granted)|became"
    r"|was the first|first country|(?:months|years) ago|in the past)\b",
    re.IGNORECASE,
)


_FIRM = re.compile(
    r"(?:-(?:based|listed|headquartered)|(?:'s)? (?:(?:crypto|bitcoin|tech|listed|mining|"
    r"investment|payments?|hotel|software|energy) )?(?:firm|company|companies|firms|startup"
    r"|exchange|miner|lender|conglomerate|investor|fund manager|asset manager|bank(?!ing)))\b"
)
_LOCATED = re.compile(r"\b(?:in|from|to|at) (?:the )?$")


@dataclass(frozen=True, slots=True)
class CountryHit:
    cc: str
    kind: str  # place | body | leader | city
    sent: int
    actor: bool  # next to a public-authority term or a policy verb
    subject: bool = False  # directly followed by a policy verb
    possessive: bool = False  # "Kosovo's ..."
    located: bool = False  # "in Kosovo", "Kosovo-based": a place, not an actor


@dataclass
class Doc:
    text: str
    sents: list[Counter[str]]
    tag_count: Counter[str] = field(default_factory=Counter)
    country_hits: list[CountryHit] = field(default_factory=list)
    mlat_hits: list[tuple[str, str, int]] = field(default_factory=list)
    body_names: list[str] = field(default_factory=list)
    amounts: list[Amount] = field(default_factory=list)
    _examples: dict[str, list[str]] = field(default_factory=dict)

    def examples(self, tag: str, n: int = 3) -> list[str]:
        return self._examples.get(tag, [])[:n]

    def orgs(self) -> list[str]:
        return sorted({canon for _, canon, _ in self.mlat_hits} | set(self.body_names))


def _sentence_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in _SENT_END.finditer(text)]


def analyse(title: str, text: str) -> Doc:
    """Tag every cue and name; sentence 0 is the title."""
    title = normalise(title).replace("\n", " ").strip()
    full = title + "\n" + normalise(text)
    starts = _sentence_starts(full)
    doc = Doc(full, [Counter() for _ in starts])
    cues = list(_CUES.finditer(full))
    names = [h for h in _NAMES.finditer(full) if "block" not in h.tags]
    state_at = sorted(
        h.start
        for h in cues + names
        if "state" in h.tags or any(t.startswith("body:") for t in h.tags)
    )
    state_end = sorted(h.end for h in cues + names if "state" in h.tags)
    verb_at = [h.start for h in cues if "action" in h.tags]
    for hit in cues + names:
        i = bisect_right(starts, hit.start) - 1
        sent = doc.sents[i]
        for tag in hit.tags:
            kind, _, val = tag.partition(":")
            if kind in ("place", "body", "leader", "city"):
                verb = _near(verb_at, hit.end, VERB_AFTER)
                # "Kosovo bans ...": the country is the subject only if no comma intervenes.
                subject = verb is not None and "," not in full[hit.end : verb]
                # "a Japanese firm", "Tokyo-listed": a company's home, not a state acting.
                firm = _FIRM.match(full, hit.end) is not None
                subject = subject and not firm
                after = not firm and (_near(state_at, hit.end, ACTOR_AFTER) is not None or subject)
                before = _near(state_end, hit.start - ACTOR_BEFORE, ACTOR_BEFORE) is not None
                doc.country_hits.append(
                    CountryHit(
                        val,
                        kind,
                        i,
                        kind != "city"
                        and not firm
                        and (after or before or kind in ("body", "leader")),
                        subject,
                        full.startswith("'s", hit.end),
                        _LOCATED.search(full, max(0, hit.start - 10), hit.start) is not None
                        or full.startswith("-based", hit.end)
                        or firm,
                    )
                )
                # A firm's home ("a Japanese firm") places no state in the sentence.
                sent["firm_home" if firm else "country"] += 1
                if kind in ("body", "leader"):
                    sent["body"] += 1
                    if kind == "body":
                        doc.body_names.append(hit.text)
            elif kind == "mlat":
                doc.mlat_hits.append((hit.text, val, i))
                sent["mlat"] += 1
            else:
                sent[tag] += 1
                if kind in ("CAT", "cat"):
                    sent["cue"] += 1
                ex = doc._examples.setdefault(tag, [])
                if hit.text.lower() not in ex:
                    ex.append(hit.text.lower())
    for pos, amount in scan_amounts(full):
        doc.amounts.append(amount)
        if amount.unit == "BTC":  # a state quoting bitcoin amounts usually means its holdings
            doc.sents[bisect_right(starts, pos) - 1]["btc_amount"] += 1
    for i, (a, b) in enumerate(zip(starts, starts[1:] + [len(full)], strict=True)):
        if i and _BACKGROUND.search(full, a, b):
            doc.sents[i]["background"] = 1
    for sent in doc.sents:
        doc.tag_count.update(sent)
    return doc


def _near(positions: list[int], lo: int, width: int) -> int | None:
    """The first position in [lo, lo + width], if any."""
    j = bisect_left(positions, lo)
    return positions[j] if j < len(positions) and positions[j] <= lo + width else None
