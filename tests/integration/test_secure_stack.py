"""cpwatch on secured engines: Kafka over SASL_SSL (SCRAM-SHA-512), Elasticsearch over HTTPS
with users, both with certificates from the stack's own CA (`cpwatch stack up --secure`).

Proves that every client honours the security settings (producer CLI, Faust worker, plain
aiokafka consumers of the sinks and matcher, Elasticsearch sync/async, the API), that a wrong
password or API key gives one clear line naming the setting, and that a client trusting another
CA is refused by both engines.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from pydantic import SecretStr

from api.search import parse_params
from api.search_service import search
from cpwatch.engine_errors import AuthError, es_errors, kafka_errors
from cpwatch.records import NewsArticle
from cpwatch.settings import Settings
from deploy import certs
from tests.api_client import AUTH, TOKEN, api_client, subscription, webhook
from tests.conftest import EXTERNAL, run_cli, wait_for
from tests.receiver import RecordingReceiver
from tests.worker import start_worker, stop_worker

pytestmark = pytest.mark.integration

ARTICLES = [
    NewsArticle(
        id="sec-ke-1",
        source="secure-wire",
        title="Kenya parliament passes law licensing bitcoin exchanges",
        text=(
            "Lawmakers in Nairobi approved a bill on Thursday that requires bitcoin exchanges"
            " and wallet providers to hold a licence from the Capital Markets Authority. The"
            " central bank will supervise stablecoin issuers under the new law."
        ),
        published="2025-06-12T08:00:00Z",
    ),
    NewsArticle(
        id="sec-no-1",
        source="secure-wire",
        title="Norway moves to ban new bitcoin mining data centres",
        text=(
            "The Norwegian government proposed a temporary ban on new data centres that mine"
            " bitcoin, citing strain on the power grid. The digitalisation ministry said the"
            " measure would take effect next spring."
        ),
        published="2025-06-12T09:00:00Z",
    ),
]


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """The secured stack beside the plain one (ports = plain + PORT_OFFSET); reused when up,
    stopped afterwards only if this session started it. It stands in for conftest's plain
    ``stack`` in this module, so ``kafka_settings`` makes each test's namespace on it."""
    from deploy.secure_stack import SecureStack, secure_settings

    if EXTERNAL:
        pytest.skip("the secured stack is local only (CPWATCH_EXTERNAL_STACK=1)")
    stack = SecureStack(Settings())
    was_up = stack.status()
    stack.up()
    yield secure_settings(Settings())
    if not was_up:
        stack.down()


@pytest.fixture
def secure_settings(kafka_settings: Settings) -> Settings:
    """Secured-stack settings in a namespace of this test's own (topics created)."""
    return kafka_settings


def _cli(s: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(s, *args, stdin=stdin, timeout=180)


def test_sample_flow_on_secured_engines(secure_settings: Settings, tmp_path: Path) -> None:
    s = secure_settings.model_copy(
        update={
            "delivery_ssrf_allowlist": "127.0.0.1",
            "subscriptions_refresh_s": 1.0,
            "api_tokens": SecretStr(TOKEN),
        }
    )
    assert s.kafka_security_protocol == "SASL_SSL" and s.es_url.startswith("https://")
    created = _cli(s, "topics", "create")
    assert created.returncode == 0, created.stderr
    from sinks.indices import ensure_indices

    es = Elasticsearch(**s.es_client_kwargs())
    ensure_indices(es, s)
    receiver = RecordingReceiver()
    receiver.start()
    worker = start_worker(s, tmp_path / "worker.log")
    try:
        with api_client(s) as client:  # the API's Elasticsearch client, over HTTPS
            channel = webhook(receiver, "/ke")
            body = subscription("kenya licences", channel, "licence", countries=["KE"])
            resp = client.post("/api/subscriptions", json=body, headers=AUTH)
            assert resp.status_code == 201, resp.text
        news = tmp_path / "news.jsonl"
        news.write_text("".join(a.to_bytes().decode() + "\n" for a in ARTICLES))
        produced = _cli(s, "produce", "news", "--jsonl", str(news))
        assert produced.returncode == 0, produced.stderr

        def indexed() -> tuple[int, int]:
            """(articles, events): two sinks, each at its own pace."""
            try:
                es.indices.refresh(index=[s.index("articles"), s.index("events")])
                articles, events = (
                    es.count(index=s.index(n))["count"] for n in ("articles", "events")
                )
                return int(articles), int(events)
            except Exception:  # noqa: BLE001 - the aliases appear once the worker prepared them
                return 0, 0

        done = (len(ARTICLES), len(ARTICLES))
        wait_for(lambda: worker.poll() is not None or indexed() == done, timeout=150)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        top = search(es, s, parse_params("Norway mining", index="events"))["hits"][0]
        assert "Norway" in top["title"], top
        hooked = wait_for(lambda: receiver.hits("/ke"), timeout=90)
        assert isinstance(hooked, list)
        items = [i for r in hooked for i in r.json()["items"]]
        assert any("Kenya" in json.dumps(i) for i in items), items
        assert not any("Norway" in json.dumps(i) for i in items), items
    finally:
        stop_worker(worker)
        receiver.stop()
        es.close()


def test_wrong_credentials_give_one_clear_line(secure_settings: Settings) -> None:
    bad_kafka = secure_settings.model_copy(
        update={"kafka_password": SecretStr("not-it"), "kafka_bootstrap_timeout_s": 8}
    )
    out = _cli(bad_kafka, "topics", "create")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr
    assert "Kafka at" in out.stderr and "CPWATCH_KAFKA_PASSWORD" in out.stderr, out.stderr
    assert "not-it" not in out.stdout + out.stderr

    fake_key = base64.b64encode(b"nosuchid:nosuchsecret").decode()
    bad_es = secure_settings.model_copy(update={"es_api_key": SecretStr(fake_key)})
    with pytest.raises(AuthError, match="CPWATCH_ES_API_KEY"), es_errors(bad_es):
        Elasticsearch(**bad_es.es_client_kwargs()).cluster.health()
    bad_user = secure_settings.model_copy(
        update={"es_api_key": None, "es_password": SecretStr("not-it")}
    )
    with pytest.raises(AuthError, match="CPWATCH_ES_PASSWORD"), es_errors(bad_user):
        Elasticsearch(**bad_user.es_client_kwargs()).cluster.health()


def test_a_client_trusting_another_ca_is_refused(secure_settings: Settings, tmp_path: Path) -> None:
    other = certs.make_ca(tmp_path / "other-ca", "a CA nobody uses")
    s = secure_settings.model_copy(
        update={
            "kafka_ca_file": other.cert,
            "es_ca_file": other.cert,
            "kafka_bootstrap_timeout_s": 5,
        }
    )
    from kafka.admin import KafkaAdminClient

    with pytest.raises(AuthError, match="CPWATCH_KAFKA_CA_FILE"), kafka_errors(s):
        KafkaAdminClient(**s.kafka_client_kwargs())
    with pytest.raises(AuthError, match="CPWATCH_ES_CA_FILE"), es_errors(s):
        Elasticsearch(**s.es_client_kwargs()).cluster.health()
    # The same clients with the stack's own CA get in: the refusal was the trust, nothing else.
    with es_errors(secure_settings):
        # (cluster health: the integ-test-zip has no `GET /`, which lives in module rest-root)
        assert Elasticsearch(**secure_settings.es_client_kwargs()).cluster.health()["status"]
