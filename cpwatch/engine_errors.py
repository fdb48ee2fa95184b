"""Refused logins and untrusted certificates, told in one line that names the setting to fix.

kafka-python does not raise these: its bootstrap logs each failed attempt and, at the
deadline, raises a bare "Unable to bootstrap". ``kafka_errors`` listens to those log records
for the real cause. Elasticsearch's client raises them, as an HTTP 401 or a ``TlsError``
(which is a ``ConnectionError``: a worker waiting for the engine would otherwise retry it).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cpwatch.exceptions import EngineError

if TYPE_CHECKING:
    from cpwatch.settings import Settings

KAFKA_LOGIN = "CPWATCH_KAFKA_USERNAME / CPWATCH_KAFKA_PASSWORD"
KAFKA_TRUST = "CPWATCH_KAFKA_CA_FILE"
ES_LOGIN = "CPWATCH_ES_API_KEY, or CPWATCH_ES_USERNAME / CPWATCH_ES_PASSWORD"
ES_TRUST = "CPWATCH_ES_CA_FILE / CPWATCH_ES_SSL_FINGERPRINT"


class AuthError(EngineError):
    """An engine refused our credentials or we refused its certificate: retrying won't help."""


def _kafka_cause(exc: BaseException, where: str) -> AuthError | None:
    from kafka.errors import SaslAuthenticationFailedError

    if isinstance(exc, SaslAuthenticationFailedError):
        return AuthError(f"Kafka at {where} rejected the SASL credentials ({KAFKA_LOGIN})")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return AuthError(
            f"Kafka at {where} presented a certificate we do not trust ({KAFKA_TRUST}):"
            f" {exc.verify_message}"
        )
    if isinstance(exc, ssl.SSLError):
        return AuthError(
            f"TLS with Kafka at {where} failed ({KAFKA_TRUST},"
            f" CPWATCH_KAFKA_SECURITY_PROTOCOL): {exc.reason or exc}"
        )
    return None


class _Causes(logging.Handler):
    """Keeps the exceptions kafka-python logs while it retries a connection."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        self.seen += [a for a in args if isinstance(a, BaseException)]
        if record.exc_info and record.exc_info[1]:
            self.seen.append(record.exc_info[1])


@contextmanager
def kafka_errors(settings: Settings) -> Iterator[None]:
    """Around the construction of a kafka-python client: a refused login or an untrusted
    broker certificate becomes one ``AuthError`` instead of a bootstrap timeout."""
    from kafka.errors import KafkaError

    causes = _Causes()
    logger = logging.getLogger("kafka")
    logger.addHandler(causes)
    try:
        yield
    except KafkaError as exc:
        probe = _probe(settings)
        for cause in [exc, *reversed(causes.seen), probe]:
            auth = cause and _kafka_cause(cause, settings.kafka_bootstrap)
            if auth:
                raise auth from exc
        if settings.kafka_sasl_mechanism and probe is None:
            # kafka-python 3.0 drops the broker's login answer when the broker closes the
            # connection right behind it (it reads data and EOF together): all we see is the
            # disconnect. The broker is reachable, so the login is the likely culprit.
            raise AuthError(
                f"Kafka at {settings.kafka_bootstrap} closed the connection during the SASL"
                f" login: check {KAFKA_LOGIN} and CPWATCH_KAFKA_SASL_MECHANISM"
            ) from exc
        raise
    finally:
        logger.removeHandler(causes)


def _probe(settings: Settings) -> BaseException | None:
    """Connect to the first broker as our clients do (TCP, then TLS if configured): the error,
    or None when the broker answered."""
    import socket

    host, _, port = settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as raw:
            context = settings.kafka_ssl_context()
            if context is not None:
                with context.wrap_socket(raw, server_hostname=host.strip("[]")):
                    pass
        return None
    except (OSError, ValueError) as exc:
        return exc


def es_auth_error(exc: BaseException, settings: Settings) -> AuthError | None:
    """The ``AuthError`` an Elasticsearch client error stands for, if any."""
    from elastic_transport import TlsError
    from elasticsearch import AuthenticationException

    where = settings.es_url
    if isinstance(exc, AuthenticationException):
        return AuthError(f"Elasticsearch at {where} rejected the credentials ({ES_LOGIN})")
    if isinstance(exc, TlsError):
        return AuthError(
            f"Elasticsearch at {where} presented a certificate we do not trust ({ES_TRUST})"
        )
    return None


@contextmanager
def es_errors(settings: Settings) -> Iterator[None]:
    """Around Elasticsearch calls: a refused login or certificate becomes an ``AuthError``."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    try:
        yield
    except (ApiError, TransportError) as exc:
        auth = es_auth_error(exc, settings)
        if auth:
            raise auth from exc
        raise
