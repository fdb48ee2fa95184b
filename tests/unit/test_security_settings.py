"""Security settings reach every kind of client; refused logins read as one line.

The real engines are exercised in tests/integration/test_secure_stack.py."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr

from cpwatch.engine_errors import AuthError, es_auth_error, kafka_errors
from cpwatch.settings import Settings
from runtime.faust_app import broker_credentials

SASL = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_username": "svc",
    "kafka_password": SecretStr("pw"),
}


def test_kafka_python_gets_files_and_scram_credentials(tmp_path: Path) -> None:
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "c.pem", "c.key"))
    s = Settings(**SASL, kafka_ca_file=ca, kafka_cert_file=cert, kafka_key_file=key)
    kw = s.kafka_client_kwargs()
    assert kw["ssl_cafile"] == str(ca) and kw["ssl_certfile"] == str(cert)
    assert kw["ssl_keyfile"] == str(key)
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512" and kw["sasl_plain_password"] == "pw"


def test_plaintext_kafka_gets_no_tls_options(tmp_path: Path) -> None:
    s = Settings(kafka_ca_file=tmp_path / "ca.pem")
    assert "ssl_cafile" not in s.kafka_client_kwargs()
    assert "ssl_context" not in s.aiokafka_client_kwargs()
    assert broker_credentials(s) is None


def test_aiokafka_and_faust_get_an_ssl_context() -> None:
    s = Settings(**SASL)  # no CA file: the system's trust store
    kw = s.aiokafka_client_kwargs()
    assert isinstance(kw["ssl_context"], ssl.SSLContext)
    assert "ssl_cafile" not in kw and kw["sasl_plain_username"] == "svc"
    creds = broker_credentials(s)
    assert creds is not None and creds.protocol.value == "SASL_SSL"
    assert creds.mechanism.value == "SCRAM-SHA-512"  # type: ignore[attr-defined]


def test_es_pins_a_fingerprint_and_prefers_the_api_key() -> None:
    s = Settings(
        es_api_key=SecretStr("k"),
        es_username="u",
        es_password=SecretStr("p"),
        es_ssl_fingerprint="ab" * 32,
    )
    kw = s.es_client_kwargs()
    assert kw["api_key"] == "k" and "basic_auth" not in kw
    assert kw["ssl_assert_fingerprint"] == "ab" * 32


def test_a_logged_sasl_refusal_becomes_one_auth_error() -> None:
    import logging

    from kafka.errors import KafkaTimeoutError, SaslAuthenticationFailedError

    s = Settings(kafka_bootstrap="127.0.0.1:1", kafka_security_protocol="SASL_PLAINTEXT")
    with pytest.raises(AuthError, match="CPWATCH_KAFKA_PASSWORD"), kafka_errors(s):
        # What kafka-python does: log the cause, raise a bare timeout at the deadline.
        refused = SaslAuthenticationFailedError("invalid credentials")
        logging.getLogger("kafka.net.manager").warning("failed: %s", refused)
        raise KafkaTimeoutError("Unable to bootstrap")


def test_a_timeout_without_cause_stays_a_timeout() -> None:
    from kafka.errors import KafkaTimeoutError

    s = Settings(kafka_bootstrap="127.0.0.1:1")
    with pytest.raises(KafkaTimeoutError), kafka_errors(s):
        raise KafkaTimeoutError("Unable to bootstrap")


def test_es_401_names_the_settings() -> None:
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
    from elasticsearch import AuthenticationException

    meta = ApiResponseMeta(401, "1.1", HttpHeaders(), 0.0, NodeConfig("https", "h", 1))
    err = es_auth_error(AuthenticationException("x", meta, {}), Settings())
    assert err is not None and "CPWATCH_ES_API_KEY" in str(err)


def test_an_unreachable_broker_is_not_blamed_on_the_login() -> None:
    from kafka.errors import KafkaTimeoutError

    s = Settings(
        **{**SASL, "kafka_security_protocol": "SASL_PLAINTEXT"}, kafka_bootstrap="127.0.0.1:1"
    )
    with pytest.raises(KafkaTimeoutError), kafka_errors(s):  # retried by a waiting worker
        raise KafkaTimeoutError("Unable to bootstrap")
