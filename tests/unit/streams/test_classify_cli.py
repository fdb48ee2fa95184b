"""The offline ``classify`` / ``eval`` commands on temporary JSON Lines files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.classify_cli import OUTPUT_KEYS, classify_command, eval_command

GOOD_1 = {
    "id": "g1",
    "title": "Thailand's cabinet approves tax break for crypto trading",
    "text": "Thailand's cabinet approved a five-year capital gains tax exemption on crypto "
    "trades made through licensed exchanges, the finance ministry said.",
    "published": "2025-06-01T00:00:00Z",
    "source_url": "https://example.test/a",
}
GOOD_2 = {
    "id": "g2",
    "title": "Bitcoin slips 3% in quiet trading",
    "text": "Bitcoin fell 3% as traders took profits; analysts see support at $60,000.",
}


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_valid_file_one_line_out_per_line_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, [json.dumps(GOOD_1), "", json.dumps(GOOD_2)])
    assert classify_command(str(path)) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["id"] for o in out] == ["g1", "g2"]
    assert all(tuple(o) == OUTPUT_KEYS for o in out)
    assert out[0]["is_policy_event"] and out[0]["countries"] == ["TH"]
    assert out[0]["categories"] == ["taxation"]
    assert not out[1]["is_policy_event"]


def test_malformed_lines_reported_others_still_classified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        json.dumps(GOOD_1),
        "{not json",
        json.dumps({"id": "m1", "text": "no title here"}),
        json.dumps({"id": 7, "title": "t", "text": "x"}),
        json.dumps(["a", "list"]),
        json.dumps(GOOD_2),
    ]
    assert classify_command(str(_write(tmp_path, lines))) == 1
    captured = capsys.readouterr()
    assert [json.loads(x)["id"] for x in captured.out.splitlines()] == ["g1", "g2"]
    assert "line 2: invalid JSON" in captured.err
    assert "line 3: missing field 'title'" in captured.err
    assert "line 4: field 'id' must be a string" in captured.err
    assert "line 5: expected a JSON object" in captured.err


def test_missing_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert classify_command(str(tmp_path / "absent.jsonl")) == 2
    assert "cannot read" in capsys.readouterr().err


def test_eval_prints_both_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        {
            **GOOD_1,
            "label": {
                "is_policy_event": True,
                "categories": ["taxation"],
                "countries": ["TH"],
                "orgs": [],
            },
        },
        {
            **GOOD_2,
            "label": {"is_policy_event": False, "categories": [], "countries": [], "orgs": []},
        },
    ]
    path = _write(tmp_path, [json.dumps(r) for r in rows])
    assert eval_command(path) == 0
    out = capsys.readouterr().out
    assert "keyword baseline" in out and "detection" in out and "countries" in out
    assert "1.000 / 1.000 / 1.000" in out
