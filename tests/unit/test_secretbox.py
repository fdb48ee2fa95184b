"""Channel secrets at rest: AES-GCM envelopes, wrong keys and tampering refused, rotation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from app.secrets_cli import rotate_all
from cpwatch import secretbox
from cpwatch.exceptions import ConfigError
from cpwatch.settings import Settings
from notify.subscriptions import Subscription

KEY_A, KEY_B = secretbox.new_key(), secretbox.new_key()
HOOK_SECRET = "hmac-secret-0123456789abcdef"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/slack-credential-xyz"


def box(current: str | None, *old: str) -> secretbox.SecretBox:
    settings = Settings(
        secret_key=SecretStr(current) if current else None,
        secret_key_old=SecretStr(",".join(old)) if old else None,
    )
    return secretbox.from_settings(settings)


def test_round_trip_and_envelope_shape() -> None:
    b = box(KEY_A)
    env = b.seal("s3cret", "ctx")
    assert isinstance(env, dict) and env["enc"] == "v1" and env["kid"] == b.current_kid
    assert "s3cret" not in json.dumps(env)
    assert b.open(env, "ctx") == "s3cret"
    assert b.seal("s3cret", "ctx") != env, "a fresh nonce every time"


def test_no_key_stores_in_the_clear_and_reads_clear_values() -> None:
    assert box(None).seal("plain", "ctx") == "plain"
    assert box(KEY_A).open("legacy-clear", "ctx") == "legacy-clear"


def test_wrong_or_missing_key_fails_clearly_without_the_secret() -> None:
    env = box(KEY_A).seal("s3cret", "ctx")
    with pytest.raises(secretbox.SecretBoxError, match="not a configured key") as exc:
        box(KEY_B).open(env, "ctx")
    assert "s3cret" not in str(exc.value)
    with pytest.raises(secretbox.SecretBoxError, match="no CPWATCH_SECRET_KEY"):
        box(None).open(env, "ctx")


def test_tampering_and_moving_a_ciphertext_are_detected() -> None:
    b = box(KEY_A)
    env = b.seal("s3cret", "subscription/a/channel.secret")
    raw = bytearray(base64.b64decode(env["ct"]))  # type: ignore[index]
    raw[-1] ^= 1
    tampered = {**env, "ct": base64.b64encode(bytes(raw)).decode()}  # type: ignore[dict-item]
    with pytest.raises(secretbox.SecretBoxError, match="does not authenticate"):
        b.open(tampered, "subscription/a/channel.secret")
    with pytest.raises(secretbox.SecretBoxError, match="does not authenticate"):
        b.open(env, "subscription/b/channel.secret")  # copied into another subscription


@pytest.mark.parametrize("bad", ["not base64!!", base64.b64encode(b"short").decode()])
def test_malformed_key_is_a_config_error_that_does_not_echo_it(bad: str) -> None:
    with pytest.raises(ConfigError) as exc:
        box(bad)
    assert bad not in str(exc.value)


def test_url_safe_key_is_accepted() -> None:
    raw = bytes(range(250, 256)) * 5 + b"\xfb\xff"
    assert box(base64.urlsafe_b64encode(raw).decode()).current == raw


def _sub(channel: dict[str, Any]) -> Subscription:
    return Subscription.model_validate({"name": "n", "channel": channel})


def test_subscription_doc_has_no_plaintext_secret_and_reads_back() -> None:
    b = box(KEY_A)
    hook = _sub({"type": "webhook", "url": "https://93.184.215.14/h?tok=q1", "secret": HOOK_SECRET})
    slack = _sub({"type": "slack", "url": SLACK_URL})
    for sub, plain in ((hook, HOOK_SECRET), (slack, "slack-credential-xyz")):
        doc = sub.to_es_doc(b)
        assert plain not in json.dumps(doc)
        assert Subscription.from_es_doc(doc, b) == sub
    assert hook.to_es_doc(b)["channel"]["url"]["enc"] == "v1"


def test_public_dict_never_carries_an_envelope_or_a_secret() -> None:
    sub = _sub({"type": "webhook", "url": "https://93.184.215.14/h", "secret": HOOK_SECRET})
    public = json.dumps(sub.public_dict())
    assert HOOK_SECRET not in public and '"enc"' not in public


def test_validation_errors_do_not_show_secret_inputs() -> None:
    with pytest.raises(ValidationError) as exc:
        _sub({"type": "webhook", "url": "https://93.184.215.14/h", "secret": "tooShortSecret"})
    assert "tooShortSecret" not in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        _sub({"type": "telegram", "bot_token": "leaky-token-value", "chat_id": 1})
    assert "leaky-token-value" not in str(exc.value)


class FakeEs:
    """What rotate_all uses of the client: scan (search), index with if_seq_no, refresh."""

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs
        self.indices = self

    def options(self, **_: Any) -> FakeEs:
        return self

    def search(self, **_: Any) -> dict[str, Any]:
        hits = [
            {"_id": k, "_source": v, "_seq_no": 1, "_primary_term": 1, "_index": "i"}
            for k, v in self.docs.items()
        ]
        return {"_scroll_id": "s", "_shards": {"successful": 1, "total": 1}, "hits": {"hits": hits}}

    def scroll(self, **_: Any) -> dict[str, Any]:
        return {"_scroll_id": "s", "_shards": {"successful": 1, "total": 1}, "hits": {"hits": []}}

    def clear_scroll(self, **_: Any) -> None:
        return None

    def index(self, *, id: str, document: dict[str, Any], **_: Any) -> None:
        self.docs[id] = json.loads(json.dumps(document))

    def refresh(self, **_: Any) -> None:
        return None


def test_rotation_reencrypts_old_key_and_clear_docs_with_the_new_key() -> None:
    old_box = box(KEY_A)
    hook = _sub({"type": "webhook", "url": "https://93.184.215.14/h", "secret": HOOK_SECRET})
    slack = _sub({"type": "slack", "url": SLACK_URL})
    es = FakeEs({hook.id: hook.to_es_doc(old_box), slack.id: slack.to_es_doc(box(None))})
    new_box = box(KEY_B, KEY_A)
    assert rotate_all(es, Settings(), new_box) == (2, 0)
    kid_b = box(KEY_B).current_kid
    for doc in es.docs.values():
        assert all(v["kid"] == kid_b for k, v in doc["channel"].items() if isinstance(v, dict)), doc
    assert Subscription.from_es_doc(es.docs[hook.id], box(KEY_B)) == hook  # old key not needed
    assert rotate_all(es, Settings(), new_box) == (0, 2), "a second run has nothing to do"
    with pytest.raises(secretbox.SecretBoxError):
        Subscription.from_es_doc(es.docs[hook.id], box(KEY_A))
