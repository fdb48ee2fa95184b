"""``cpwatch classify`` and ``cpwatch eval``: the classifier offline, on JSON Lines files.

``classify`` contract: one JSON object per valid input line, in input order, with exactly the
keys of ``OUTPUT_KEYS``. A malformed line (bad JSON, not an object, missing or non-string
``id``/``title``/``text``) prints nothing on stdout; stderr names its line number and the
reason, the remaining lines are still classified and the exit status is 1 (0 when every line
was fine). Blank lines are skipped silently. Consumers pair outputs with inputs by ``id``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from streams.classifier import classify
from streams.evaluate import PRF, Report, evaluate, keyword_baseline
from streams.lexicon import CATEGORIES

OUTPUT_KEYS = (
    "id",
    "is_policy_event",
    "categories",
    "countries",
    "orgs",
    "amounts",
    "severity",
    "evidence",
)
REQUIRED = ("id", "title", "text")


class LineError(ValueError):
    """A JSON Lines record that cannot be classified; the message names the field."""


def parse_line(raw: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise LineError(f"expected a JSON object, got {type(obj).__name__}")
    for key in REQUIRED:
        if key not in obj:
            raise LineError(f"missing field '{key}'")
        if not isinstance(obj[key], str):
            raise LineError(f"field '{key}' must be a string, got {type(obj[key]).__name__}")
    if not obj["id"].strip():
        raise LineError("field 'id' is empty")
    return obj


def _lines(file: str) -> Iterator[tuple[int, str]]:
    if file == "-":
        yield from enumerate(sys.stdin, start=1)
        return
    with open(file, encoding="utf-8", errors="replace") as fh:
        yield from enumerate(fh, start=1)


def classify_stream(lines: Iterator[tuple[int, str]], out: IO[str], err: IO[str]) -> int:
    """Classify numbered lines; return the number of malformed ones."""
    bad = 0
    for lineno, raw in lines:
        if not raw.strip():
            continue
        try:
            rec = parse_line(raw)
        except LineError as exc:
            bad += 1
            err.write(f"line {lineno}: {exc}\n")
            continue
        result = {"id": rec["id"], **classify(rec["title"], rec["text"]).to_dict()}
        out.write(json.dumps({k: result[k] for k in OUTPUT_KEYS}, ensure_ascii=False) + "\n")
    return bad


def classify_command(file: str) -> int:
    """Entry point of ``cpwatch classify``: exit status 1 if any line was malformed."""
    try:
        bad = classify_stream(_lines(file), sys.stdout, sys.stderr)
    except OSError as exc:
        sys.stderr.write(f"error: cannot read {file}: {exc}\n")
        return 2
    if bad:
        sys.stderr.write(f"{bad} malformed line(s) skipped\n")
    return 1 if bad else 0


def load_labelled(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            rec = parse_line(raw)
            label = rec.get("label")
            if not isinstance(label, dict) or "is_policy_event" not in label:
                raise LineError(f"line {lineno}: missing 'label.is_policy_event'")
            label.setdefault("categories", [])
            label.setdefault("countries", [])
            rows.append(rec)
    return rows


def _fmt(p: PRF) -> str:
    return f"{p.precision:.3f} / {p.recall:.3f} / {p.f1:.3f}"


def eval_command(path: Path) -> int:
    """Entry point of ``cpwatch eval``: our classifier and the keyword baseline side by side."""
    from rich.console import Console
    from rich.table import Table

    try:
        rows = load_labelled(path)
    except (OSError, LineError) as exc:
        sys.stderr.write(f"error: {path}: {exc}\n")
        return 2
    ours: Report = evaluate(rows, lambda t, x: classify(t, x).to_dict())
    base: Report = evaluate(rows, keyword_baseline)
    table = Table(title=f"{path.name}: {ours.n} articles (P / R / F1)")
    table.add_column("metric")
    table.add_column("classifier")
    table.add_column("keyword baseline")
    table.add_row("detection", _fmt(ours.detection), _fmt(base.detection))
    table.add_row("categories (micro)", _fmt(ours.categories), _fmt(base.categories))
    for c in CATEGORIES:
        table.add_row(f"  {c}", _fmt(ours.per_category[c]), _fmt(base.per_category[c]))
    table.add_row("countries (micro)", _fmt(ours.countries), _fmt(base.countries))
    table.add_row(
        "misclassified", "\n".join(ours.misclassified) or "-", "\n".join(base.misclassified) or "-"
    )
    Console(width=140).print(table)
    return 0
