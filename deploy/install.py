"""Fetch Kafka's jars and Elasticsearch's integ-test-zip through Maven's own client.

Maven verifies checksums and caches everything in one local repository under
``settings.home/m2``, so a second ``stack up`` downloads nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

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
