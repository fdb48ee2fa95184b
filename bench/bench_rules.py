"""Rule engine throughput: pure ``RuleEngine.on_price`` evaluations/s (no Kafka, no Faust).

20 holders (each with an average cost) and the four rule types for every holder ("*"): level,
below_cost, pct_move (24h window) and drawdown, fed one price a minute along a deterministic
random walk, so states move and alerts fire. An evaluation is one (rule, holder) step.

    .venv/bin/python -m bench.bench_rules
"""

from __future__ import annotations

import gc
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cpwatch.records import HoldingUpdate
from streams.rules import RuleEngine, parse_rules

HOLDERS = 20
PRICES = 20_000
T0 = datetime(2024, 1, 1, tzinfo=UTC)

RULES = {
    "rules": [
        {
            "id": "level",
            "holder": "*",
            "type": "level",
            "threshold_usd": 60_000_000,
            "hysteresis": 0.01,
        },
        {"id": "cost", "holder": "*", "type": "below_cost", "hysteresis": 0.01},
        {"id": "move", "holder": "*", "type": "pct_move", "window": "24h", "pct": 5},
        {"id": "dd", "holder": "*", "type": "drawdown", "pct": 10},
    ]
}


def holdings() -> list[HoldingUpdate]:
    return [
        HoldingUpdate(
            holder=f"holder-{i:02d}",
            kind="company",
            btc=500 + 100 * i,
            as_of=T0 - timedelta(days=1),
            avg_cost_usd=50_000 + 1_000 * i,
        )
        for i in range(HOLDERS)
    ]


def prices(n: int, seed: int = 3) -> list[tuple[datetime, float]]:
    rnd = random.Random(seed)
    p, out = 60_000.0, []
    for i in range(n):
        p = max(1_000.0, p * (1 + rnd.gauss(0, 0.004)))
        out.append((T0 + timedelta(minutes=i), p))
    return out


def run() -> dict[str, Any]:
    held = holdings()
    series = prices(PRICES)
    rules = parse_rules(json.dumps(RULES))
    RuleEngine(rules).on_price(*series[0], held)  # warm-up
    eng = RuleEngine(rules)
    gc.collect()
    start = time.perf_counter()
    alerts = 0
    for ts, price in series:
        alerts += len(eng.on_price(ts, price, held))
    elapsed = time.perf_counter() - start
    return {
        "holders": HOLDERS,
        "rules": len(rules),
        "prices": PRICES,
        "evaluations": eng.evaluations,
        "alerts": alerts,
        "seconds": round(elapsed, 3),
        "evaluations_per_s": round(eng.evaluations / elapsed),
        "prices_per_s": round(PRICES / elapsed),
    }


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=2)
    sys.stdout.write("\n")
