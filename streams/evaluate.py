"""Scoring a classifier against labelled articles, and the keyword baseline it must beat.

Metrics follow the labelling: detection P/R/F1 on ``is_policy_event``; categories and
countries as micro-F1 over all articles' (gold, predicted) sets, so a non-event that gets a
category is a false positive; per-category F1 for each of the eight categories.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams import gazetteer as gz
from streams.lexicon import CATEGORIES

Prediction = Mapping[str, Any]  # keys is_policy_event, categories, countries
Predictor = Callable[[str, str], Prediction]


@dataclass(frozen=True)
class PRF:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _set_prf(pairs: Iterable[tuple[set[str], set[str]]]) -> PRF:
    tp = fp = fn = 0
    for gold, pred in pairs:
        tp += len(gold & pred)
        fp += len(pred - gold)
        fn += len(gold - pred)
    return PRF(tp, fp, fn)


@dataclass
class Report:
    detection: PRF
    categories: PRF
    per_category: dict[str, PRF]
    countries: PRF
    misclassified: list[str] = field(default_factory=list)  # wrong is_policy_event
    n: int = 0


def _flag(x: Prediction) -> set[str]:
    return {"event"} if x["is_policy_event"] else set()


def score(gold: list[Prediction], pred: list[Prediction], ids: list[str]) -> Report:
    """Compare gold labels and predictions, article by article (same order)."""
    pairs = list(zip(gold, pred, strict=True))
    det = _set_prf((_flag(g), _flag(p)) for g, p in pairs)
    cat_pairs = [(set(g["categories"]), set(p["categories"])) for g, p in pairs]
    per_cat = {c: _set_prf(({c} & gs, {c} & ps) for gs, ps in cat_pairs) for c in CATEGORIES}
    countries = _set_prf((set(g["countries"]), set(p["countries"])) for g, p in pairs)
    wrong = [
        i
        for i, (g, p) in zip(ids, pairs, strict=True)
        if bool(g["is_policy_event"]) != bool(p["is_policy_event"])
    ]
    return Report(det, _set_prf(cat_pairs), per_cat, countries, wrong, len(gold))


def evaluate(rows: list[Mapping[str, Any]], predictor: Predictor) -> Report:
    preds = [predictor(r["title"], r["text"]) for r in rows]
    return score([r["label"] for r in rows], preds, [str(r["id"]) for r in rows])


# --- keyword baseline -------------------------------------------------------------------------

_CRYPTO = re.compile(
    r"\b(?:bitcoin|btc|crypto\w*|stablecoin\w*|blockchain|digital assets?|cbdc)\b", re.I
)
_GOV = re.compile(
    r"\b(?:government|ministry|minister|central bank|parliament|regulator|president"
    r"|law|imf|world bank|fatf|sec)\b",
    re.I,
)
_BASE_CATS = {
    "legal_tender": re.compile(r"legal tender", re.I),
    "reserve": re.compile(r"\breserve", re.I),
    "mining_energy": re.compile(r"\bmining\b", re.I),
    "regulation": re.compile(r"\bregulat", re.I),
    "taxation": re.compile(r"\btax", re.I),
    "multilateral": re.compile(r"\b(?:IMF|World Bank|FATF|BIS|OECD|G20|FSB)\b"),
    "cooperation": re.compile(r"\b(?:agreement|cooperation|memorandum|letter of intent)\b", re.I),
    "cbdc": re.compile(
        r"\b(?:CBDC|central bank digital currency|digital (?:yuan|rupee|euro|pound))", re.I
    ),
}
_COUNTRY_NAMES = re.compile(
    r"\b(?:"
    + "|".join(
        sorted((re.escape(v.split("|")[0]) for v in gz.PLACES.values()), key=len, reverse=True)
    )
    + r")\b"
)
_NAME_TO_CC = {v.split("|")[0]: cc for cc, v in gz.PLACES.items()}


def keyword_baseline(title: str, text: str) -> dict[str, Any]:
    """Event iff a crypto term and a government/IMF term occur; every named country counts."""
    doc = f"{title}\n{text}"
    event = bool(_CRYPTO.search(doc) and _GOV.search(doc))
    cats = sorted(c for c, rx in _BASE_CATS.items() if rx.search(doc)) if event else []
    countries = sorted({_NAME_TO_CC[m] for m in _COUNTRY_NAMES.findall(doc)})
    return {"is_policy_event": event, "categories": cats, "countries": countries}


# --- cross-validation -------------------------------------------------------------------------

Rows = list[Mapping[str, Any]]
Fitter = Callable[[Rows], Predictor]  # training rows -> predictor (rule-only: ignores them)


def stratified_folds(rows: Rows, k: int, seed: int = 13) -> list[list[int]]:
    """Row indices in ``k`` folds, events and non-events dealt out separately (fixed seed)."""
    rnd = random.Random(seed)  # noqa: S311 - reproducible folds, not secrets
    folds: list[list[int]] = [[] for _ in range(k)]
    start = 0
    for flag in (True, False):
        idx = [i for i, r in enumerate(rows) if bool(r["label"]["is_policy_event"]) is flag]
        rnd.shuffle(idx)
        for j, i in enumerate(idx):
            folds[(start + j) % k].append(i)
        start += len(idx)  # continue the deal so fold sizes stay balanced
    return [sorted(f) for f in folds]


def metrics(rep: Report) -> dict[str, float | None]:
    """Flat metric table of one report; None where a category has no gold or predicted case."""
    out: dict[str, float | None] = {
        "detection P": rep.detection.precision,
        "detection R": rep.detection.recall,
        "detection F1": rep.detection.f1,
        "categories F1": rep.categories.f1,
        "countries F1": rep.countries.f1,
    }
    for c, p in rep.per_category.items():
        out[f"  {c}"] = p.f1 if p.tp + p.fp + p.fn else None
    return out


@dataclass(frozen=True)
class Spread:
    mean: float
    std: float
    lo: float
    hi: float
    pooled: float  # the metric over all held-out predictions at once

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.std:.3f} [{self.lo:.2f}-{self.hi:.2f}] ({self.pooled:.3f})"


@dataclass
class CVResult:
    folds: list[Report]
    pooled: Report

    def summary(self) -> dict[str, Spread]:
        per_fold = [metrics(r) for r in self.folds]
        pooled = metrics(self.pooled)
        out: dict[str, Spread] = {}
        for name in pooled:
            vals = [v for m in per_fold if (v := m[name]) is not None]
            if not vals:
                continue
            mean = sum(vals) / len(vals)
            std = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
            out[name] = Spread(mean, std, min(vals), max(vals), pooled[name] or 0.0)
        return out


def cross_validate(rows: Rows, k: int, fit: Fitter, seed: int = 13) -> CVResult:
    """Train on k-1 folds, score the held-out fold; also pool every held-out prediction."""
    folds = stratified_folds(rows, k, seed)
    reports: list[Report] = []
    gold: list[Prediction] = []
    pred: list[Prediction] = []
    ids: list[str] = []
    for held in folds:
        held_set = set(held)
        predictor = fit([r for i, r in enumerate(rows) if i not in held_set])
        test = [rows[i] for i in held]
        preds = [predictor(r["title"], r["text"]) for r in test]
        labels = [r["label"] for r in test]
        test_ids = [str(r["id"]) for r in test]
        reports.append(score(labels, preds, test_ids))
        gold += labels
        pred += preds
        ids += test_ids
    return CVResult(reports, score(gold, pred, ids))
