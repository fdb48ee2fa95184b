"""Property fuzz of the input edges: the record parsers and ``cpwatch classify``.

Whatever bytes, text or JSON arrive, a parser either returns a record or raises
``RecordError`` (which the agents dead-letter); ``classify`` answers one line per valid input
line, in order, and exits 0 or 1.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpwatch.exceptions import RecordError
from cpwatch.records import HoldingUpdate, NewsArticle, PriceTick, Record
from streams.classify_cli import classify_command

PARSERS: list[type[Record]] = [NewsArticle, PriceTick, HoldingUpdate]
FIELDS = sorted(
    {name for cls in PARSERS for name in cls.model_fields} | {"extra", "", "ts", "published"}
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(
        ["2025-01-01T00:00:00Z", "2025-01-01", "9999-12-31T23:59:59+00:00", "state", "BTC-USD"]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
# Objects that look like records: the schema's own field names with arbitrary values.
record_like = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=len(FIELDS))


def _only_record_error(cls: type[Record], raw: bytes | str | dict[str, Any]) -> None:
    try:
        cls.parse(raw)
    except RecordError:
        pass


@pytest.mark.parametrize("cls", PARSERS, ids=lambda c: c.record_type)
@given(raw=st.binary(max_size=2_000))
@settings(max_examples=300, deadline=None)
def test_parse_arbitrary_bytes(cls: type[Record], raw: bytes) -> None:
    _only_record_error(cls, raw)


@pytest.mark.parametrize("cls", PARSERS, ids=lambda c: c.record_type)
@given(obj=record_like | json_values)
@settings(max_examples=300, deadline=None)
def test_parse_arbitrary_json(cls: type[Record], obj: Any) -> None:
    _only_record_error(cls, json.dumps(obj).encode())
    if isinstance(obj, dict):
        _only_record_error(cls, obj)


@pytest.mark.parametrize("cls", PARSERS, ids=lambda c: c.record_type)
@given(text=st.text(max_size=500))
@settings(max_examples=300, deadline=None)
def test_parse_arbitrary_text(cls: type[Record], text: str) -> None:
    _only_record_error(cls, text)


# Found by this fuzz (fixed): text holding a lone surrogate escaped as UnicodeEncodeError.
@pytest.mark.parametrize("cls", PARSERS, ids=lambda c: c.record_type)
def test_parse_text_with_lone_surrogate(cls: type[Record]) -> None:
    _only_record_error(cls, '{"id": "\ud800"}')


@pytest.mark.parametrize("cls", PARSERS, ids=lambda c: c.record_type)
@given(depth=st.integers(min_value=1, max_value=5_000), opener=st.sampled_from("[{"))
@settings(max_examples=50, deadline=None)
def test_parse_nested_bombs(cls: type[Record], depth: int, opener: str) -> None:
    inner = '"x":' if opener == "{" else ""
    closer = "}" if opener == "{" else "]"
    raw = (opener + inner) * depth + "1" + closer * depth
    _only_record_error(cls, raw.encode())


def _valid(line: str) -> bool:
    """Oracle for ``classify``'s input contract, written independently of ``parse_line``."""
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    return (
        isinstance(obj, dict)
        and all(isinstance(obj.get(k), str) for k in ("id", "title", "text"))
        and bool(obj["id"].strip())
    )


good_line = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=20),
        "title": st.text(max_size=80),
        "text": st.text(max_size=300),
    },
    optional={"label": json_values, "published": scalars},
).map(json.dumps)
# No line breaks inside a line: the file is split into lines exactly where we put "\n".
raw_line = st.text(max_size=200).map(lambda s: s.replace("\n", " ").replace("\r", " "))
any_line = good_line | json_values.map(json.dumps) | record_like.map(json.dumps) | raw_line


@given(lines=st.lists(any_line, max_size=25))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_classify_arbitrary_jsonl(lines: list[str]) -> None:
    fd, path = tempfile.mkstemp(suffix=".jsonl")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write("\n".join(lines) + "\n")
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = classify_command(path)
    finally:
        os.unlink(path)
    # The command reads with errors="replace": what it sees is the lossy UTF-8 round trip.
    seen = [ln.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for ln in lines]
    nonblank = [ln for ln in seen if ln.strip()]
    valid = [json.loads(ln)["id"] for ln in nonblank if _valid(ln)]
    # Split on "\n" only: outputs keep non-ASCII text, and U+0085 or U+2028 are not line ends.
    outputs = [json.loads(o) for o in out.getvalue().split("\n") if o]
    assert code in (0, 1)
    assert code == (0 if len(valid) == len(nonblank) else 1)
    assert [o["id"] for o in outputs] == valid
