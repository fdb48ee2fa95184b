"""``cpwatch stack up|down|status|logs``: a single-node Kafka (KRaft) and Elasticsearch.

Each process we start leaves a pid file; ``down`` stops exactly those pids, never by name.
Elasticsearch refuses to run as root, so when we are root it runs as an unprivileged user
from a directory that user owns.
"""

from __future__ import annotations

import base64
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console

from cpwatch.exceptions import StackError
from cpwatch.settings import Settings
from deploy.install import (
    PLUGIN_NAME,
    has_builtin_english,
    install_analysis_plugin,
    install_elasticsearch,
    install_kafka,
    require_tool,
)

HEALTH_TIMEOUT_S = 180.0
ES_RUNTIME_ROOT = Path("/var/lib/cpwatch")  # used when root: the ES user must reach it


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    pid_file: Path
    log_file: Path
    data_dir: Path


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _running(pid) else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by the ES user
    # A stopped child of this very process lingers as a zombie until reaped: not running.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


class Stack:
    """The plain stack. Subclasses (deploy/secure_stack.py) change its configuration through
    the hooks ``_kafka_properties``, ``_kafka_format_args``, ``_es_settings``,
    ``_prepare_es_config`` and ``_es_http``."""

    def __init__(
        self, settings: Settings, console: Console | None = None, *, root: Path | None = None
    ) -> None:
        self.s = settings
        self.console = console or Console(stderr=True)
        self.root = root = root or settings.stack_dir
        kafka_port = int(settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])
        es_port = urlsplit(settings.es_url).port or 9200
        # One runtime dir per port, so a second stack (e.g. CI's cold run) never shares pid files.
        es_root = ES_RUNTIME_ROOT / f"es-{es_port}" if os.geteuid() == 0 else root
        self.kafka = Service(
            "kafka", kafka_port, root / "kafka.pid", root / "logs/kafka.log", root / "kafka-data"
        )
        self.es = Service(
            "elasticsearch",
            es_port,
            es_root / "elasticsearch.pid",
            es_root / "logs/cpwatch.log",
            es_root / "es-data",
        )
        self.es_root = es_root
        self._es_found_running = False

    # ---- up -------------------------------------------------------------------------------

    def up(self, *, with_prometheus: bool = False) -> None:
        t0 = time.monotonic()
        self._start_kafka()
        self._start_es()
        self._wait_kafka()
        self._wait_es()
        if self._es_found_running:
            self._check_es_plugin()
        if with_prometheus:
            from deploy.prometheus import start_prometheus

            start_prometheus(self.s, self.console)
        self.console.print(
            f"[green]stack up[/green] in {time.monotonic() - t0:.1f}s\n"
            f"  kafka          {self.s.kafka_bootstrap}  data {self.kafka.data_dir}"
            f"  log {self.kafka.log_file}\n"
            f"  elasticsearch  {self.s.es_url}  data {self.es.data_dir}  log {self.es.log_file}"
        )

    def _check_port(self, svc: Service) -> bool:
        """True when our process already serves the port; error when a stranger holds it."""
        if _read_pid(svc.pid_file):
            return True
        if _port_open(svc.port):
            raise StackError(
                f"port {svc.port} is taken by a process cpwatch did not start; stop it, or point"
                f" cpwatch at that cluster with CPWATCH_KAFKA_BOOTSTRAP / CPWATCH_ES_URL"
            )
        return False

    def _start_kafka(self) -> None:
        if self._check_port(self.kafka):
            self.console.print(f"kafka already running (pid {_read_pid(self.kafka.pid_file)})")
            return
        java = require_tool("java", "install a JDK (17+) to run Kafka")
        self.console.print(f"kafka {self.s.kafka_version}: fetching jars (cached)...")
        lib = install_kafka(self.s.kafka_version, self.s.home)
        root = self.root
        (root / "logs").mkdir(parents=True, exist_ok=True)
        props = root / "kafka.properties"
        props.write_text(self._kafka_properties())
        log4j = root / "kafka-log4j.properties"
        log4j.write_text(
            "log4j.rootLogger=WARN, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka.server.KafkaServer=INFO\n"
            "log4j.logger.kafka.server.BrokerServer=INFO\n"
        )
        base = [
            java,
            f"-Xms{self.s.kafka_heap}",
            f"-Xmx{self.s.kafka_heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j.configuration=file:{log4j}",
            "-cp",
            f"{lib}/*",
        ]
        if not (self.kafka.data_dir / "meta.properties").exists():
            # KRaft storage must be formatted once with a cluster id before first start.
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(  # noqa: S603
                [
                    *base,
                    "kafka.tools.StorageTool",
                    "format",
                    # "=": a random id may begin with "-", which argparse reads as an option
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(props),
                    *self._kafka_format_args(),
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if fmt.returncode != 0:
                # Only the tool's own output: the arguments may hold SCRAM passwords.
                raise StackError(f"kafka storage format failed:\n{fmt.stdout}{fmt.stderr}")
        with open(self.kafka.log_file, "ab") as log:
            proc = subprocess.Popen(  # noqa: S603
                [*base, "kafka.Kafka", str(props)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the CLI; stopped by pid in `down`
            )
        self.kafka.pid_file.write_text(str(proc.pid))
        self.console.print(f"kafka starting (pid {proc.pid})")

    def _kafka_format_args(self) -> list[str]:
        """Extra arguments of the one-time ``kafka-storage format`` (e.g. SCRAM users)."""
        return []

    def _kafka_properties(self) -> str:
        p = self.kafka.port
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{p + 1}",
                f"listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{p + 1}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{p}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.kafka.data_dir}",
                f"num.partitions={self.s.topic_partitions}",
                # One broker: internal topics cannot be replicated (Faust exactly_once needs
                # the transaction log at RF 1 here).
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "log.retention.hours=168",
                "",
            ]
        )

    def _es_user(self) -> str | None:
        """The unprivileged account ES runs as when we are root (created on first use)."""
        if os.geteuid() != 0:
            return None
        name = self.s.es_user
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(  # noqa: S603
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                check=True,
                capture_output=True,
            )
        return name

    def _start_es(self) -> None:
        if self._check_port(self.es):
            self.console.print(f"elasticsearch already running (pid {_read_pid(self.es.pid_file)})")
            self._es_found_running = True  # checked once it answers (_check_es_plugin)
            return
        java_home = self.s.es_java_home
        if not (java_home / "bin/java").exists():
            raise StackError(
                f"Elasticsearch {self.s.es_version} needs Java 21+; none at {java_home}. Install"
                " a JDK 21 or later (e.g. Eclipse Temurin's temurin-25-jdk Debian package from"
                " packages.adoptium.net, or Debian's openjdk-21-jdk-headless) and set"
                " CPWATCH_ES_JAVA_HOME to its directory"
            )
        self.console.print(f"elasticsearch {self.s.es_version}: fetching distribution (cached)...")
        es_home = install_elasticsearch(self.s.es_version, self.s.home, self.es_root / "dist")
        # Before the node starts: plugins are read only at start-up.
        state = install_analysis_plugin(self.s.es_version, self.s.home, es_home, java_home)
        if state == "installed":
            self.console.print(f"elasticsearch: installed plugin {PLUGIN_NAME} (english analyzer)")
        # ES_TMPDIR: without it each start leaves an elasticsearch-<n> directory in /tmp.
        for d in (self.es.data_dir, self.es.log_file.parent, self.es_root / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        conf = self.es_root / "es-config"
        if conf.exists():
            shutil.rmtree(conf)
        shutil.copytree(es_home / "config", conf)
        (conf / "elasticsearch.yml").write_text("\n".join([*self._es_settings(), ""]))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ES_JAVA_HOME": str(java_home),
            "ES_PATH_CONF": str(conf),
            "ES_JAVA_OPTS": f"-Xms{self.s.es_heap} -Xmx{self.s.es_heap}",
            "HOME": str(self.es_root),
            "ES_TMPDIR": str(self.es_root / "tmp"),
        }
        self._prepare_es_config(conf, es_home, env)
        user = self._es_user()
        if user:
            subprocess.run(["chown", "-R", f"{user}:{user}", str(self.es_root)], check=True)  # noqa: S603,S607
        cmd = [str(es_home / "bin/elasticsearch"), "-d", "-p", str(self.es.pid_file)]
        if user:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *cmd]
        with open(self.es.log_file.parent / "stdout.log", "ab") as log:
            proc = subprocess.run(  # noqa: S603
                cmd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=HEALTH_TIMEOUT_S,
                check=False,
                cwd=self.es_root,
            )
        if proc.returncode != 0:
            raise StackError(
                f"elasticsearch failed to start (exit {proc.returncode}); see"
                f" {self.es.log_file.parent / 'stdout.log'}:\n{self.logs('elasticsearch', 20)}"
            )
        self.console.print(f"elasticsearch starting (pid {_read_pid(self.es.pid_file)})")

    def _es_settings(self) -> list[str]:
        """The lines of elasticsearch.yml."""
        return [
            "cluster.name: cpwatch",
            "node.name: cpwatch-1",
            f"path.data: {self.es.data_dir}",
            f"path.logs: {self.es.log_file.parent}",
            "network.host: 127.0.0.1",
            f"http.port: {self.es.port}",
            f"transport.port: {self.es.port + 100}",
            "discovery.type: single-node",
            # Loopback-only dev node: TLS and auth would only get in the way here; real
            # clusters are reached with CPWATCH_ES_URL + API key/CA, and `stack up --secure`
            # runs a secured one (deploy/secure_stack.py).
            "xpack.security.enabled: false",
            "action.destructive_requires_name: false",
            "cluster.routing.allocation.disk.threshold_enabled: false",
        ]

    def _prepare_es_config(self, conf: Path, es_home: Path, env: dict[str, str]) -> None:
        """Runs after elasticsearch.yml is written into ``conf``, before the node starts."""

    def _es_http(self) -> dict[str, Any]:
        """httpx options for our own requests to Elasticsearch (auth, TLS trust)."""
        return {}

    def _check_es_plugin(self) -> None:
        """A node we found running may predate the english analyzer plugin: say what to do.

        It is not restarted here: other clients (a test run, the pipeline) may be using it.
        """
        dist = self.es_root / "dist" / f"elasticsearch-{self.s.es_version}"
        if has_builtin_english(dist):
            return
        try:
            url = f"{self.s.es_url}/_nodes/plugins?filter_path=nodes.*.plugins.name"
            nodes = httpx.get(url, timeout=10, **self._es_http()).json().get("nodes", {}).values()
            names = {p.get("name") for n in nodes for p in n.get("plugins", [])}
        except (httpx.HTTPError, ValueError):
            return
        if PLUGIN_NAME not in names:
            self.console.print(
                f"[yellow]warning:[/yellow] elasticsearch at {self.s.es_url} runs without the"
                f" {PLUGIN_NAME} plugin, so new indices get no English stemming. Restart it"
                " with `cpwatch stack down && cpwatch stack up` (installs the plugin first),"
                " then `cpwatch indices migrate articles --version 2` (and events)."
            )

    def _wait_kafka(self) -> None:
        from kafka.admin import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while True:
            if not _read_pid(self.kafka.pid_file):
                raise StackError(f"kafka exited during start:\n{self.logs('kafka', 30)}")
            try:
                admin = KafkaAdminClient(request_timeout_ms=5000, **self.s.kafka_client_kwargs())
                admin.list_topics()
                admin.close()
                return
            except (KafkaError, OSError, ValueError) as exc:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"kafka not answering metadata after {HEALTH_TIMEOUT_S}s: {exc}"
                    ) from exc
                time.sleep(1)

    def _wait_es(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        url = f"{self.s.es_url}/_cluster/health?wait_for_status=yellow&timeout=5s"
        while True:
            if not _read_pid(self.es.pid_file) and not _port_open(self.es.port):
                if time.monotonic() > deadline - HEALTH_TIMEOUT_S + 30:
                    raise StackError(f"elasticsearch exited:\n{self.logs('elasticsearch', 30)}")
            try:
                r = httpx.get(url, timeout=10, **self._es_http())
                if r.status_code == 200 and r.json().get("status") in ("yellow", "green"):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise StackError(f"elasticsearch not yellow after {HEALTH_TIMEOUT_S}s")
            time.sleep(1)

    # ---- down / status / logs ---------------------------------------------------------------

    def down(self) -> None:
        self._stop_engines()
        from deploy.prometheus import stop_prometheus

        stop_prometheus(self.s, self.console)

    def _stop_engines(self) -> None:
        for svc in (self.es, self.kafka):
            self._stop(svc)

    def stop(self, service: str) -> None:
        """Stop one engine (fault tests); `up` starts it again."""
        svc = {"kafka": self.kafka, "elasticsearch": self.es}.get(service)
        if svc is None:
            raise StackError(f"unknown service '{service}': use kafka or elasticsearch")
        self._stop(svc)

    def _stop(self, svc: Service) -> None:
        pid = _read_pid(svc.pid_file)
        if not pid:
            self.console.print(f"{svc.name}: not running")
            svc.pid_file.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)
        # Wait on the process, not its pid file: Elasticsearch deletes that file as soon as
        # shutdown begins, while the process may still hold its port and data directory.
        for _ in range(120):
            if not _running(pid):
                break
            time.sleep(0.5)
        else:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        svc.pid_file.unlink(missing_ok=True)
        self.console.print(f"{svc.name}: stopped (pid {pid})")

    def status(self) -> bool:
        ok = True
        for svc in (self.kafka, self.es):
            pid = _read_pid(svc.pid_file)
            serving = _port_open(svc.port)
            state = "running" if pid and serving else "starting" if pid else "stopped"
            ok &= state == "running"
            self.console.print(
                f"{svc.name:14} {state:8} pid={pid or '-'} port={svc.port}"
                f" data={svc.data_dir} log={svc.log_file}"
            )
        return ok

    def logs(self, service: str, lines: int = 50) -> str:
        svc = {"kafka": self.kafka, "elasticsearch": self.es, "es": self.es}.get(service)
        if svc is None:
            raise StackError(f"unknown service '{service}': use kafka or elasticsearch")
        files = [svc.log_file]
        if svc is self.es:
            files = sorted(svc.log_file.parent.glob("cpwatch*.log")) + [
                svc.log_file.parent / "stdout.log"
            ]
        out: list[str] = []
        for f in files:
            if f.exists():
                out += f.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out[-lines:]) + "\n"
