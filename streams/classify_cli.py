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
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import IO, Any

from streams.classifier import classify
from streams.evaluate import (
    PRF,
    Fitter,
    Predictor,
    Rows,
    cross_validate,
    evaluate,
    keyword_baseline,
    metrics,
)
from streams.holdings_news import HolderNames, extract_holdings
from streams.lexicon import CATEGORIES
from streams.model import fit

OUTPUT_KEYS = (
    "id",
    "is_policy_event",
    "categories",
    "countries",
    "orgs",
    "amounts",
    "severity",
    "evidence",
    "holdings",
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


def _published(rec: dict[str, Any]) -> datetime | None:
    """The optional ``published`` field as an aware datetime (dates of holdings statements)."""
    value = rec.get("published")
    try:
        ts = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return ts.replace(tzinfo=UTC) if ts is not None and ts.tzinfo is None else ts


def classify_stream(lines: Iterator[tuple[int, str]], out: IO[str], err: IO[str]) -> int:
    """Classify numbered lines; return the number of malformed ones."""
    registry = resources.files("cpwatch") / "data" / "treasuries.csv"
    names = HolderNames.from_csv_text(registry.read_text(encoding="utf-8"))
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
        found = extract_holdings(rec["title"], rec["text"], names, _published(rec))
        result["holdings"] = [h.to_dict() for h in found]
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


def _rules_only(title: str, text: str) -> dict[str, Any]:
    return classify(title, text, None).to_dict()


def _final(title: str, text: str) -> dict[str, Any]:
    return classify(title, text).to_dict()


def _fit_model(rows: Rows) -> Predictor:
    model = fit(rows)
    return lambda title, text: classify(title, text, model).to_dict()


# name -> how to build a predictor from training rows (rule-only ones ignore the rows)
FITTERS: dict[str, Fitter] = {
    "classifier": _fit_model,
    "rules only": lambda _rows: _rules_only,
    "keyword baseline": lambda _rows: keyword_baseline,
}


def _load_all(paths: list[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in paths:
        rows += load_labelled(path)
    return rows


def eval_command(paths: Path | list[Path], cv: int = 0, seed: int = 13) -> int:
    """Entry point of ``cpwatch eval``: plain scoring, or ``cv``-fold cross-validation."""
    from rich.console import Console
    from rich.table import Table

    paths = [paths] if isinstance(paths, Path) else paths
    names = ", ".join(p.name for p in paths)
    try:
        rows = _load_all(paths)
    except (OSError, LineError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if cv:
        if not 2 <= cv <= len(rows):
            sys.stderr.write(f"error: --cv must be between 2 and {len(rows)}\n")
            return 2
        return _print_cv(rows, names, cv, seed, Console(width=160))
    reports = {
        "classifier": evaluate(rows, _final),
        "rules only": evaluate(rows, _rules_only),
        "keyword baseline": evaluate(rows, keyword_baseline),
    }
    table = Table(title=f"{names}: {len(rows)} articles (P / R / F1)")
    table.add_column("metric")
    for name in reports:
        table.add_column(name)
    rep = list(reports.values())
    table.add_row("detection", *(_fmt(r.detection) for r in rep))
    table.add_row("categories (micro)", *(_fmt(r.categories) for r in rep))
    for c in CATEGORIES:
        table.add_row(f"  {c}", *(_fmt(r.per_category[c]) for r in rep))
    table.add_row("countries (micro)", *(_fmt(r.countries) for r in rep))
    table.add_row("misclassified", *("\n".join(r.misclassified) or "-" for r in rep))
    Console(width=160).print(table)
    return 0


def _print_cv(rows: Rows, names: str, k: int, seed: int, console: Any) -> int:
    from rich.table import Table

    results = {name: cross_validate(rows, k, f, seed) for name, f in FITTERS.items()}
    folds = Table(
        title=f"{names}: {k}-fold CV, per fold (detection F1 / categories F1 / countries F1)"
    )
    folds.add_column("fold")
    for name in results:
        folds.add_column(name)
    for i in range(k):
        cells = []
        for res in results.values():
            m = metrics(res.folds[i])
            cells.append(
                f"{m['detection F1']:.3f} / {m['categories F1']:.3f} / {m['countries F1']:.3f}"
                f"  (n={res.folds[i].n})"
            )
        folds.add_row(str(i + 1), *cells)
    console.print(folds)
    summary = {name: res.summary() for name, res in results.items()}
    table = Table(
        title=f"{names}: {len(rows)} articles, {k}-fold CV (stratified, seed {seed}): "
        "mean ± std \\[min-max] (pooled)"
    )
    table.add_column("metric")
    for name in summary:
        table.add_column(name)
    for metric in next(iter(summary.values())):
        table.add_row(metric, *(str(s[metric]) if metric in s else "-" for s in summary.values()))
    console.print(table)
    return 0
