"""The bundled sample news through producer, worker and sinks, then searched: the main job's path."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from elasticsearch import Elasticsearch

from api.search import parse_params
from api.search_service import search
from app.supervisor import sample_file
from cpwatch.settings import Settings
from tests.conftest import ROOT, settings_env, wait_for

pytestmark = pytest.mark.integration


def _produce_sample(s: Settings) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "produce",
            "news",
            "--jsonl",
            str(sample_file("sample_news.jsonl")),
        ],
        env=settings_env(s),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_sample_news_is_searchable_and_replays_add_nothing(
    kafka_settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    s = kafka_settings
    n_sample = sum(
        1 for line in sample_file("sample_news.jsonl").read_text().splitlines() if line.strip()
    )
    es = Elasticsearch(**s.es_client_kwargs())
    _produce_sample(s)

    def counts() -> tuple[int, int]:
        try:
            es.indices.refresh(index=[s.index("articles"), s.index("events")])
            return es.count(index=s.index("articles"))["count"], es.count(index=s.index("events"))[
                "count"
            ]
        except Exception:  # noqa: BLE001 - aliases appear once the worker prepared them
            return 0, 0

    wait_for(lambda: counts()[0] == n_sample and counts()[1] > 0, timeout=120)
    time.sleep(3)  # let the story clusterer finish
    first = counts()

    result = search(es, s, parse_params("IMF mining", index="events"))
    top = result["hits"][0]
    assert "IMF" in top["title"] and "mining" in top["title"], top["title"]
    assert {"PK", "SV"} <= set(top["countries"])
    assert any("<em>" in snip for snips in top["highlight"].values() for snip in snips)
    country_facet = {key: count for key, count in result["facets"]["countries"]}
    assert country_facet["PK"] >= 1 and country_facet["SV"] >= 1

    _produce_sample(s)  # the same input again: deterministic ids overwrite, never add
    time.sleep(8)
    assert counts() == first
    assert worker.poll() is None
