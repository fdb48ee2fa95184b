"""Typed, frozen settings read once from ``CPWATCH_*`` environment variables.

Every stage builds one ``Settings`` at its entry point and passes it down; nothing reads the
environment elsewhere. Credentials are ``SecretStr`` so they never print in logs or reprs.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, StrictBool
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path.home() / ".cache" / "cpwatch"


def _env_bool(value: object) -> object:
    """Environment values are text: accept exactly true/false/1/0, then stay strict."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return value


EnvBool = Annotated[StrictBool, BeforeValidator(_env_bool)]


class Settings(BaseSettings):
    """Where the engines are and how cpwatch talks to them."""

    model_config = SettingsConfigDict(env_prefix="CPWATCH_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    # TLS to Kafka (SSL / SASL_SSL): the CA to trust (else the system's) and, for mTLS, our
    # client certificate and key, all PEM.
    kafka_ca_file: Path | None = None
    kafka_cert_file: Path | None = None
    kafka_key_file: Path | None = None
    # How long a kafka-python client waits for its first broker answer before giving up.
    kafka_bootstrap_timeout_s: float = Field(default=30.0, gt=0)
    topic_prefix: str = ""
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)

    es_url: str = "http://127.0.0.1:9200"
    es_cloud_id: str | None = None  # Elastic Cloud: replaces es_url when set
    es_api_key: SecretStr | None = None
    es_username: str | None = None
    es_password: SecretStr | None = None
    es_ca_file: Path | None = None
    es_ssl_fingerprint: str | None = None  # pin the server certificate (SHA-256, hex)
    es_index_prefix: str = "cpwatch"
    es_request_timeout: float = Field(default=30.0, gt=0)
    # How long a starting worker waits for Kafka and Elasticsearch to answer before giving up.
    startup_wait_s: float = Field(default=300.0, ge=0)
    valuation_retention_months: int = Field(default=12, ge=1)

    # The local stack (cpwatch stack up): downloads cache, data, logs, pid files.
    home: Path = DEFAULT_HOME
    kafka_version: str = "3.9.1"
    es_version: str = "9.2.0"
    es_java_home: Path = Path("/usr/lib/jvm/temurin-25-jdk-amd64")
    kafka_heap: str = "512m"
    es_heap: str = "768m"
    es_user: str = "cpwatch"

    faust_app_id: str = "cpwatch"
    faust_data_dir: Path | None = None
    metrics_port: int = 9308  # the worker's /metrics; 0 disables (cpwatch/metrics.py)
    producer_metrics_port: int = Field(default=9309, ge=0, le=65535)  # + offset per kind
    metrics_host: str = "127.0.0.1"
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    strict_engines: StrictBool = False

    # Treasury stage: rules file (YAML, see deploy/rules.example.yaml) and reference price.
    rules_file: Path | None = None  # None: the packaged cpwatch/data/rules.yaml
    price_staleness_s: float = Field(default=120.0, gt=0)
    price_divergence_pct: float = Field(default=2.0, gt=0)
    # News stage: processes that classify beside the worker's event loop (0: on the loop).
    classify_processes: int = Field(default=1, ge=0, le=64)
    # the treasury's per-batch engine: numpy columns, or the tick-by-tick reference
    treasury_engine: Literal["columnar", "scalar"] = "columnar"
    # at_least_once + deterministic ids is exactly-once in effect. faust-streaming 0.15.3 in
    # exactly_once mode left some transactions uncommitted on a single broker (23 of 32 alerts
    # reached read_committed consumers in tests/integration/test_treasury_stream.py), so it is
    # opt-in.
    processing_guarantee: str = Field(
        default="at_least_once", pattern="^(at_least_once|exactly_once)$"
    )
    # Faust's standby copies of each table partition on other workers. The tables are small (a
    # record per symbol, holder slot, story, input partition), so a new owner restores one from
    # its changelog quickly; a standby instead keeps its worker fetching every other worker's
    # changelog writes: with two workers, 15 ms more CPU per worker and input burst, on top
    # of 65-70 ms without (bench_scale's chunks of 200 ticks).
    standby_replicas: int = Field(default=0, ge=0)
    # Holdings read from the news: "none" only proposes them (cpwatch holdings proposals);
    # "total" sends statements of a holder's total at once to the holdings topic.
    holdings_auto_accept: str = Field(default="none", pattern="^(none|total)$")
    holdings_registry_file: Path | None = None  # None: the packaged cpwatch/data/treasuries.csv

    # Alert subscriptions and delivery (notify/delivery_agent.py, api/routes_subscriptions.py).
    webhook_connect_timeout_s: float = Field(default=5.0, gt=0)
    webhook_read_timeout_s: float = Field(default=10.0, gt=0)
    delivery_max_attempts: int = Field(default=5, ge=1, le=50)
    delivery_backoff_base_s: float = Field(default=0.5, ge=0)
    delivery_backoff_cap_s: float = Field(default=30.0, ge=0)
    delivery_ssrf_allowlist: str = ""  # comma-separated IPs, CIDRs or host names
    delivery_per_endpoint: int = Field(default=2, ge=1)
    delivery_timeout_s: float = Field(default=120.0, gt=0)
    subscriptions_refresh_s: float = Field(default=3.0, gt=0)  # matcher's cache of subscriptions
    max_subscriptions: int = Field(default=50_000, ge=1)  # bound on the cached set
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: EnvBool = True
    smtp_ssl: EnvBool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "cpwatch@localhost"
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    # Server side: bearer tokens with write scope, comma-separated; an entry may also be
    # "sha256:<hex>". More tokens, with read or write scope: `cpwatch tokens create`, kept in
    # api_tokens_file (default $CPWATCH_HOME/api-tokens.json; cpwatch/tokens.py).
    api_tokens: SecretStr | None = None
    api_tokens_file: Path | None = None
    # Client side: the one token the CLI sends (CPWATCH_API_TOKEN).
    api_token: SecretStr | None = None
    # Largest request body the API reads (ingest takes up to 500 articles per request).
    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Host headers the API answers (comma-separated; "*.example.org" admits subdomains, "*"
    # any); empty: localhost, 127.0.0.1, [::1] and api_host. Others get 400 (DNS rebinding).
    api_allowed_hosts: str = ""
    # Concurrent server-sent-event streams per API process; past it 429 (api/sse.py).
    api_max_sse_clients: int = Field(default=32, ge=1)
    # Token buckets per token (anonymous: per client IP): requests/s and burst; 0 disables.
    api_rate_search: float = Field(default=20.0, ge=0)
    api_rate_search_burst: int = Field(default=60, ge=1)
    api_rate_ingest: float = Field(default=10.0, ge=0)
    api_rate_ingest_burst: int = Field(default=20, ge=1)
    # Channel secrets at rest (cpwatch/secretbox.py): base64 of 32 random bytes; old keys
    # (comma-separated) still decrypt until `cpwatch secrets rotate` re-encrypted everything.
    secret_key: SecretStr | None = None
    secret_key_old: SecretStr | None = None

    @property
    def ssrf_allowlist(self) -> tuple[str, ...]:
        return tuple(e.strip() for e in self.delivery_ssrf_allowlist.split(",") if e.strip())

    @property
    def rules_path(self) -> Path:
        """The treasury rules file: ``rules_file``, else the packaged ``data/rules.yaml``."""
        from importlib import resources

        return self.rules_file or Path(str(resources.files("cpwatch") / "data" / "rules.yaml"))

    @property
    def holdings_registry_path(self) -> Path:
        """The holders known by name (format of treasuries.csv): the file, else the packaged one."""
        from importlib import resources

        packaged = resources.files("cpwatch") / "data" / "treasuries.csv"
        return self.holdings_registry_file or Path(str(packaged))

    def topic(self, name: str) -> str:
        """Full topic name for a logical topic (see ``cpwatch.topics``)."""
        return f"{self.topic_prefix}{name}"

    def index(self, name: str) -> str:
        """Full index (or alias) name for a logical index."""
        return f"{self.es_index_prefix}-{name}"

    @property
    def stack_dir(self) -> Path:
        return self.home / "stack"

    @property
    def kafka_tls(self) -> bool:
        return self.kafka_security_protocol.upper() in ("SSL", "SASL_SSL")

    def _kafka_sasl_kwargs(self) -> dict[str, object]:
        if not self.kafka_sasl_mechanism:
            return {}
        return {
            "sasl_mechanism": self.kafka_sasl_mechanism,
            # kafka-python and aiokafka name them "plain" for every mechanism, SCRAM included.
            "sasl_plain_username": self.kafka_username,
            "sasl_plain_password": (
                self.kafka_password.get_secret_value() if self.kafka_password else None
            ),
        }

    def kafka_client_kwargs(self) -> dict[str, object]:
        """Connection options shared by kafka-python producers, consumers and admin clients."""
        kw: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap.split(","),
            "security_protocol": self.kafka_security_protocol,
            "bootstrap_timeout_ms": int(self.kafka_bootstrap_timeout_s * 1000),
            **self._kafka_sasl_kwargs(),
        }
        if self.kafka_tls:
            for key, path in (
                ("ssl_cafile", self.kafka_ca_file),
                ("ssl_certfile", self.kafka_cert_file),
                ("ssl_keyfile", self.kafka_key_file),
            ):
                if path:
                    kw[key] = str(path)
        return kw

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context aiokafka and Faust take instead of file names (None: no TLS)."""
        if not self.kafka_tls:
            return None
        from aiokafka.helpers import create_ssl_context

        context: ssl.SSLContext = create_ssl_context(
            cafile=self.kafka_ca_file, certfile=self.kafka_cert_file, keyfile=self.kafka_key_file
        )
        return context

    def aiokafka_client_kwargs(self) -> dict[str, object]:
        """Connection options for aiokafka consumers and producers."""
        kw: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap.split(","),
            "security_protocol": self.kafka_security_protocol,
            **self._kafka_sasl_kwargs(),
        }
        if self.kafka_tls:
            kw["ssl_context"] = self.kafka_ssl_context()
        return kw

    def es_client_kwargs(self) -> dict[str, Any]:
        """Connection options for the Elasticsearch client (sync or async)."""
        kw: dict[str, object] = {"request_timeout": self.es_request_timeout}
        # The client resolves a Cloud ID to the deployment's endpoint; it refuses both at once.
        if self.es_cloud_id:
            kw["cloud_id"] = self.es_cloud_id
        else:
            kw["hosts"] = [self.es_url]
        if self.es_api_key:
            kw["api_key"] = self.es_api_key.get_secret_value()
        elif self.es_username and self.es_password:
            kw["basic_auth"] = (self.es_username, self.es_password.get_secret_value())
        if self.es_ca_file:
            kw["ca_certs"] = str(self.es_ca_file)
        if self.es_ssl_fingerprint:
            kw["ssl_assert_fingerprint"] = self.es_ssl_fingerprint
        return kw


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
