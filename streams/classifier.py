"""Crypto-policy event classifier: lexicon rules plus a small learned layer, pure and offline.

``streams.policy_rules`` scores an article with weighted lexicon rules; ``streams.model`` then
re-weighs the rule scores (and a few hundred word cues) with logistic regressions trained on
labelled articles by ``scripts/train_classifier.py``. Without model weights the rules decide
alone. Evidence lists the rule hits and the learned features that weighed most.
See docs/classifier.md for the method and its cross-validated figures.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from streams.amounts import Amount
from streams.model import Model, default_model
from streams.policy_rules import rules


@dataclass(frozen=True, slots=True)
class Classification:
    is_policy_event: bool
    categories: list[str]
    countries: list[str]
    orgs: list[str]
    amounts: list[Amount]
    severity: float
    evidence: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "is_policy_event": self.is_policy_event,
            "categories": list(self.categories),
            "countries": list(self.countries),
            "orgs": list(self.orgs),
            "amounts": [a.to_dict() for a in self.amounts],
            "severity": self.severity,
            "evidence": list(self.evidence),
        }


def _severity(is_event: bool, score: float, cats: list[str], amounts: list[Amount]) -> float:
    """0 for non-events; grows with confidence, breadth and the money or power at stake."""
    if not is_event:
        return 0.0
    conf = 1.0 - math.exp(-max(score, 0.0) / 4.0)
    usd = max((a.value for a in amounts if a.unit == "USD"), default=0.0)
    stake = min(math.log10(usd) / 10.0, 1.0) if usd > 1 else 0.0
    heavy = {"legal_tender", "reserve", "cbdc"} & set(cats)
    raw = 0.5 * conf + 0.1 * min(len(cats), 4) / 4 + 0.2 * stake + 0.2 * bool(heavy)
    return round(min(max(raw, 0.05), 1.0), 3)


_WS = re.compile(r"\s+")
_DEFAULT = object()


def classify(title: str, text: str, model: Model | None | object = _DEFAULT) -> Classification:
    """Classify one article. Pure, deterministic and offline; ``model=None``: rules only."""
    view = rules(title, text)
    m = default_model() if model is _DEFAULT else model
    if isinstance(m, Model):
        is_event, cats, countries, evidence = m.decide(view)
    else:
        is_event, cats, countries = view.is_event, view.categories, view.countries
        evidence = view.evidence
    amounts = view.doc.amounts
    return Classification(
        is_policy_event=is_event,
        categories=cats,
        countries=countries,
        orgs=view.doc.orgs(),
        amounts=amounts,
        severity=_severity(is_event, view.score, cats, amounts),
        evidence=[_WS.sub(" ", e) for e in evidence],
    )
