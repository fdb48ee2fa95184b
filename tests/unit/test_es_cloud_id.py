"""CPWATCH_ES_CLOUD_ID: an Elastic Cloud deployment addressed by its Cloud ID instead of a URL."""

from __future__ import annotations

import base64

import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch
from pydantic import SecretStr

from cpwatch.settings import Settings

# A Cloud ID is "<name>:" + base64("<domain>$<es uuid>$<kibana uuid>"); this one is made up.
DOMAIN, ES_UUID = "europe-west1.gcp.cloud.es.io", "abc123"
CLOUD_ID = "prod:" + base64.b64encode(f"{DOMAIN}${ES_UUID}$kb456".encode()).decode()


def test_cloud_id_replaces_the_url() -> None:
    s = Settings(es_cloud_id=CLOUD_ID, es_api_key=SecretStr("k3y"))
    kw = s.es_client_kwargs()
    assert kw["cloud_id"] == CLOUD_ID and "hosts" not in kw
    assert kw["api_key"] == "k3y"


def test_without_cloud_id_the_url_is_used() -> None:
    s = Settings(es_url="http://127.0.0.1:9", es_cloud_id=None)
    kw = s.es_client_kwargs()
    assert kw["hosts"] == ["http://127.0.0.1:9"] and "cloud_id" not in kw


@pytest.mark.parametrize("client", [Elasticsearch, AsyncElasticsearch])
def test_the_clients_resolve_it_to_the_deployment(client: type) -> None:
    # Constructing a client does not connect: this checks the options are ones it accepts.
    s = Settings(es_cloud_id=CLOUD_ID, es_api_key=SecretStr("k3y"))
    es = client(**s.es_client_kwargs())
    (node,) = es.transport.node_pool.all()
    assert (node.config.scheme, node.config.host, node.config.port) == (
        "https",
        f"{ES_UUID}.{DOMAIN}",
        443,
    )
