"""Persisted, bounded memory of what the feed poller already sent, plus HTTP validators.

One small JSON file under ``settings.home``: the ids of sent articles (oldest evicted past
``limit``, so the file never grows without bound) and each feed's ETag / Last-Modified.
Writes go to a temporary file renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_LIMIT = 50_000  # a few years of a dozen busy feeds; ~2 MB of JSON


class SeenStore:
    """Insertion-ordered bounded set of ids and per-feed validators, saved as JSON."""

    def __init__(self, path: Path | None, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be positive")
        self.path = path
        self.limit = limit
        self._ids: dict[str, None] = {}  # dicts keep insertion order: a cheap ordered set
        self.validators: dict[str, dict[str, str]] = {}

    @classmethod
    def load(cls, path: Path | None, limit: int = DEFAULT_LIMIT) -> SeenStore:
        """Read ``path`` if it exists; a corrupt file starts afresh rather than stopping feeds."""
        store = cls(path, limit)
        if path is None or not path.exists():
            return store
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return store
        for item in data.get("seen", []):
            if isinstance(item, str):
                store.add(item)
        validators = data.get("validators", {})
        if isinstance(validators, dict):
            store.validators = {
                str(k): {str(a): str(b) for a, b in v.items()}
                for k, v in validators.items()
                if isinstance(v, dict)
            }
        return store

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, item: str) -> None:
        if item in self._ids:
            return
        self._ids[item] = None
        while len(self._ids) > self.limit:
            del self._ids[next(iter(self._ids))]

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = {"seen": list(self._ids), "validators": self.validators}
        tmp.write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, self.path)
