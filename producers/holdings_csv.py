"""Read holdings (format of treasuries.csv) from CSV or YAML into ``HoldingUpdate``s.

Columns: holder,kind,country,btc,as_of,avg_cost_usd,source_url,note. The holder column is
the holder id (the key of the compacted topic), ``as_of`` a date taken as midnight UTC.
YAML files hold a list of mappings with the same fields.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cpwatch.exceptions import RecordError
from cpwatch.records import HoldingUpdate
from producers.fields import FieldError, parse_number, parse_time
from producers.summary import Bad

REQUIRED = ("holder", "kind", "btc", "as_of")
KINDS = ("state", "company", "fund")


class Undisclosed(FieldError):
    """The row names a holder but no amount (announced reserve, size unknown): not an error."""


class HoldingsFormatError(ValueError):
    """The file as a whole cannot be read (unknown extension, missing columns, not a list)."""


def _text(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    return "" if value is None else str(value).strip()


def holding_from_row(row: Mapping[str, Any]) -> HoldingUpdate:
    """One row to a ``HoldingUpdate``; raise ``FieldError`` naming the first bad field."""
    holder = _text(row, "holder")
    if not holder:
        raise FieldError("holder", "missing")
    kind = _text(row, "kind").lower()
    if kind not in KINDS:
        raise FieldError("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    country = _text(row, "country").upper() or None
    if country is not None and (len(country) != 2 or not country.isalpha()):
        raise FieldError("country", f"not an ISO 3166 alpha-2 code: {country!r}")
    if not _text(row, "btc"):
        # Sending 0 would claim the holder sold everything; skip until an amount is known.
        raise Undisclosed("btc", f"amount not disclosed for {holder}")
    btc = parse_number(row.get("btc"), "btc", minimum=0)
    avg = parse_number(
        row.get("avg_cost_usd"), "avg_cost_usd", required=False, minimum=0, strict_min=True
    )
    return HoldingUpdate(
        holder=holder,
        name=holder,
        kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
        country=country,
        btc=btc,  # type: ignore[arg-type]  # required: never None
        as_of=parse_time(row.get("as_of"), "as_of"),
        avg_cost_usd=avg,
        source=_text(row, "source_url"),
    )


def _convert(row: Mapping[str, Any], where: str, raw: str) -> HoldingUpdate | Bad:
    try:
        return holding_from_row(row)
    except Undisclosed as exc:
        return Bad(where, "btc not disclosed", str(exc))  # no payload: nothing to dead-letter
    except FieldError as exc:
        return Bad(f"{where}:{exc.field}", "invalid field", str(exc), raw)
    except (RecordError, ValueError) as exc:
        return Bad(where, "invalid row", str(exc).splitlines()[0], raw)


def _read_csv(path: Path) -> Iterator[HoldingUpdate | Bad]:
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in fields]
        if missing:
            raise HoldingsFormatError(f"{path}:1: missing column(s) {', '.join(missing)}")
        reader.fieldnames = fields
        for row in reader:
            raw = ",".join("" if v is None else str(v) for v in row.values())
            yield _convert(row, f"{path}:{reader.line_num}", raw)


def _read_yaml(path: Path) -> Iterator[HoldingUpdate | Bad]:
    import yaml

    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes keep line numbers
        items = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise HoldingsFormatError(f"{path}: not valid YAML: {exc}") from exc
    if items is None:
        return
    if not isinstance(items, list) or not isinstance(root, yaml.SequenceNode):
        raise HoldingsFormatError(f"{path}: expected a list of holdings")
    for i, (item, node) in enumerate(zip(items, root.value, strict=True), start=1):
        where = f"{path}:{node.start_mark.line + 1}"
        if not isinstance(item, dict):
            yield Bad(where, "invalid row", f"item {i} is not a mapping", str(item)[:500])
            continue
        yield _convert({str(k): v for k, v in item.items()}, where, str(item)[:2000])


def read_holdings(path: Path) -> Iterator[HoldingUpdate | Bad]:
    """Holdings of a ``.csv``, ``.yaml`` or ``.yml`` file, bad rows yielded as ``Bad``."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in (".yaml", ".yml"):
        return _read_yaml(path)
    raise HoldingsFormatError(f"{path}: expected a .csv, .yaml or .yml file")
