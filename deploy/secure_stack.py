"""``cpwatch stack up --secure``: a second local stack with authentication and TLS everywhere.

Kafka listens with SASL_SSL (SCRAM-SHA-512 users created at format time); its controller
listener stays PLAINTEXT on loopback. Elasticsearch runs with x-pack security, HTTPS, the
``elastic`` user's password set from the keystore's bootstrap password, and an API key made
through the API for clients. Both present a certificate from a CA this stack generates.

It lives beside the plain stack (the default for ``make run``): its own ports (the plain ones
+ ``PORT_OFFSET``), directory (``$CPWATCH_HOME/stack-secure``, 0700) and pid files. Passwords
are generated once and kept in that directory's ``secrets.json`` (0600); clients get theirs
from ``client.env`` (0600), never from the terminal.
"""

from __future__ import annotations

import json
import secrets
import shlex
import ssl
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape

from cpwatch.exceptions import StackError
from cpwatch.settings import Settings
from deploy import certs
from deploy.install import SECURITY_ANALYSIS, install_analysis_plugin
from deploy.stack import Stack

PORT_OFFSET = 20  # clear of the plain stack's p, p+1 (Kafka) and p, p+100 (Elasticsearch)
KAFKA_USER = "cpwatch"  # the clients' SCRAM user
KAFKA_BROKER_USER = "broker"  # the broker's own inter-broker SCRAM user
ES_USER = "cpwatch"  # the clients' Elasticsearch user (file realm, superuser role)
MECHANISM = "SCRAM-SHA-512"
API_KEY_NAME = "cpwatch-local"


def secure_root(plain: Settings) -> Path:
    return plain.home / "stack-secure"


def _load_secrets(root: Path) -> dict[str, str]:
    """Passwords of this stack, generated on first use and kept 0600 beside its data."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)  # kafka.properties and the keystore below hold passwords too
    path = root / "secrets.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    # Hex only: the values go into SCRAM and JAAS syntax, where quotes and commas are special.
    wanted = (
        "kafka_password",
        "kafka_broker_password",
        "es_password",  # the `elastic` superuser's bootstrap password: the stack's own
        "es_user_password",
        "keystore_password",
    )
    fresh = {k: secrets.token_hex(16) for k in wanted if k not in known}
    if fresh:
        known.update(fresh)
        _write_private(path, json.dumps(known, indent=1))
    return known


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def secure_settings(plain: Settings) -> Settings:
    """What a client of the secured stack uses: SCRAM user, API key, the stack's CA.

    ``plain`` gives the ports (plus ``PORT_OFFSET``), ``home`` and everything else."""
    root = secure_root(plain)
    known = _load_secrets(root)
    kafka_port = int(plain.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1]) + PORT_OFFSET
    es_port = (urlsplit(plain.es_url).port or 9200) + PORT_OFFSET
    ca = root / "tls" / "ca.pem"
    api_key = known.get("es_api_key")
    return plain.model_copy(
        update={
            "kafka_bootstrap": f"127.0.0.1:{kafka_port}",
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": MECHANISM,
            "kafka_username": KAFKA_USER,
            "kafka_password": SecretStr(known["kafka_password"]),
            "kafka_ca_file": ca,
            "es_url": f"https://127.0.0.1:{es_port}",
            # The API key when the node could make one (see SecureStack._ensure_api_key); the
            # client user's password either way, used when there is no key.
            "es_api_key": SecretStr(api_key) if api_key else None,
            "es_username": ES_USER,
            "es_password": SecretStr(known["es_user_password"]),
            "es_ca_file": ca,
        }
    )


class SecureStack(Stack):
    def __init__(self, plain: Settings, console: Console | None = None) -> None:
        root = secure_root(plain)
        self.secrets = _load_secrets(root)
        self.tls = root / "tls"
        # The stack itself administers Elasticsearch as `elastic` (basic auth); clients use
        # the API key it creates (secure_settings).
        admin = secure_settings(plain).model_copy(
            update={
                "es_api_key": None,
                "es_username": "elastic",
                "es_password": SecretStr(self.secrets["es_password"]),
            }
        )
        super().__init__(admin, console, root=root)

    # ---- up -------------------------------------------------------------------------------

    def up(self, *, with_prometheus: bool = False) -> None:
        if with_prometheus:
            raise StackError("Prometheus runs with the plain stack only")
        self._make_certs()
        super().up()
        self._ensure_api_key()
        self._write_client_env()

    def _make_certs(self) -> None:
        ca = certs.make_ca(self.tls)
        server = certs.issue(ca, self.tls, "server", ("localhost", "127.0.0.1"))
        p12 = self.tls / "server.p12"
        if not p12.exists():
            certs.pkcs12(server, ca, p12, self.secrets["keystore_password"])

    def _kafka_format_args(self) -> list[str]:
        return [
            "--add-scram",
            f"{MECHANISM}=[name={KAFKA_USER},password={self.secrets['kafka_password']}]",
            "--add-scram",
            f"{MECHANISM}=[name={KAFKA_BROKER_USER},password={self.secrets['kafka_broker_password']}]",
        ]

    def _kafka_properties(self) -> str:
        p = self.kafka.port
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required"
            f' username="{KAFKA_BROKER_USER}" password="{self.secrets["kafka_broker_password"]}";'
        )
        plain = super()._kafka_properties().splitlines()
        keep = [
            line
            for line in plain
            if line.split("=", 1)[0]
            not in ("listeners", "advertised.listeners", "listener.security.protocol.map")
        ]
        return "\n".join(
            [
                *keep,
                f"listeners=SASL_SSL://127.0.0.1:{p},CONTROLLER://127.0.0.1:{p + 1}",
                f"advertised.listeners=SASL_SSL://127.0.0.1:{p}",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
                # The broker reaches itself (replication, transaction markers) as a client too.
                "inter.broker.listener.name=SASL_SSL",
                f"sasl.enabled.mechanisms={MECHANISM}",
                f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
                f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
                # The close after a refused login follows the answer by 1 s, not 100 ms, so a
                # busy client reads the answer before the EOF (see cpwatch/engine_errors.py).
                "connection.failed.authentication.delay.ms=1000",
                "ssl.keystore.type=PKCS12",
                f"ssl.keystore.location={self.tls / 'server.p12'}",
                f"ssl.keystore.password={self.secrets['keystore_password']}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={self.tls / 'ca.pem'}",
                "",
            ]
        )

    def _es_settings(self) -> list[str]:
        base = [s for s in super()._es_settings() if not s.startswith("xpack.security.enabled")]
        return [
            *base,
            "xpack.security.enabled: true",
            "xpack.security.http.ssl.enabled: true",
            # Paths relative to the config dir: ES reads TLS files only from there.
            "xpack.security.http.ssl.certificate: certs/server.pem",
            "xpack.security.http.ssl.key: certs/server.key",
            "xpack.security.http.ssl.certificate_authorities: [certs/ca.pem]",
            # One node on loopback: nothing travels over the transport layer.
            "xpack.security.transport.ssl.enabled: false",
        ]

    def _prepare_es_config(self, conf: Path, es_home: Path, env: dict[str, str]) -> None:
        # API keys live in the `.security` index, whose mapping needs analysis parts that the
        # integ-test-zip lacks: our plugin provides them (deploy/es-security-plugin).
        s = self.s
        install_analysis_plugin(s.es_version, s.home, es_home, s.es_java_home, SECURITY_ANALYSIS)
        dest = conf / "certs"
        dest.mkdir(exist_ok=True)
        for name in ("ca.pem", "server.pem", "server.key"):
            (dest / name).write_bytes((self.tls / name).read_bytes())
        (dest / "server.key").chmod(0o600)
        tool = str(es_home / "bin/elasticsearch-keystore")
        if not (conf / "elasticsearch.keystore").exists():
            self._run_es_tool([tool, "create"], env)
        # Passwords go in on stdin, never on a command line.
        self._run_es_tool(
            [tool, "add", "-x", "-f", "bootstrap.password"], env, stdin=self.secrets["es_password"]
        )
        users = str(es_home / "bin/elasticsearch-users")
        pw = self.secrets["es_user_password"]
        add = [users, "useradd", ES_USER, "-r", "superuser"]
        self._run_es_tool(add, env, stdin=f"{pw}\n{pw}\n")  # asks twice

    def _run_es_tool(self, cmd: list[str], env: dict[str, str], stdin: str | None = None) -> None:
        proc = subprocess.run(  # noqa: S603
            cmd, env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            raise StackError(f"{Path(cmd[0]).name} {cmd[1]} failed: {proc.stdout}{proc.stderr}")

    def _es_http(self) -> dict[str, Any]:
        return {
            "auth": ("elastic", self.secrets["es_password"]),
            "verify": ssl.create_default_context(cafile=str(self.tls / "ca.pem")),
        }

    def _ensure_api_key(self) -> None:
        """Keep an API key for clients: reuse the stored one while valid, else create one.

        API keys live in the `.security` index, whose mapping uses analysis filters the
        integ-test-zip may lack; then clients use the file-realm user instead."""
        url = self.s.es_url
        verify = self._es_http()["verify"]
        known = self.secrets.get("es_api_key")
        if known:
            r = httpx.get(
                f"{url}/_security/_authenticate",
                headers={"Authorization": f"ApiKey {known}"},
                verify=verify,
                timeout=30,
            )
            if r.status_code == 200:
                return
            del self.secrets["es_api_key"]
        r = httpx.post(
            f"{url}/_security/api_key", json={"name": API_KEY_NAME}, timeout=30, **self._es_http()
        )
        if r.status_code == 200:
            self.secrets["es_api_key"] = r.json()["encoded"]
        else:
            reason = r.json().get("error", {}).get("reason", r.text[:200])
            self.console.print(
                f"[yellow]note:[/yellow] no API key (HTTP {r.status_code}: {escape(reason)});"
                f" clients authenticate as user {ES_USER} (CPWATCH_ES_USERNAME/PASSWORD)"
            )
        _write_private(self.root / "secrets.json", json.dumps(self.secrets, indent=1))

    # ---- what clients need ------------------------------------------------------------------

    @property
    def client_env_file(self) -> Path:
        return self.root / "client.env"

    def public_env(self) -> dict[str, str]:
        """The client settings that are not secrets."""
        s = self.s
        return {
            "CPWATCH_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
            "CPWATCH_KAFKA_SECURITY_PROTOCOL": s.kafka_security_protocol,
            "CPWATCH_KAFKA_SASL_MECHANISM": MECHANISM,
            "CPWATCH_KAFKA_USERNAME": KAFKA_USER,
            "CPWATCH_KAFKA_CA_FILE": str(self.tls / "ca.pem"),
            "CPWATCH_ES_URL": s.es_url,
            "CPWATCH_ES_USERNAME": ES_USER,
            "CPWATCH_ES_CA_FILE": str(self.tls / "ca.pem"),
        }

    def _write_client_env(self) -> None:
        env = {**self.public_env(), "CPWATCH_KAFKA_PASSWORD": self.secrets["kafka_password"]}
        if "es_api_key" in self.secrets:
            env["CPWATCH_ES_API_KEY"] = self.secrets["es_api_key"]
        else:
            env["CPWATCH_ES_PASSWORD"] = self.secrets["es_user_password"]
        lines = [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
        _write_private(self.client_env_file, "\n".join([*lines, ""]))

    def exports(self) -> str:
        """Shell lines for stdout: the public settings, then the 0600 file with the secrets."""
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.public_env().items()]
        quoted = shlex.quote(str(self.client_env_file))
        es_secret = "CPWATCH_ES_API_KEY" if "es_api_key" in self.secrets else "CPWATCH_ES_PASSWORD"
        lines.append(f". {quoted}  # the secrets: CPWATCH_KAFKA_PASSWORD, {es_secret}")
        return "\n".join([*lines, ""])

    # ---- down -------------------------------------------------------------------------------

    def down(self) -> None:
        self._stop_engines()  # no Prometheus here
