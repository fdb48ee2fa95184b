"""The events' ``holders`` keyword reaches an events index created before the field existed."""

from __future__ import annotations

import pytest
from elasticsearch import Elasticsearch

from cpwatch.settings import Settings
from sinks.indices import concrete_index, ensure_indices

pytestmark = pytest.mark.integration


def test_holders_field_is_added_to_an_existing_events_index(kafka_settings: Settings) -> None:
    s = kafka_settings
    es = Elasticsearch(**s.es_client_kwargs())
    alias, index = s.index("events"), concrete_index(s, "events")
    # An events index as made before `holders`: no such field in its mapping.
    es.indices.create(
        index=index,
        aliases={alias: {"is_write_index": True}},
        mappings={"dynamic": "false", "properties": {"id": {"type": "keyword"}}},
    )
    ensure_indices(es, s, ["events"])
    props = es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert props["holders"] == {"type": "keyword"}
    es.index(index=alias, id="e1", document={"id": "e1", "holders": ["El Salvador"]}, refresh=True)
    hits = es.search(index=alias, query={"term": {"holders": "El Salvador"}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["e1"]
