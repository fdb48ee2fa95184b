"""Fetch Kafka's jars and Elasticsearch's integ-test-zip through Maven's own client, and build
cpwatch's own analysis plugin (``deploy/es-plugin``) for that distribution.

Maven verifies checksums and caches everything in one local repository under
``settings.home/m2``, so a second ``stack up`` downloads nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cpwatch.exceptions import StackError

KAFKA_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>cpwatch.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <!-- the broker logs through slf4j; the official distribution binds it to reload4j -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
"""

ES_COORDS = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
MVN_TIMEOUT_S = 900


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if not path:
        raise StackError(f"'{name}' not found on PATH: {hint}")
    return path


def _mvn(args: list[str], repo: Path, cwd: Path | None = None) -> None:
    mvn = require_tool("mvn", "install Maven (Debian package 'maven') to fetch Kafka/Elasticsearch")
    cmd = [mvn, "-B", "-q", f"-Dmaven.repo.local={repo}", *args]
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            cmd, cwd=cwd, capture_output=True, text=True, timeout=MVN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"Maven timed out after {MVN_TIMEOUT_S}s: {' '.join(args)}") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise StackError(f"Maven download failed ({' '.join(args[:2])}):\n" + "\n".join(tail))


def install_kafka(version: str, home: Path) -> Path:
    """Return a directory holding every runtime jar of the Kafka broker ``version``."""
    lib = home / "kafka" / version / "lib"
    marker = lib / ".complete"
    if marker.exists():
        return lib
    build = home / "kafka" / version / "pom"
    build.mkdir(parents=True, exist_ok=True)
    (build / "pom.xml").write_text(KAFKA_POM.format(version=version))
    if lib.exists():
        shutil.rmtree(lib)
    _mvn(
        [
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib}",
            "-DincludeScope=runtime",
        ],
        repo=home / "m2",
        cwd=build,
    )
    if not any(lib.glob("kafka_2.13-*.jar")):
        raise StackError(f"Kafka {version}: Maven finished but no kafka_2.13 jar in {lib}")
    marker.touch()
    return lib


def install_elasticsearch(version: str, home: Path, target: Path) -> Path:
    """Unpack Elasticsearch ``version`` into ``target``; return its home directory."""
    es_home = target / f"elasticsearch-{version}"
    if (es_home / ".complete").exists():
        return es_home
    repo = home / "m2"
    _mvn(
        ["dependency:get", f"-Dartifact={ES_COORDS.format(version=version)}", "-Dtransitive=false"],
        repo=repo,
    )
    zip_path = (
        repo
        / "org/elasticsearch/distribution/integ-test-zip/elasticsearch"
        / version
        / f"elasticsearch-{version}.zip"
    )
    if not zip_path.exists():
        raise StackError(f"Elasticsearch {version}: expected {zip_path} after Maven download")
    if es_home.exists():
        shutil.rmtree(es_home)
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(target)
    for script in (es_home / "bin").iterdir():
        script.chmod(0o755)  # zipfile drops the executable bits
    (es_home / ".complete").touch()
    return es_home


# ---- cpwatch's own analysis plugin (deploy/es-plugin) ---------------------------------------

PLUGIN_SRC = Path(__file__).resolve().parent / "es-plugin"
PLUGIN_NAME = "cpwatch-analysis-english"  # must equal `name` in stable-plugin-descriptor.properties
PLUGIN_VERSION = "1.0.0"
PLUGIN_API = ("elasticsearch-plugin-api", "elasticsearch-plugin-analysis-api")
PLUGIN_JAVA_RELEASE = "21"  # Elasticsearch 9 runs on Java 21+
JAVAC_TIMEOUT_S = 300


@dataclass(frozen=True)
class Plugin:
    """One of our stable analysis plugins: its source directory and its `name`."""

    src: Path
    name: str


ENGLISH = Plugin(PLUGIN_SRC, PLUGIN_NAME)
# The token filters and tokenizer of the `.security` index mapping (needed for API keys on the
# secured stack, deploy/secure_stack.py), which the integ-test-zip lacks.
SECURITY_ANALYSIS = Plugin(PLUGIN_SRC.parent / "es-security-plugin", "cpwatch-security-analysis")


def _plugin_sources(plugin: Plugin = ENGLISH) -> list[Path]:
    return sorted(plugin.src.rglob("*.java")) + [
        plugin.src / "stable-plugin-descriptor.properties",
        plugin.src / "named_components.json",
    ]


def plugin_fingerprint(es_version: str, plugin: Plugin = ENGLISH) -> str:
    """Changes whenever a source file, the packaging or the Elasticsearch version changes."""
    h = hashlib.sha256(f"{es_version}|{PLUGIN_VERSION}|{PLUGIN_JAVA_RELEASE}".encode())
    for f in _plugin_sources(plugin):
        h.update(str(f.relative_to(plugin.src)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_analysis_plugin(
    es_version: str, home: Path, es_home: Path, java_home: Path, plugin: Plugin = ENGLISH
) -> Path:
    """Compile a plugin's sources (deploy/es-plugin by default) with javac and package them as
    a stable-plugin zip (cached).

    Compiled against Elastic's stable plugin API jars from Maven Central and against the very
    Lucene jars of the distribution it will run in (``es_home/lib``).
    """
    fp = plugin_fingerprint(es_version, plugin)
    out = home / "es-plugin" / fp
    zip_path = out / f"{plugin.name}-{PLUGIN_VERSION}.zip"
    if zip_path.exists():
        return zip_path
    javac = java_home / "bin/javac"
    if not javac.exists():
        raise StackError(f"building the analysis plugin needs a JDK (javac); none at {java_home}")
    repo = home / "m2"
    jars = []
    for artifact in PLUGIN_API:
        coords = f"org.elasticsearch.plugin:{artifact}:{es_version}"
        _mvn(["dependency:get", f"-Dartifact={coords}", "-Dtransitive=false"], repo=repo)
        jar = repo / "org/elasticsearch/plugin" / artifact / es_version
        jar = jar / f"{artifact}-{es_version}.jar"
        if not jar.exists():
            raise StackError(f"expected {jar} after Maven download")
        jars.append(jar)
    for prefix in ("lucene-core-", "lucene-analysis-common-"):
        found = sorted((es_home / "lib").glob(f"{prefix}[0-9]*.jar"))
        if not found:
            raise StackError(f"no {prefix}*.jar in {es_home / 'lib'} to compile the plugin against")
        jars.append(found[-1])
    if out.exists():
        shutil.rmtree(out)
    classes = out / "classes"
    classes.mkdir(parents=True)
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [
            str(javac),
            "--release",
            PLUGIN_JAVA_RELEASE,
            "-Xlint:all",
            "-Werror",
            "-d",
            str(classes),
            "-cp",
            ":".join(map(str, jars)),
            *map(str, sorted(plugin.src.rglob("*.java"))),
        ],
        capture_output=True,
        text=True,
        timeout=JAVAC_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise StackError(f"javac failed on {plugin.src}:\n{proc.stdout}{proc.stderr}")
    jar_path = out / f"{plugin.name}-{PLUGIN_VERSION}.jar"
    with zipfile.ZipFile(jar_path, "w", zipfile.ZIP_DEFLATED) as jf:
        jf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
        for cls in sorted(classes.rglob("*.class")):
            jf.write(cls, cls.relative_to(classes).as_posix())
    descriptor = (plugin.src / "stable-plugin-descriptor.properties").read_text()
    for key, value in (
        ("version", PLUGIN_VERSION),
        ("java_version", PLUGIN_JAVA_RELEASE),
        ("es_version", es_version),
    ):
        descriptor = descriptor.replace("${" + key + "}", value)
    tmp = zip_path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(jar_path, jar_path.name)
        zf.writestr("stable-plugin-descriptor.properties", descriptor)
        zf.write(plugin.src / "named_components.json", "named_components.json")
    tmp.replace(zip_path)  # only a complete zip is ever found by the cache check above
    return zip_path


def has_builtin_english(es_home: Path) -> bool:
    """A full distribution ships analysis-common, whose `english` our plugin must not shadow."""
    return (es_home / "modules" / "analysis-common").is_dir()


def install_analysis_plugin(
    es_version: str, home: Path, es_home: Path, java_home: Path, plugin: Plugin = ENGLISH
) -> Literal["installed", "present", "builtin"]:
    """Install the plugin into a stopped distribution, once per plugin build; safe to repeat."""
    if has_builtin_english(es_home):  # analysis-common: it has all our plugins provide
        return "builtin"
    fp = plugin_fingerprint(es_version, plugin)
    marker = es_home / f".{plugin.name}"  # outside plugins/: Elasticsearch reads every entry there
    installed = es_home / "plugins" / plugin.name
    if installed.is_dir() and marker.exists() and marker.read_text().strip() == fp:
        return "present"
    zip_path = build_analysis_plugin(es_version, home, es_home, java_home, plugin)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ES_JAVA_HOME": str(java_home),
        "ES_PATH_CONF": str(es_home / "config"),
        "HOME": str(home),
    }
    tool = str(es_home / "bin/elasticsearch-plugin")
    if installed.exists():  # an older build of ours: replace it
        _plugin_cli([tool, "remove", plugin.name], env)
    _plugin_cli([tool, "install", "--batch", zip_path.as_uri()], env)
    if not installed.is_dir():
        raise StackError(f"elasticsearch-plugin finished but {installed} does not exist")
    marker.write_text(fp + "\n")
    return "installed"


def _plugin_cli(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(  # noqa: S603 - fixed argv
        cmd, env=env, capture_output=True, text=True, timeout=JAVAC_TIMEOUT_S, check=False
    )
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        msg = f"elasticsearch-plugin {cmd[1]} failed (exit {proc.returncode}):\n"
        raise StackError(msg + "\n".join(out))
