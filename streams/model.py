"""The learned layer: logistic regressions over rule scores and word cues.

Three kinds of model, all small and regularised (the labelled set is ~130 articles):

* ``event``: is the article a policy event? Rule detection parts plus present words.
* one per category: does an event belong to it? That category's rule scores plus words.
* ``country``: is a named country an actor of the event? Per candidate, only how it is named
  (title, subject of a policy verb, state body, share of mentions ...), no names at all, so it
  carries over to countries absent from training.

Weights live in ``cpwatch/data/classifier_model.json`` (written by
``scripts/train_classifier.py``); without that file the rules decide alone.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from streams.lexicon import CATEGORIES
from streams.logreg import LogReg, train
from streams.matching import normalise
from streams.policy_rules import CountryStat, RuleView, rules

MODEL_FILE = "classifier_model.json"
RULE_CAT_P = 0.25  # a rule-picked category is kept from this learned probability on
_WORD = re.compile(r"[a-z][a-z'-]{2,}")
MIN_DF, MIN_DF_TITLE = 4, 3  # a word cue must occur in this many training articles
# Rule features are few and meant to carry the decision; word cues are many, so they are held
# back harder: they can tip close calls but not override the rules on their own.
HYPER: dict[str, Any] = {"l2": 1.0, "l2_words": 4.0, "steps": 300, "country_floor": 0.3}


def _words(text: str) -> set[str]:
    return set(_WORD.findall(normalise(text).lower()))


def _log(x: float) -> float:
    return math.log1p(max(x, 0.0))


def event_features(view: RuleView, words: Iterable[str], title: Iterable[str]) -> dict[str, float]:
    doc, p = view.doc, view.parts
    s0 = doc.sents[0]
    tc = doc.tag_count
    top_cat = max(view.cat_scores.values(), default=0.0)
    best_actor = max((st.actor_score for st in view.country_stats.values()), default=0.0)
    x = {
        "r:score": max(min(view.score, 8.0), -4.0) / 4.0,
        "r:rule_event": float(view.is_event),
        "r:title_strong": p.get("title_strong", 0.0),
        "r:title_weak": p.get("title_weak", 0.0),
        "r:body": p.get("body", 0.0) / 6.0,
        "r:neg": _log(p.get("neg", 0.0)),
        "r:neg_market": _log(p.get("neg:market", 0.0)),
        "r:neg_hack": _log(p.get("neg:hack", 0.0)),
        "r:neg_company": _log(p.get("neg:company", 0.0)),
        "r:crypto": _log(tc["crypto"]) / 2.0,
        "r:title_crypto": float(s0["crypto"] > 0),
        "r:state": _log(tc["state"] + tc["body"]) / 2.0,
        "r:title_state": float(s0["state"] + s0["body"] + s0["mlat"] > 0),
        "r:action": _log(tc["action"]) / 2.0,
        "r:title_action": float(s0["action"] + s0["cue"] > 0),
        "r:mlat": _log(tc["mlat"]),
        "r:top_cat": _log(top_cat) / 3.0,
        "r:actor_country": _log(best_actor) / 2.0,
        **_sentence_kinds(view),
    }
    return _with_words(x, words, title)


def _with_words(
    x: dict[str, float], words: Iterable[str], title: Iterable[str]
) -> dict[str, float]:
    x.update((f"w:{w}", 1.0) for w in words)
    x.update((f"t:{w}", 1.0) for w in title)
    return x


def _sentence_kinds(view: RuleView) -> dict[str, float]:
    """How many body sentences tie crypto to a state, a place, a strong cue or only a verb."""
    n = Counter[str]()
    for sent in view.doc.sents[1:]:
        if not sent["crypto"]:
            continue
        strong_cue = any(k.startswith("CAT:") for k in sent)
        state = sent["state"] + sent["body"] + sent["mlat"] > 0
        n["s:crypto_state"] += state
        n["s:crypto_place"] += sent["country"] > 0
        n["s:crypto_strong_cue"] += strong_cue
        n["s:crypto_state_cue"] += state and strong_cue
        n["s:crypto_neg"] += any(k.startswith("neg:") for k in sent)
        n["s:crypto_bare"] += not (state or strong_cue or sent["country"])
    return {k: _log(v) / 2.0 for k, v in n.items()}


def category_features(
    view: RuleView, cat: str, words: Iterable[str], title: Iterable[str]
) -> dict[str, float]:
    doc = view.doc
    score = view.cat_scores[cat]
    top = max(view.cat_scores.values(), default=0.0)
    x = {
        "c:score": _log(score) / 2.0,
        "c:share": score / top if top > 0 else 0.0,
        "c:rule": float(cat in view.cat_picks),
        "c:title": float(doc.sents[0][f"CAT:{cat}"] + doc.sents[0][f"cat:{cat}"] > 0),
        "c:strong": _log(doc.tag_count[f"CAT:{cat}"]) / 2.0,
        "c:weak": _log(doc.tag_count[f"cat:{cat}"]) / 2.0,
        "c:countries": _log(len(view.countries)),
        "c:mlat": _log(doc.tag_count["mlat"]),
    }
    return _with_words(x, words, title)


def country_features(view: RuleView, cc: str) -> dict[str, float]:
    stats = view.country_stats
    st: CountryStat = stats[cc]
    top = max(s.score for s in stats.values())
    top_actor = max(s.actor_score for s in stats.values())
    total = sum(s.mentions for s in stats.values())
    return {
        "k:score": _log(st.score) / 2.0,
        "k:share": st.score / top,
        "k:actor_share": st.actor_score / top_actor if top_actor else 0.0,
        "k:mention_share": st.mentions / total,
        "k:top": float(st.score == top),
        "k:title": float(st.title > 0),
        "k:sents": _log(len(st.sents)),
        "k:actors": _log(st.actors),
        "k:subject": float(st.subjects > 0),
        "k:possessive": float(st.possessive > 0),
        "k:only_located": float(st.located == st.mentions),
        "k:body": float(st.kinds["body"] + st.kinds["leader"] > 0),
        "k:only_city": float(st.kinds["city"] == st.mentions),
        "k:rule": float(cc in view.countries),
        "k:rivals": _log(len(stats) - 1),
        "k:crowded": st.crowded / st.mentions,
        "k:crypto_sents": _log(st.crypto_sents),
        "k:first": float(st.order == 0),
        "k:order": _log(st.order),
        "k:title_led_other": float(st.title == 0 and any(s.title for s in stats.values())),
    }


def _fmt(parts: Sequence[tuple[str, float]]) -> str:
    return ", ".join(f"{k} {v:+.2f}" for k, v in parts)


@dataclass
class Model:
    event: LogReg
    cats: dict[str, LogReg]
    country: LogReg
    country_floor: float = 0.3

    def __post_init__(self) -> None:
        keys = [*self.event.weights, *(k for m in self.cats.values() for k in m.weights)]
        self._vocab = frozenset(k[2:] for k in keys if k.startswith("w:"))
        self._title_vocab = frozenset(k[2:] for k in keys if k.startswith("t:"))

    def _cues(self, view: RuleView, title: str) -> tuple[set[str], set[str]]:
        # Only words the model knows are kept: a set intersection, cheap at stream rates.
        return _words(view.doc.text) & self._vocab, _words(title) & self._title_vocab

    def decide(self, view: RuleView) -> tuple[bool, list[str], list[str], list[str]]:
        """(is_event, categories, countries, evidence) for one rule-scored article."""
        title = view.doc.text.partition("\n")[0]
        words, tw = self._cues(view, title)
        evidence = list(view.evidence)
        xe = event_features(view, words, tw)
        p = self.event.prob(xe)
        is_event = p >= 0.5
        evidence.append(f"model event p={p:.2f}: {_fmt(self.event.explain(xe))}")
        if not is_event:
            return False, [], ([] if view.doc.sents[0]["crypto"] else view.countries), evidence
        # Word cues are the same for every category: built once, scored per model.
        shared = _with_words({}, words, tw)
        xs = {c: category_features(view, c, (), ()) for c in self.cats}
        probs = {c: m.prob(xs[c], shared) for c, m in self.cats.items()}
        # A category the rules pick needs less learned support: the rules are precise on it.
        cats = sorted(
            c for c, q in probs.items() if q >= 0.5 or (q >= RULE_CAT_P and c in view.cat_picks)
        )
        if not cats and probs:
            cats = [max(probs, key=lambda c: probs[c])]
        for c in cats:
            why = _fmt(self.cats[c].explain({**xs[c], **shared}, 3))
            evidence.append(f"model {c} p={probs[c]:.2f}: {why}")
        cprobs = {cc: self.country.prob(country_features(view, cc)) for cc in view.country_stats}
        countries = sorted(cc for cc, q in cprobs.items() if q >= 0.5)
        if not countries and cprobs:
            best = max(sorted(cprobs), key=lambda cc: cprobs[cc])
            countries = [best] if cprobs[best] >= self.country_floor else []
        for cc in countries:
            evidence.append(f"model country {cc} p={cprobs[cc]:.2f}")
        return True, cats, countries, evidence

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event.to_dict(),
            "categories": {c: m.to_dict() for c, m in self.cats.items()},
            "country": self.country.to_dict(),
            "country_floor": self.country_floor,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Model:
        return cls(
            LogReg.from_dict(d["event"]),
            {c: LogReg.from_dict(m) for c, m in d["categories"].items()},
            LogReg.from_dict(d["country"]),
            float(d.get("country_floor", 0.3)),
        )


@lru_cache(maxsize=1)
def default_model() -> Model | None:
    """The packaged weights, or None (rules only) when they are absent."""
    path = resources.files("cpwatch") / "data" / MODEL_FILE
    if not path.is_file():
        return None
    return Model.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _vocab(texts: Iterable[set[str]], min_df: int) -> frozenset[str]:
    df: dict[str, int] = {}
    for ws in texts:
        for w in ws:
            df[w] = df.get(w, 0) + 1
    return frozenset(w for w, n in df.items() if n >= min_df)


def fit(rows: Sequence[Mapping[str, Any]], hyper: Mapping[str, Any] | None = None) -> Model:
    """Train every part of the model on labelled rows (title, text, label)."""
    h = {**HYPER, **(hyper or {})}
    views = [rules(r["title"], r["text"]) for r in rows]
    body = [_words(v.doc.text) for v in views]
    titles = [_words(r["title"]) for r in rows]
    vocab, tvocab = _vocab(body, MIN_DF), _vocab(titles, MIN_DF_TITLE)
    if not h.get("words", True):
        vocab = tvocab = frozenset()
    body = [b & vocab for b in body]
    titles = [t & tvocab for t in titles]
    labels = [r["label"] for r in rows]
    opts = {"l2": h["l2"], "steps": h["steps"], "l2_of": {"w:": h["l2_words"], "t:": h["l2_words"]}}
    xs = [event_features(v, b, t) for v, b, t in zip(views, body, titles, strict=True)]
    event = train(xs, [bool(g["is_policy_event"]) for g in labels], **opts)
    ev = [i for i, g in enumerate(labels) if g["is_policy_event"]]
    cats = {
        c: train(
            [category_features(views[i], c, body[i], titles[i]) for i in ev],
            [c in labels[i]["categories"] for i in ev],
            **opts,
        )
        for c in CATEGORIES
    }
    cx, cy = [], []
    for i in ev:
        gold = set(labels[i]["countries"])
        for cc in views[i].country_stats:
            cx.append(country_features(views[i], cc))
            cy.append(cc in gold)
    country = train(cx, cy, l2=h["l2"], steps=h["steps"])
    return Model(event, cats, country, float(h["country_floor"]))
