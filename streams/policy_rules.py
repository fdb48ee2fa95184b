"""The rule layer of the crypto-policy classifier: weighted lexicon rules over sentences.

An article is a policy event when sentences tie three things together: a crypto-asset term, a
public actor (government, regulator, central bank, leader, multilateral body) and a policy
action or category cue. Market, hack and company-news cues count against it. The title weighs
more than body sentences because news titles state the main action. Every rule that fires
leaves an evidence string, so a decision can be explained and audited. ``rules`` returns the
decision together with the scores behind it, which the learned layer (``streams.model``) reads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from streams.lexicon import CATEGORIES, MULTILATERAL_CATEGORY
from streams.matching import Doc, analyse

# Detection weights and threshold (tuned once on dev; round numbers on purpose).
TITLE_STRONG, TITLE_WEAK, BODY_STRONG, BODY_WEAK = 2.5, 1.5, 1.0, 0.4
BODY_CAP = 6.0
NEG_WEIGHTS = {"neg:market": 0.35, "neg:hack": 0.9, "neg:company": 0.35}
THRESHOLD = 2.0
CAT_MIN_DEFAULT, CAT_REL, MLAT_CAP = 3.0, 0.25, 12.0
CAT_MIN = {"regulation": 6.0, "mining_energy": 4.0}
COUNTRY_MIN, COUNTRY_REL, COUNTRY_SOLO = 2.0, 0.2, 4.0
KIND_WEIGHT = {"place": 1.0, "body": 2.0, "leader": 2.0, "city": 0.5}


@dataclass
class CountryStat:
    """How one country is named in an article: the inputs of the country decision."""

    score: float = 0.0  # weighted mentions (title x2, actor +1)
    actor_score: float = 0.0  # the same over mentions that act
    mentions: int = 0
    actors: int = 0
    subjects: int = 0  # subject of a policy verb ("Kosovo bans")
    possessive: int = 0  # "Kosovo's government"
    located: int = 0  # only a place ("in Kosovo", "-based")
    title: int = 0
    crowded: int = 0  # mentions in a sentence naming three or more states (a list)
    crypto_sents: int = 0  # sentences that also name a crypto-asset
    order: int = 0  # rank of its first mention among the countries named
    kinds: Counter[str] = field(default_factory=Counter)
    sents: set[int] = field(default_factory=set)


@dataclass
class RuleView:
    doc: Doc
    score: float
    is_event: bool
    parts: dict[str, float]  # detection components
    cat_scores: dict[str, float]
    cat_picks: list[str]  # what the category rules pick, event or not
    categories: list[str]
    country_stats: dict[str, CountryStat]
    countries: list[str]
    evidence: list[str]


def _detect(doc: Doc, evidence: list[str], parts: dict[str, float]) -> float:
    score = 0.0
    body = 0.0
    for i, sent in enumerate(doc.sents):
        crypto = sent["crypto"] > 0
        acted = sent["action"] > 0 or sent["cue"] > 0
        strong = crypto and acted and (sent["state"] + sent["body"] + sent["mlat"]) > 0
        weak = crypto and acted and (sent["state_weak"] + sent["country"]) > 0
        if i == 0:
            gain = TITLE_STRONG if strong else TITLE_WEAK if weak else 0.0
            if gain:
                score += gain
                parts["title_strong" if strong else "title_weak"] = 1.0
                evidence.append(f"title ties crypto, {'state' if strong else 'place'} and action")
        else:
            body += BODY_STRONG if strong else BODY_WEAK if weak else 0.0
    body = min(body, BODY_CAP)
    if body:
        evidence.append(f"policy sentences score {body:.1f}")
    neg = 0.0
    for tag, weight in NEG_WEIGHTS.items():
        n = doc.tag_count[tag] + doc.sents[0][tag]  # a title cue counts twice
        if n:
            parts[tag] = min(n, 8)
            neg += weight * min(n, 8)
            evidence.append(f"{tag} x{n}: {', '.join(doc.examples(tag))}")
    # Negatives are judged against how much policy there is: dense policy text survives them.
    neg *= 1.0 / (1.0 + body / 3.0)
    parts["body"] = body
    parts["neg"] = neg
    return score + body - neg


def _category_scores(doc: Doc) -> dict[str, float]:
    scores = dict.fromkeys(CATEGORIES, 0.0)
    for i, sent in enumerate(doc.sents):
        btc = sent.get("btc_amount", 0)
        if not sent.get("cue", 0) and not btc:
            continue  # no category cue: adds nothing to any category
        crypto = sent.get("crypto", 0) > 0 or i == 0
        actor = sent.get("state", 0) + sent.get("body", 0) + sent.get("mlat", 0)
        actor += sent.get("country", 0)
        strong_all = {c: float(sent.get(f"CAT:{c}", 0)) for c in CATEGORIES}
        n_strong = sum(strong_all.values())
        scale = (0.5 if sent.get("background", 0) else 1.0) * (2.0 if i == 0 else 1.0)
        for cat in CATEGORIES:
            strong, weak = strong_all[cat], float(sent.get(f"cat:{cat}", 0))
            if cat == "regulation" and n_strong - strong:
                # Regulation words are everywhere in policy news; a law *about* mining, tax,
                # reserves or CBDCs belongs to that category, so here they count only alone.
                strong, weak = strong / 2, 0.0
            if cat == "reserve" and actor and crypto:
                strong += btc
            s = 2.0 * strong
            if crypto and (actor or i == 0 or cat in {"cbdc", "mining_energy"}):
                s += weak
            elif not crypto:
                s *= 0.5
            scores[cat] += s * scale
    mlat = [h for h in doc.mlat_hits if h[1] in MULTILATERAL_CATEGORY]
    crypto_sents = {i for _, _, i in mlat if doc.sents[i]["crypto"] > 0 or i == 0}
    if len(mlat) >= 2 and crypto_sents:
        scores["multilateral"] = min(1.5 * len(mlat) + 2.0 * len(crypto_sents), MLAT_CAP)
    else:
        scores["multilateral"] = 0.0
    return scores


def _pick_categories(scores: dict[str, float], n_countries: int, evidence: list[str]) -> list[str]:
    if n_countries < 2 and scores["cooperation"] < 6.0:
        scores = {**scores, "cooperation": 0.0}  # cooperation needs two parties
    top = max(scores.values())
    # Cooperation is gated on two parties above, so it needs no share of the top score.
    cats = sorted(
        c
        for c, s in scores.items()
        if s >= CAT_MIN.get(c, CAT_MIN_DEFAULT) and (s >= CAT_REL * top or c == "cooperation")
    )
    if not cats and top > 0:
        cats = [max(scores, key=lambda c: scores[c])]
    for c in cats:
        evidence.append(f"category {c} score {scores[c]:.1f}")
    return cats


def country_stats(doc: Doc) -> dict[str, CountryStat]:
    stats: dict[str, CountryStat] = {}
    for m in doc.country_hits:
        st = stats.setdefault(m.cc, CountryStat())
        w = KIND_WEIGHT[m.kind] + (1.0 if m.actor else 0.0)
        if m.sent == 0:
            w *= 2.0
            st.title += 1
        st.score += w
        st.mentions += 1
        st.kinds[m.kind] += 1
        st.sents.add(m.sent)
        if m.actor:
            st.actor_score += w
            st.actors += 1
        st.subjects += m.subject
        st.possessive += m.possessive
        st.located += m.located and not m.actor
    per_sent: dict[int, set[str]] = {}
    for m in doc.country_hits:
        per_sent.setdefault(m.sent, set()).add(m.cc)
    for m in doc.country_hits:
        stats[m.cc].crowded += len(per_sent[m.sent]) >= 3
    for rank, st in enumerate(stats.values()):  # dicts keep first-mention order
        st.order = rank
        st.crypto_sents = sum(doc.sents[i]["crypto"] > 0 for i in st.sents)
    return stats


def _countries(
    stats: dict[str, CountryStat], restrict_to_actors: bool, evidence: list[str]
) -> list[str]:
    scores = {
        cc: st.actor_score if restrict_to_actors else st.score
        for cc, st in stats.items()
        if st.actors or not restrict_to_actors
    }
    if not scores:
        return []
    top = max(scores.values())
    # A state named in one body sentence only is usually a passing comparison or a venue.
    out = sorted(
        cc
        for cc, s in scores.items()
        if s >= COUNTRY_MIN
        and s >= COUNTRY_REL * top
        and (0 in stats[cc].sents or len(stats[cc].sents) >= 2 or s >= COUNTRY_SOLO)
    )
    for cc in out:
        evidence.append(f"country {cc} score {scores[cc]:.1f}")
    return out


def rules(title: str, text: str) -> RuleView:
    """Score one article with the rules alone. Pure, deterministic and offline."""
    doc = analyse(title, text)
    evidence: list[str] = []
    parts: dict[str, float] = {}
    score = _detect(doc, evidence, parts)
    crypto_mentions = doc.tag_count["crypto"]
    is_event = score >= THRESHOLD and (crypto_mentions >= 2 or doc.sents[0]["crypto"] > 0)
    evidence.insert(
        0, f"score {score:.2f} (threshold {THRESHOLD}), crypto terms x{crypto_mentions}"
    )
    stats = country_stats(doc)
    cat_scores = _category_scores(doc)
    # Stories led by a multilateral body name only the states that act themselves.
    led_by_mlat = doc.sents[0]["mlat"] > 0 and doc.sents[0]["country"] == 0
    # Categories are picked for non-events too: the learned layer may overrule detection.
    note = evidence if is_event else []
    actors = _countries(stats, led_by_mlat, note)
    picks = _pick_categories(cat_scores, len(actors), note)
    cats: list[str] = []
    if is_event:
        countries, cats = actors, picks
    elif doc.sents[0]["crypto"] > 0:
        countries = []  # crypto market or company news: no state's policy at stake
    else:
        countries = _countries(stats, False, evidence)
    return RuleView(
        doc, score, is_event, parts, cat_scores, picks, cats, stats, countries, evidence
    )
