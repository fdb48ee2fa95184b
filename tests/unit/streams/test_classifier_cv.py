"""Cross-validation, the learned layer and the rules added for general error kinds.

Every article here is written for these tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.classifier import classify
from streams.classify_cli import eval_command
from streams.evaluate import cross_validate, keyword_baseline, stratified_folds
from streams.logreg import LogReg, train
from streams.model import Model, default_model, fit

EVENTS = [
    (
        "Peru's congress approves bitcoin tax bill",
        "Peru's congress approved a 5% tax on "
        "crypto gains on Tuesday. The finance ministry said the tax starts next year.",
        ["taxation"],
    ),
    (
        "Chile central bank pilots digital peso",
        "Chile's central bank said it will pilot a "
        "central bank digital currency with two banks. The CBDC test runs until June.",
        ["cbdc"],
    ),
    (
        "Kenya bans crypto mining on the national grid",
        "Kenya's energy ministry banned bitcoin "
        "mining on the national grid after outages. Miners must use off-grid power.",
        ["mining_energy"],
    ),
    (
        "Ghana regulator sets licensing regime for crypto exchanges",
        "Ghana's securities "
        "regulator published a licensing framework for crypto exchanges on Monday.",
        ["regulation"],
    ),
]
NON_EVENTS = [
    (
        "Bitcoin climbs 5% as traders eye highs",
        "Bitcoin rose 5% to $70,000. Analysts said "
        "the rally may face resistance as traders take profits.",
    ),
    (
        "Exchange loses $20 million to hackers",
        "Hackers drained $20 million in ether from a crypto exchange hot wallet, the company said.",
    ),
    (
        "Payments startup raises $30 million for crypto wallet",
        "The startup said its funding "
        "round values it at $300 million; its users can now hold stablecoins.",
    ),
]


def _rows() -> list[dict]:
    rows = []
    for i, (title, text, cats) in enumerate(EVENTS * 2):
        cc = {"Peru": "PE", "Chile": "CL", "Kenya": "KE", "Ghana": "GH"}[
            title.split("'")[0].split()[0]
        ]
        label = {"is_policy_event": True, "categories": cats, "countries": [cc]}
        rows.append({"id": f"e{i}", "title": title, "text": text, "label": label})
    for i, (title, text) in enumerate(NON_EVENTS * 2):
        label = {"is_policy_event": False, "categories": [], "countries": []}
        rows.append({"id": f"n{i}", "title": title, "text": text, "label": label})
    return rows


def test_folds_are_a_stratified_deterministic_partition() -> None:
    rows = _rows()
    folds = stratified_folds(rows, 3, seed=5)
    assert folds == stratified_folds(rows, 3, seed=5)
    assert sorted(i for f in folds for i in f) == list(range(len(rows)))
    for f in folds:
        events = sum(rows[i]["label"]["is_policy_event"] for i in f)
        assert events in (2, 3)  # 8 events dealt over 3 folds


def test_cross_validate_scores_held_out_rows_only() -> None:
    rows = _rows()
    seen: list[int] = []

    def fitter(train_rows: list) -> object:
        seen.append(len(train_rows))
        return keyword_baseline

    res = cross_validate(rows, 4, fitter)
    assert len(res.folds) == 4 and sum(r.n for r in res.folds) == len(rows)
    assert all(n < len(rows) for n in seen)
    summary = res.summary()
    assert {"detection F1", "categories F1", "countries F1"} <= set(summary)
    assert 0.0 <= summary["detection F1"].lo <= summary["detection F1"].hi <= 1.0


def test_logreg_learns_and_explains() -> None:
    xs = [{"a": 1.0}, {"a": 1.0, "b": 1.0}, {"b": 1.0}, {"c": 1.0}]
    model = train(xs, [True, True, False, False], l2=0.1, steps=200)
    assert model.prob({"a": 1.0}) > 0.7 > 0.3 > model.prob({"c": 1.0})
    assert model.explain({"a": 1.0, "c": 1.0})[0][0] == "a"
    assert LogReg.from_dict(model.to_dict()).prob({"a": 1.0}) == pytest.approx(
        model.prob({"a": 1.0}), abs=1e-3
    )


def test_model_trains_round_trips_and_explains() -> None:
    model = fit(_rows())
    again = Model.from_dict(json.loads(json.dumps(model.to_dict())))
    title, text, _ = EVENTS[0]
    c = classify(title, text, again)
    assert c.is_policy_event and c.countries == ["PE"]
    assert any(e.startswith("model event p=") for e in c.evidence)
    assert any(e.startswith("score ") for e in c.evidence)  # rule evidence is kept


def test_packaged_weights_load() -> None:
    assert default_model() is not None


@pytest.mark.parametrize("model", [None, "default"])
def test_company_purchase_is_no_state_reserve(model: str | None) -> None:
    c = classify(
        "Osaka hotel chain buys more bitcoin as Japanese firm expands treasury strategy",
        "The Osaka-listed hotel operator said it bought 400 bitcoin, lifting its holdings to "
        "2,400 coins. The bitcoin treasury company pays for purchases with share issuance.",
        **({} if model else {"model": None}),
    )
    assert not c.is_policy_event
    assert "reserve" not in c.categories and "JP" not in c.countries


@pytest.mark.parametrize("model", [None, "default"])
def test_amending_a_legal_tender_law_is_legal_tender(model: str | None) -> None:
    c = classify(
        "Lawmakers make bitcoin acceptance voluntary in Honduras",
        "Honduras's National Congress voted to amend the bitcoin law so that shops are no "
        "longer required to accept the cryptocurrency. The change was agreed with the IMF.",
        **({} if model else {"model": None}),
    )
    assert c.is_policy_event
    assert "legal_tender" in c.categories and c.countries == ["HN"]


def test_state_utility_dealing_with_miners_is_mining_policy() -> None:
    c = classify(
        "Bolivia's state utility raises power tariffs for crypto miners",
        "Bolivia's state electricity company approved a higher tariff for bitcoin mining "
        "farms. The utility said miners strain the grid in the dry season.",
    )
    assert c.is_policy_event
    assert "mining_energy" in c.categories and c.countries == ["BO"]


def test_state_body_without_country_maps_to_its_state() -> None:
    c = classify(
        "Securities and Futures Commission approves first retail crypto platforms",
        "The Securities and Futures Commission approved two crypto trading platforms to serve "
        "retail investors under its new licensing regime on Friday.",
    )
    assert c.is_policy_event
    assert c.countries == ["HK"] and "regulation" in c.categories


def test_named_cbdc_is_cbdc() -> None:
    c = classify(
        "Central bank starts second phase of digital lira trials",
        "Turkey's central bank said the digital lira trials will move to a second phase with "
        "three banks, testing offline payments.",
    )
    assert c.is_policy_event and "cbdc" in c.categories and c.countries == ["TR"]


def test_countries_named_in_passing_are_not_actors() -> None:
    c = classify(
        "Norway's central bank tests a retail CBDC",
        "Norway's central bank said on Monday it will test a retail central bank digital "
        "currency with two banks next year. Norges Bank said the pilot will run for a year. "
        "Other countries studying digital currencies include Japan, India and Brazil.",
    )
    assert c.is_policy_event and c.countries == ["NO"]


def test_eval_cli_cross_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "own.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    assert eval_command([path], cv=3) == 0
    out = capsys.readouterr().out
    assert "3-fold" in out and "keyword baseline" in out and "rules only" in out
    assert eval_command([path]) == 0  # plain scoring still works
    assert eval_command([path], cv=1) == 2
