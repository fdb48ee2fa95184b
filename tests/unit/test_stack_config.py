"""The local stack's generated configuration (no engines started here)."""

from __future__ import annotations

from pathlib import Path

from cpwatch.settings import Settings
from deploy.stack import Stack


def test_kafka_properties_are_single_node_kraft(tmp_path: Path) -> None:
    stack = Stack(Settings(home=tmp_path, kafka_bootstrap="127.0.0.1:19092"))
    props = dict(
        line.split("=", 1) for line in stack._kafka_properties().splitlines() if "=" in line
    )
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["log.dirs"] == str(tmp_path / "stack" / "kafka-data")


def test_status_reports_stopped_services(tmp_path: Path) -> None:
    stack = Stack(
        Settings(home=tmp_path, kafka_bootstrap="127.0.0.1:1", es_url="http://127.0.0.1:2")
    )
    assert stack.status() is False


def test_a_missing_jdk_says_how_to_get_one(tmp_path: Path) -> None:
    import pytest

    from cpwatch.exceptions import StackError
    from tests.conftest import free_port

    settings = Settings(
        home=tmp_path,
        es_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: it would start one
        es_java_home=tmp_path / "no-jdk",
    )
    with pytest.raises(StackError, match="CPWATCH_ES_JAVA_HOME") as err:
        Stack(settings)._start_es()
    assert "Java 21" in str(err.value) and "temurin" in str(err.value)
