"""Which treasury holders a policy event concerns. Pure: the caller reads the registry.

A state holder is linked through the event's actor countries (the registry's ``kind=state``
rows and their ``country`` column: SV → El Salvador, US → United States government, …); any
other holder (company, fund) when the title or text names it. Holder ids are the registry's
``holder`` column, as on the holdings topic and in the valuations index.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.name_pattern import alternation

# Names a holder goes by besides its registry name (former names, tickers, short forms).
ALIASES: dict[str, tuple[str, ...]] = {
    "Strategy (MicroStrategy)": ("Strategy", "MicroStrategy", "MSTR", "Strategy Inc"),
    "Block": ("Block Inc", "Block, Inc", "Square Inc"),
    "MARA Holdings": ("MARA", "Marathon Digital"),
    "Riot Platforms": ("Riot Blockchain",),
    "iShares Bitcoin Trust (IBIT)": ("IBIT", "iShares Bitcoin Trust"),
    "Twenty One Capital (XXI)": ("Twenty One Capital",),
}
# Names that are also ordinary words: they count only where capitals mean a proper noun, i.e.
# not as a sentence's first word and not in a headline written in title case.
COMMON_WORDS = frozenset({"Strategy", "Block"})

_SENTENCE = re.compile(r"[^.!?\n]+")
_WORD = re.compile(r"[A-Za-z][\w'-]*")
_MINOR = frozenset("a an and as at by for in of on or the to with vs".split())
_NEVER = re.compile(r"(?!)")


@dataclass(frozen=True, slots=True)
class HolderLinker:
    by_country: Mapping[str, tuple[str, ...]]  # ISO alpha-2 → state holder ids
    names: tuple[tuple[re.Pattern[str], str, bool], ...]  # (name pattern, holder, common word)
    # Any of the names: most sentences name no holder, and one search rules them out instead
    # of one per name (the per-name loop was 40 % of story clustering's CPU).
    any_name: re.Pattern[str]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> HolderLinker:
        by_country: dict[str, list[str]] = {}
        named: dict[str, str] = {}
        for row in rows:
            holder = str(row.get("holder") or "").strip()
            if not holder:
                continue
            if str(row.get("kind") or "").strip().lower() == "state":
                cc = str(row.get("country") or "").strip().upper()
                if cc and holder not in by_country.setdefault(cc, []):
                    by_country[cc].append(holder)
            else:
                for name in (holder, *ALIASES.get(holder, ())):
                    named.setdefault(name, holder)
        names = tuple(
            (re.compile(rf"(?<!\w){re.escape(n)}(?!\w)"), h, n in COMMON_WORDS)
            for n, h in sorted(named.items(), key=lambda kv: -len(kv[0]))
        )
        any_name = re.compile(rf"(?<!\w)(?:{alternation(named)})(?!\w)") if named else _NEVER
        return cls({cc: tuple(hs) for cc, hs in by_country.items()}, names, any_name)

    @classmethod
    def from_csv_text(cls, text: str) -> HolderLinker:
        """The registry in the format of ``treasuries.csv`` (already read by the caller)."""
        return cls.from_rows(csv.DictReader(io.StringIO(text)))

    def link(self, countries: Iterable[str], title: str, text: str) -> list[str]:
        """Holder ids the event concerns, sorted: states of its countries, named companies."""
        found = {h for cc in countries for h in self.by_country.get(cc, ())}
        for part, headline in ((title, True), (text, False)):
            # A name a sentence holds matches in the whole part too (sentence ends are not word
            # characters), so one search rules out most parts at once.
            if self.any_name.search(part) is None:
                continue
            for sent in _SENTENCE.finditer(part):
                found.update(self._named(sent.group(), headline))
        return sorted(found)

    def _named(self, sentence: str, headline: bool) -> set[str]:
        out: set[str] = set()
        if self.any_name.search(sentence) is None:
            return out
        first = _WORD.search(sentence)
        title_case = headline and _title_case(sentence)
        for pattern, holder, common in self.names:
            if holder in out:
                continue
            for m in pattern.finditer(sentence):
                if common and (title_case or (first is not None and m.start() == first.start())):
                    continue
                out.add(holder)
                break
        return out


def _title_case(sentence: str) -> bool:
    words = [w for w in _WORD.findall(sentence) if w.lower() not in _MINOR]
    return len(words) > 1 and sum(w[0].isupper() for w in words) >= 0.8 * len(words)
