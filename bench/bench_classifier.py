"""Classifier throughput: articles/s of ``streams.classifier.classify`` on one core.

The process is pinned to core 0 (``os.sched_setaffinity``) so the figure is per core. Two
corpora: synthetic articles generated here (20 varied templates of about 1,500 characters,
repeated to 2,000), and the labelled dev set ``../shared/data/news/dev.jsonl`` when present.

    .venv/bin/python -m bench.bench_classifier
"""

from __future__ import annotations

import gc
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from streams.classifier import classify

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "data" / "news" / "dev.jsonl"
N_SYNTH = 2_000

# Sentence pools by theme; each synthetic article mixes themes so the classifier sees policy
# events, market noise, hacks and company news, with countries, bodies and amounts.
POLICY = [
    "The parliament of {country} approved a bill on Tuesday that recognises bitcoin as legal tender.",
    "The central bank of {country} said it will ban banks from processing cryptocurrency payments.",
    "Regulators in {country} published a draft framework for licensing crypto-asset service providers.",
    "The finance ministry of {country} announced a {amount} strategic bitcoin reserve funded by seized coins.",
    "President of {country} signed an executive order directing agencies to study a digital currency.",
    "The securities commission of {country} approved the first spot bitcoin exchange-traded funds.",
    "Lawmakers in {country} voted to impose a 30 percent tax on gains from virtual digital assets.",
    "The IMF urged {country} to reconsider its bitcoin law, citing risks to financial stability.",
    "Authorities in {country} ordered crypto miners to shut down amid an energy shortage.",
    "The government of {country} will sell {amount} of bitcoin confiscated in a fraud investigation.",
]
MARKET = [
    "Bitcoin rose 4 percent to {price} dollars in Asian trading as traders bet on lower rates.",
    "Ether fell sharply after a large holder moved {amount} to an exchange, analysts said.",
    "Trading volumes on major exchanges hit their highest level since the spring rally.",
    "Analysts at a brokerage said the price of bitcoin could test {price} dollars by year end.",
    "Crypto stocks followed the market lower as investors took profits on the rally.",
]
HACK = [
    "Hackers drained {amount} from a decentralised finance protocol by exploiting a bridge contract.",
    "The exchange halted withdrawals after detecting suspicious activity in one of its hot wallets.",
    "Security researchers traced the stolen funds through a mixer to several new addresses.",
]
COMPANY = [
    "The software company said it bought another {amount} worth of bitcoin for its treasury.",
    "A payments firm launched a stablecoin settlement service for merchants in {country}.",
    "The miner reported quarterly revenue of {amount} and said it will expand its fleet.",
    "The exchange hired a former regulator as chief compliance officer, it said in a statement.",
]
FILLER = [
    "The announcement came after months of public consultation and debate among experts.",
    "Officials did not respond to a request for comment on the timing of the measure.",
    "Critics said the plan lacked detail on consumer protection and oversight.",
    "Supporters argued the move would attract investment and modernise the payment system.",
    "The decision is expected to be reviewed again at the next session in the autumn.",
    "Local media reported that the details will be published in the official gazette.",
]
COUNTRIES = [
    "El Salvador",
    "Nigeria",
    "India",
    "Brazil",
    "Japan",
    "Germany",
    "Argentina",
    "Kazakhstan",
    "the United States",
    "South Korea",
    "Thailand",
    "Turkey",
]
TITLES = [
    "{country} moves to regulate crypto exchanges",
    "Bitcoin climbs as traders eye rate cuts",
    "{country} central bank warns on crypto payments",
    "DeFi protocol loses {amount} in exploit",
    "{country} lawmakers approve bitcoin bill",
    "Miner expands as hashprice recovers",
    "{country} to build strategic bitcoin reserve",
    "Exchange freezes withdrawals after hack",
    "IMF presses {country} over bitcoin law",
    "Crypto firm adds {amount} in bitcoin to treasury",
]
MIXES = [
    (POLICY, FILLER),
    (MARKET, FILLER),
    (HACK, MARKET),
    (COMPANY, MARKET),
    (POLICY, MARKET),
    (POLICY, COMPANY),
    (COMPANY, FILLER),
    (HACK, FILLER),
]


def synthetic_articles(
    n_distinct: int = 20, length: int = 1_500, seed: int = 7
) -> list[tuple[str, str]]:
    """``n_distinct`` varied (title, text) pairs of about ``length`` characters."""
    rnd = random.Random(seed)
    out = []
    for i in range(n_distinct):
        main, side = MIXES[i % len(MIXES)]
        fill = {
            "country": rnd.choice(COUNTRIES),
            "amount": f"${rnd.randint(2, 900)} million",
            "price": f"{rnd.randint(20, 120)},{rnd.randint(100, 999)}",
        }
        sentences: list[str] = []
        while sum(len(s) + 1 for s in sentences) < length:
            pool = main if rnd.random() < 0.55 else side if rnd.random() < 0.7 else FILLER
            sentences.append(rnd.choice(pool).format(**fill))
        paras = [" ".join(sentences[j : j + 3]) for j in range(0, len(sentences), 3)]
        out.append((TITLES[i % len(TITLES)].format(**fill), "\n".join(paras)))
    return out


def _rate(articles: list[tuple[str, str]]) -> dict[str, Any]:
    for title, text in articles[:20]:  # warm-up: lexicon compilation, caches
        classify(title, text)
    gc.collect()
    start = time.perf_counter()
    events = 0
    for title, text in articles:
        events += classify(title, text).is_policy_event
    elapsed = time.perf_counter() - start
    return {
        "articles": len(articles),
        "seconds": round(elapsed, 3),
        "articles_per_s": round(len(articles) / elapsed, 1),
        "mean_chars": round(sum(len(t) + len(x) for t, x in articles) / len(articles)),
        "events": events,
    }


def run() -> dict[str, Any]:
    pinned = None
    if hasattr(os, "sched_setaffinity"):
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {0})
        pinned = 0
    try:
        base = synthetic_articles()
        synth = [base[i % len(base)] for i in range(N_SYNTH)]
        result: dict[str, Any] = {"core": pinned, "synthetic": _rate(synth)}
        if DEV.exists():
            dev = [
                (d["title"], d.get("text", ""))
                for d in map(json.loads, DEV.read_text().splitlines())
                if d.get("title")
            ]
            reps = max(1, N_SYNTH // max(1, len(dev)))
            result["dev"] = {**_rate(dev * reps), "distinct": len(dev), "source": str(DEV)}
        else:
            result["dev"] = None
    finally:
        if pinned is not None:
            os.sched_setaffinity(0, before)
    return result


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=2)
    sys.stdout.write("\n")
