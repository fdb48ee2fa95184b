"""cpwatch's own errors. Foreign errors are translated at the engine edges.

CpwatchError
├── ConfigError      bad settings or a bad rules/config file
├── RecordError      a message or input row that does not fit its schema
├── StackError       the local Kafka/Elasticsearch stack cannot be installed or started
└── EngineError      Kafka or Elasticsearch refused or failed a request
"""

from __future__ import annotations


class CpwatchError(Exception):
    """Base of every error cpwatch raises on purpose."""


class ConfigError(CpwatchError):
    pass


class RecordError(CpwatchError):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StackError(CpwatchError):
    pass


class EngineError(CpwatchError):
    pass
