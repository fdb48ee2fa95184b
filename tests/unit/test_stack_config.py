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
