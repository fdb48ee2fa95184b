"""Train the classifier's learned layer and write its weights (only weights, no texts).

    .venv/bin/python scripts/train_classifier.py [FILE ...]

Reads the labelled dev sets (default: ../shared/data/news/dev.jsonl and dev2.jsonl next to the
repository), fits ``streams.model`` on all of them and writes
``cpwatch/data/classifier_model.json``. Deterministic: the same data gives the same file.
Check it first with ``cpwatch eval FILE... --cv 5``, which trains on training folds only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.classify_cli import load_labelled  # noqa: E402
from streams.model import HYPER, MODEL_FILE, fit  # noqa: E402

DEFAULT = [ROOT.parent / "shared" / "data" / "news" / f for f in ("dev.jsonl", "dev2.jsonl")]
OUT = ROOT / "cpwatch" / "data" / MODEL_FILE


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or DEFAULT
    missing = [p for p in paths if not p.exists()]
    if missing:
        sys.stderr.write(f"error: missing {', '.join(map(str, missing))}\n")
        return 2
    rows = [r for p in paths for r in load_labelled(p)]
    model = fit(rows)
    payload = {
        "trained_on": {
            "articles": len(rows),
            "events": sum(bool(r["label"]["is_policy_event"]) for r in rows),
        },
        "hyper": HYPER,
        **model.to_dict(),
    }
    OUT.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    n = len(model.event.weights) + sum(len(m.weights) for m in model.cats.values())
    sys.stdout.write(f"wrote {OUT.relative_to(ROOT)}: {len(rows)} articles, {n} weights\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
