"""Money, bitcoin and power amounts quoted in an article ("$7 billion", "6,240 BTC", "1.5 GW")."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

Unit = Literal["BTC", "USD", "MW"]

_NUM = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_SCALE = r"(trillion|billion|million|thousand|bn|mn|tn|[mbkMBK])"
_SCALES = {
    "trillion": 1e12,
    "tn": 1e12,
    "billion": 1e9,
    "bn": 1e9,
    "b": 1e9,
    "million": 1e6,
    "mn": 1e6,
    "m": 1e6,
    "thousand": 1e3,
    "k": 1e3,
}

_USD = re.compile(rf"(?:US\s?\$|USD\s?|\$)\s?{_NUM}(?:\s?{_SCALE}\b)?")
_DOLLARS = re.compile(rf"{_NUM}\s?(trillion|billion|million)?\s+(?:US\s+|U\.S\.\s+)?dollars\b")
# "420 bitcoin", "50,000 BTC", "BTC 2,195"; not "20 bitcoin miners".
_BTC = re.compile(
    rf"{_NUM}\s?(?:BTC|[Bb]itcoins?)\b(?![\s-]+(?:min|ATM|ETF|compan|firm|transaction|wallet"
    rf"|address|node|holder|user|treasur|fund|price|future))|\bBTC\s{_NUM}(?![\d%])"
)
_POWER = re.compile(
    rf"{_NUM}\s?(?:-\s?)?(MW|megawatts?|GW|gigawatts?|kW|kilowatts?)(?!h)\b", re.IGNORECASE
)
_POWER_SCALE = {"m": 1.0, "g": 1000.0, "k": 0.001}


@dataclass(frozen=True, slots=True)
class Amount:
    value: float
    unit: Unit
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(raw: str) -> float:
    return float(raw.replace(",", ""))


def scan_amounts(text: str) -> list[tuple[int, Amount]]:
    """(offset, amount) pairs in order of appearance; a value repeated in a unit is kept once."""
    found: list[tuple[int, Amount]] = []
    # Cheap substring tests skip the number-led regexes, which scan every digit.
    usd = (_USD, _DOLLARS) if "dollars" in text else (_USD,)
    power = "W" in text or "watt" in text
    for rx in usd:
        for m in rx.finditer(text):
            value = _num(m.group(1)) * _SCALES.get((m.group(2) or "").lower(), 1.0)
            found.append((m.start(), Amount(value, "USD", m.group().strip())))
    found.extend(scan_btc(text))
    for m in _POWER.finditer(text) if power else ():
        value = _num(m.group(1)) * _POWER_SCALE[m.group(2)[0].lower()]
        found.append((m.start(), Amount(value, "MW", m.group().strip())))
    seen: set[tuple[float, str]] = set()
    out: list[tuple[int, Amount]] = []
    for pos, amount in sorted(found, key=lambda p: p[0]):
        if (amount.value, amount.unit) not in seen:
            seen.add((amount.value, amount.unit))
            out.append((pos, amount))
    return out


def names_btc(text: str) -> bool:
    """Whether ``text`` may hold a bitcoin amount: every ``_BTC`` match contains one of these."""
    return "BTC" in text or "itcoin" in text


def scan_btc(text: str) -> list[tuple[int, Amount]]:
    """The ``BTC`` amounts of ``scan_amounts(text)``, without looking for the other units."""
    if not names_btc(text):
        return []
    out: list[tuple[int, Amount]] = []
    seen: set[float] = set()
    for m in _BTC.finditer(text):
        value = _num(m.group(1) or m.group(2))
        if value not in seen:
            seen.add(value)
            out.append((m.start(), Amount(value, "BTC", m.group().strip())))
    return out


def extract_amounts(text: str) -> list[Amount]:
    return [a for _, a in scan_amounts(text)]
